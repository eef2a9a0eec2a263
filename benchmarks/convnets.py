"""The convolutional families against their references, side by side in one invocation:

1. `nnlab train classifier --preset=cnn` against pytorch/examples' mnist/main.py (its Net,
   train and test loops, DataLoader with ToTensor + Normalize, Adadelta lr 1.0, StepLR
   gamma 0.7, batch 64, test batch 1000, seed 1; copied below under its BSD licence) on the
   same Fashion-MNIST files for the same epochs: test accuracy and wall time. nnlab runs
   in float32 and with --precision=bfloat16.
2. `nnlab train vae --preset=conv-vae` against the MLP reference VAE (`nnlab train vae`),
   one epoch of Fashion-MNIST each, 2-D latent: test ELBO.

    python benchmarks/convnets.py [--epochs=5] [--json]

Needs Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist). Every process runs
with 2 torch threads (the machine's cores), one after another.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
THREADS = 2
# main.py's Normalize constants (MNIST's, which it applies to Fashion-MNIST too): the preset
# would standardise by Fashion-MNIST's own statistics, which the reference does not.
SAME = ["--input_norm=[0.1307,0.3081]"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def torchvision_layout(root: Path) -> None:
    """The Debian IDX files, decompressed where torchvision's FashionMNIST reads them."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in DEBIAN.glob("*-ubyte.gz"):
        with gzip.open(gz, "rb") as f, open(raw / gz.name[: -len(".gz")], "wb") as out:
            shutil.copyfileobj(f, out)


REFERENCE = r"""
# pytorch/examples mnist/main.py (BSD 3-Clause, Copyright (c) 2017 Facebook), its model and
# loops unchanged; datasets.MNIST -> datasets.FashionMNIST, CPU, no logging per batch.
import sys, time, json, torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms
from torch.optim.lr_scheduler import StepLR

class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output

def train(model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()

def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return correct / len(test_loader.dataset)

root, epochs = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
torch.manual_seed(1)
device = torch.device("cpu")
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
dataset1 = datasets.FashionMNIST(root, train=True, download=False, transform=transform)
dataset2 = datasets.FashionMNIST(root, train=False, transform=transform)
train_loader = torch.utils.data.DataLoader(dataset1, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(dataset2, batch_size=1000)
model = Net().to(device)
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
for epoch in range(1, epochs + 1):
    train(model, device, train_loader, optimizer, epoch)
    acc = test(model, device, test_loader)
    scheduler.step()
    print(f"epoch {epoch}: test accuracy {acc:.4f}", file=sys.stderr, flush=True)
print(json.dumps({"seconds": time.perf_counter() - start, "test_acc": acc}))
"""


def env() -> dict:
    return dict(
        os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), NNLAB_OFFLINE="1"
    )


def reference(root: Path, epochs: int) -> dict:
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(root), str(epochs)],
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    out = json.loads(r.stdout)
    out["wall"] = time.perf_counter() - t
    return out


def nnlab_run(runs: Path, *args: str) -> dict:
    """Train with nnlab in a fresh process; wall time and the run's final metrics."""
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", "train", *args, f"--runs_dir={runs}"],
        capture_output=True,
        text=True,
        env=env(),
    )
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    run_id = r.stdout.strip()
    meta = json.loads((runs / run_id / "meta.json").read_text())
    return {"run": run_id, "wall": wall, **(meta.get("final") or {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", default="cnn,vae")
    opts = ap.parse_args()
    if not DEBIAN.is_dir():
        raise SystemExit("needs Fashion-MNIST: apt-get install dataset-fashion-mnist")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = tmp / "runs"
        if "cnn" in opts.only:
            torchvision_layout(tmp / "tv")
            e = f"--epochs={opts.epochs}"
            log(f"pytorch/examples mnist/main.py, {opts.epochs} epochs of Fashion-MNIST…")
            results["reference"] = reference(tmp / "tv", opts.epochs)
            log(f"  {results['reference']}")
            for name, extra in (("cnn", []), ("cnn_bf16", ["--precision=bfloat16"])):
                log(f"nnlab train classifier --preset=cnn {' '.join(extra)}…")
                results[name] = nnlab_run(
                    runs, "classifier", "--preset=cnn", "--dataset=fashion-mnist", e, *SAME, *extra
                )
                log(f"  {results[name]}")
        if "vae" in opts.only:
            for name, preset in (("mlp_vae", "vae"), ("conv_vae", "conv-vae")):
                log(f"nnlab train vae --preset={preset}, 1 epoch…")
                results[name] = nnlab_run(
                    runs, "vae", f"--preset={preset}", "--dataset=fashion-mnist", "--epochs=1"
                )
                log(f"  {results[name]}")
    if opts.json:
        print(json.dumps(results, indent=1))
        return
    if "reference" in results:
        ref = results["reference"]
        print(f"| {opts.epochs} epochs of Fashion-MNIST | test accuracy | wall time | speed |")
        print("| --- | --- | --- | --- |")
        acc, wall = ref["test_acc"], ref["wall"]
        print(f"| pytorch/examples mnist/main.py | {acc:.2%} | {wall:.0f} s | 1.00x |")
        for name, label in (("cnn", "nnlab --preset=cnn"), ("cnn_bf16", "… --precision=bfloat16")):
            r = results[name]
            print(
                f"| {label} | {r['test_acc']:.2%} | {r['wall']:.0f} s | "
                f"{ref['wall'] / r['wall']:.2f}x |"
            )
    if "mlp_vae" in results:
        print("| 1 epoch of Fashion-MNIST, 2-D latent | test ELBO | wall time |")
        print("| --- | --- | --- |")
        for name, label in (("mlp_vae", "reference VAE (MLP)"), ("conv_vae", "conv-vae")):
            r = results[name]
            print(f"| {label} | {r['test_elbo']:.2f} | {r['wall']:.0f} s |")


if __name__ == "__main__":
    main()
