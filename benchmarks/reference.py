"""The references nnlab's benchmarks run beside it, written the usual way.

- training: a torchvision dataset with a per-item transforms.v2 pipeline, a DataLoader
  with 4 workers, MultivariateNormal + kl_divergence, the test set encoded through a
  DataLoader and torch.save'd every 4 steps;
- rendering: contourf per class of full-covariance densities, redrawn from scratch, and
  FuncAnimation saved with Pillow;
- a bare loop: the same model over in-memory tensors with no nnlab code (what the
  hardware allows; nnlab's machinery must cost almost nothing on top of it).
"""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


class RefVAE(nn.Module):
    """REFERENCE model: the same 784-256-128-2 beta-VAE, written out by hand."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, 256), nn.SiLU(), nn.Linear(256, 128), nn.SiLU())
        self.head = nn.Linear(128, 4)
        self.dec = nn.Sequential(
            nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 256), nn.SiLU(), nn.Linear(256, 784)
        )

    def encode(self, x):
        mu, raw = self.head(self.enc(x)).chunk(2, dim=1)
        return mu, F.softplus(raw) + 1e-6


def torchvision_dataset(root: Path, name: str, train: bool):
    """REFERENCE data: a torchvision dataset with a per-item transforms.v2 pipeline."""
    from torchvision import datasets
    from torchvision.transforms import v2

    tf = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Lambda(lambda t: t.reshape(-1))]
    )
    cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
    return cls(str(root), train=train, transform=tf, download=False)


def reference_vae_steps(root: Path, name: str, steps: int, record: bool, out: Path) -> float:
    """REFERENCE training loop; returns optimisation steps per second."""
    from torch.distributions import MultivariateNormal, kl_divergence
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    train = torchvision_dataset(root, name, True)
    test = torchvision_dataset(root, name, False)
    loader = DataLoader(train, batch_size=32, shuffle=True, num_workers=4)
    model = RefVAE()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    prior = None
    t0 = time.perf_counter()
    for step, (x, _) in enumerate(loader, start=1):
        mu, sd = model.encode(x)
        q = MultivariateNormal(mu, scale_tril=torch.diag_embed(sd))
        if prior is None:
            prior = MultivariateNormal(torch.zeros(2), torch.eye(2))
        z = q.rsample()
        rec = F.binary_cross_entropy_with_logits(model.dec(z), x, reduction="none").sum(1).mean()
        loss = rec + kl_divergence(q, prior).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if record and step % 4 == 0:
            mus, sds = [], []
            with torch.no_grad():
                for tx, _ in DataLoader(test, batch_size=256, num_workers=4):
                    m, s = model.encode(tx)
                    mus.append(m)
                    sds.append(s)
            torch.save(
                {"step": step, "mu": torch.cat(mus), "sd": torch.cat(sds)},
                out / f"snapshot-{step}.pt",
            )
        if step >= steps:
            break
    return steps / (time.perf_counter() - t0)


def reference_classifier_steps(root: Path, name: str, steps: int) -> float:
    """REFERENCE Nielsen loop (784-30-10 sigmoid, MSE, SGD 3.0, batch 10); steps/s."""
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    loader = DataLoader(
        torchvision_dataset(root, name, True), batch_size=10, shuffle=True, num_workers=4
    )
    model = nn.Sequential(nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=3.0)
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(loader, start=1):
        loss = 0.5 * ((model(x) - F.one_hot(y, 10).float()) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= steps:
            break
    return steps / (time.perf_counter() - t0)


def reference_render(
    mu: np.ndarray, sd: np.ndarray, labels: np.ndarray, frames: int, out: Path
) -> float:
    """REFERENCE renderer: clear the axes each frame, contourf per class of the mixture
    density with full covariances, FuncAnimation saved with Pillow; returns frames/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    from torch.distributions import MultivariateNormal

    xs = torch.linspace(-4, 4, 160)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    grid = torch.stack([gx, gy], -1).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(5.6, 6.5), dpi=100)
    cmaps = [
        "Blues",
        "Oranges",
        "Greens",
        "Reds",
        "Purples",
        "Greys",
        "pink",
        "YlOrBr",
        "BuGn",
        "PuRd",
    ]

    def draw(f):
        ax.clear()
        for c in range(10):
            sel = labels == c
            m = torch.from_numpy(mu[f, sel]).float()
            cov = torch.diag_embed(torch.from_numpy(sd[f, sel]).float() ** 2)
            dist = MultivariateNormal(m, covariance_matrix=cov)
            dens = dist.log_prob(grid[:, None, :]).exp().mean(1).reshape(160, 160)
            ax.contourf(gx, gy, dens, levels=5, cmap=cmaps[c], alpha=0.4)
        ax.set_title(f"frame {f}")

    anim = FuncAnimation(fig, draw, frames=frames)
    t0 = time.perf_counter()
    anim.save(out / "reference.gif", writer=PillowWriter(fps=10))
    plt.close(fig)
    return frames / (time.perf_counter() - t0)


