"""A LightningModule recorded by nnlab's callback: a small CNN classifier whose 3-unit
bottleneck nnlab draws as a cube over training.

    python examples/lightning_loop.py      # prints the run id; then:
    nnlab animate latest && nnlab summary latest

Needs `pip install 'nnlab[lightning]'`. Trains on the 5,000 MNIST digits bundled with
nnlab in under a minute on two CPU cores (NNLAB_EXAMPLE_EPOCHS shortens it).
"""

import os
from importlib import resources

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import nnlab


class BottleneckCNN(L.LightningModule):
    """Conv features squeezed through 3 sigmoid units, then 10 classes."""

    def __init__(self, lr: float = 1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(),
        )  # fmt: skip
        self.bottleneck = nn.Sequential(
            nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 3), nn.Sigmoid()
        )  # fmt: skip
        self.head = nn.Linear(3, 10)

    def forward(self, x):
        return self.head(self.bottleneck(self.features(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    torch.manual_seed(0)
    with np.load(resources.files("nnlab") / "assets/mnist-5k.npz") as z:
        images = torch.from_numpy(z["images"]).float().div(255).unsqueeze(1)
        labels = torch.from_numpy(z["labels"].astype(np.int64))
    held = torch.arange(len(images)) % 5 == 0  # every fifth image: 100 of each digit
    train = TensorDataset(images[~held], labels[~held])
    val = TensorDataset(images[held], labels[held])
    epochs = int(os.environ.get("NNLAB_EXAMPLE_EPOCHS", "6"))

    recorder = nnlab.LatentCallback(
        images[held], labels[held], layer="bottleneck", every_n_steps=25, name="cnn3"
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[recorder],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    trainer.fit(
        BottleneckCNN(),
        DataLoader(train, batch_size=64, shuffle=True),
        DataLoader(val, batch_size=1000),
    )
    print(recorder.run_id)


if __name__ == "__main__":
    main()
