"""A convolutional VAE written the plain PyTorch way, recorded by nnlab from its own loop.

    python examples/own_loop.py            # prints the run id; then:
    nnlab animate latest && nnlab summary latest && nnlab report latest

Trains on the 5,000 MNIST digits bundled with nnlab (4,000 to train on, every fifth held
out as the probe and test set) in well under a minute on two CPU cores. NNLAB_EXAMPLE_EPOCHS
shortens it (the tests run one epoch).
"""

import os
from importlib import resources

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import nnlab


class ConvVAE(nn.Module):
    """Two strided convolutions to a 2-D Gaussian posterior, mirrored back to 28x28."""

    def __init__(self, latent_dim: int = 2):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 4, stride=2, padding=1),
            nn.ReLU(),  # 14x14
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.ReLU(),  # 7x7
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.mu = nn.Linear(128, latent_dim)
        self.log_var = nn.Linear(128, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(), nn.Linear(128, 32 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),
        )  # fmt: skip

    def encode(self, x):
        """The posterior's mean and standard deviation."""
        h = self.encoder(x)
        return self.mu(h), torch.exp(0.5 * self.log_var(h))

    def forward(self, x):
        mu, sd = self.encode(x)
        z = mu + sd * torch.randn_like(sd)
        return self.decoder(z), mu, sd


def loss_terms(model, x):
    """Binary cross-entropy and KL to N(0, I), each summed per image, batch means."""
    logits, mu, sd = model(x)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl = 0.5 * (mu.pow(2) + sd.pow(2) - 2 * torch.log(sd) - 1).sum() / len(x)
    return recon, kl


def main():
    torch.manual_seed(0)
    with np.load(resources.files("nnlab") / "assets/mnist-5k.npz") as z:
        images = torch.from_numpy(z["images"]).float().div(255).unsqueeze(1)  # N x 1 x 28 x 28
        labels = torch.from_numpy(z["labels"].astype(np.int64))
    held = torch.arange(len(images)) % 5 == 0  # every fifth image: 100 of each digit
    train_x, test_x, test_y = images[~held], images[held], labels[held]
    epochs = int(os.environ.get("NNLAB_EXAMPLE_EPOCHS", "8"))
    settings = {"latent_dim": 2, "lr": 1e-3, "batch_size": 64, "epochs": epochs}

    model = ConvVAE(settings["latent_dim"])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    with nnlab.start("conv-vae", settings=settings, dataset="mnist-5k") as run:
        run.watch(test_x, test_y, module=model, encode=model.encode)
        step = 0
        run.snapshot(step, epoch=0)
        for epoch in range(1, epochs + 1):
            for batch in torch.randperm(len(train_x)).split(settings["batch_size"]):
                recon, kl = loss_terms(model, train_x[batch])
                opt.zero_grad()
                (recon + kl).backward()
                opt.step()
                step += 1
                if step % 10 == 0:
                    run.log(step, loss=(recon + kl).item(), bce=recon.item(), kl=kl.item())
                if step % 20 == 0:
                    run.snapshot(step, epoch=step / 63)
            with torch.no_grad():
                model.eval()
                recon, kl = loss_terms(model, test_x)
                model.train()
            run.log_epoch(epoch, test_loss=(recon + kl).item(), test_elbo=-(recon + kl).item())
            run.checkpoint(step, model=model.state_dict(), optimizer=opt.state_dict())
        if step % 20:  # the final state, so the animation ends where training did
            run.snapshot(step, epoch=epochs)
    print(run.id)


if __name__ == "__main__":
    main()