def vae_step(model, opt, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One optimisation step of the hand-written loop (BCE + KL to N(0, I)); its loss."""
    mu, sd = model.encode(x)
    z = mu + sd * torch.randn(mu.shape, generator=gen)
    rec = F.binary_cross_entropy_with_logits(model.dec(z), x, reduction="none").sum(1).mean()
    kl = (0.5 * (mu**2 + sd**2 - 1) - torch.log(sd)).sum(1).mean()
    loss = rec + kl
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


@torch.no_grad()
def vae_test_bce(model, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The end-of-epoch evaluation: the mean reconstruction BCE of x (one sample)."""
    mu, sd = model.encode(x)
    z = mu + sd * torch.randn(mu.shape, generator=gen)
    return F.binary_cross_entropy_with_logits(model.dec(z), x, reduction="none").sum(1).mean()


def vae_setup(x_train: torch.Tensor):
    """The hand-written loop's seeded model, fused AdamW, generator and batch order."""
    torch.manual_seed(0)
    model = RefVAE()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=True)
    gen = torch.Generator().manual_seed(0)
    return model, opt, gen, torch.randperm(len(x_train), generator=gen)


def bare_vae_steps(x_train: torch.Tensor, steps: int, evals=()) -> float:
    """A hand-written loop over in-memory tensors, then the same end-of-epoch evaluation
    as nnlab (loss on the given splits); steps/s."""
    model, opt, gen, perm = vae_setup(x_train)
    t0 = time.perf_counter()
    for step in range(steps):
        vae_step(model, opt, x_train[perm[step * 32 : (step + 1) * 32]], gen)
    for x in evals:
        vae_test_bce(model, x, gen)
    return steps / (time.perf_counter() - t0)


def api_vae_steps(
    x_train: torch.Tensor, probe_x, probe_y, steps: int, every: int, runs: Path, evals=()
) -> tuple[float, str]:
    """bare_vae_steps's loop recorded through nnlab's Python API: the probe's posterior
    every `every` steps, the loss every 50, the evaluation as an epoch line; (steps/s,
    run id)."""
    import nnlab

    model, opt, gen, perm = vae_setup(x_train)
    t0 = time.perf_counter()
    with nnlab.start("bench", settings={"every": every}, runs_dir=runs) as run:
        run.watch(probe_x, probe_y, module=model, encode=model.encode, image_shape=(28, 28))
        run.snapshot(0)
        for step in range(1, steps + 1):
            loss = vae_step(model, opt, x_train[perm[(step - 1) * 32 : step * 32]], gen)
            if step % 50 == 0:
                run.log(step, loss=loss.item())
            if step % every == 0:
                run.snapshot(step)
        names = ("val_loss", "test_loss")
        losses = {k: vae_test_bce(model, x, gen).item() for k, x in zip(names, evals, strict=False)}
        run.log_epoch(1, **losses)
        run.checkpoint(steps, model=model.state_dict(), optimizer=opt.state_dict())
    return steps / (time.perf_counter() - t0), run.id


def api_main() -> None:
    """`python reference.py api DATASET STEPS EVERY RUNS`: api_vae_steps in a fresh
    process (as nnlab train runs in one), on nnlab's in-memory splits; prints JSON."""
    import json
    import sys

    from nnlab.training import data

    name, steps, every, runs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    s = data.load(name, None, 0.1, 0)
    rate, run_id = api_vae_steps(
        s.train_x, s.test_x, s.test_y, steps, every, runs, (s.val_x, s.test_x)
    )
    print(json.dumps({"steps_per_s": rate, "id": run_id}))


def prepare_torchvision_layout(tmp: Path, name: str) -> Path:
    """The dataset in torchvision's folder layout (for the reference's torchvision dataset)."""
    from nnlab.data import catalog

    folder = tmp / ("FashionMNIST" if name == "fashion-mnist" else "MNIST") / "raw"
    folder.mkdir(parents=True)
    if name == "fashion-mnist":
        for f in catalog.IDX_FILES:
            with gzip.open(DEBIAN / (f + ".gz")) as src, open(folder / f, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return tmp
    raw = catalog.load_sample()  # images (N, 1, 28, 28): IDX files hold (N, 28, 28)
    arrays = [raw.train_images[:, 0], raw.train_labels, raw.test_images[:, 0], raw.test_labels]
    for f, a in zip(catalog.IDX_FILES, arrays, strict=True):
        a = np.asarray(a, dtype=np.uint8)
        header = bytes([0, 0, 8, a.ndim]) + b"".join(n.to_bytes(4, "big") for n in a.shape)
        (folder / f).write_bytes(header + a.tobytes())
    return tmp


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["api"]:
        api_main()
