"""nnlab's benchmarks: each workload run twice in one invocation, nnlab and a reference
written the usual way, on full Fashion-MNIST when Debian's copy is installed (else the
bundled sample, said in the output).

    python benchmarks/run.py [--quick] [--json]

Prints a table of medians over repeats and the ratio reference/nnlab (or nnlab against its
target), and with --json the same as JSON on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def nnlab_cmd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the nnlab CLI in a fresh process (as a user would)."""
    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "nnlab", *args], capture_output=True, text=True, env=e, check=False
    )


# =====================================================================================
# REFERENCE: written "the usual way" (torchvision dataset + per-item transforms.v2 +
# DataLoader workers, MultivariateNormal + kl_divergence, test set encoded through a
# DataLoader and torch.save every 4 steps; matplotlib contourf + FuncAnimation + Pillow).
# =====================================================================================


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


# =====================================================================================
# BARE LOOP: the same model over in-memory tensors, no nnlab code (what the hardware
# allows for this model; nnlab's machinery must cost almost nothing on top of it).
# =====================================================================================


def bare_vae_steps(x_train: torch.Tensor, steps: int, evals=()) -> float:
    """A hand-written loop over in-memory tensors, then the same end-of-epoch evaluation
    as nnlab (loss on the given splits); steps/s."""
    torch.manual_seed(0)
    model = RefVAE()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=True)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x_train), generator=gen)
    t0 = time.perf_counter()
    for step in range(steps):
        x = x_train[perm[step * 32 : (step + 1) * 32]]
        mu, sd = model.encode(x)
        z = mu + sd * torch.randn(mu.shape, generator=gen)
        rec = F.binary_cross_entropy_with_logits(model.dec(z), x, reduction="none").sum(1).mean()
        kl = (0.5 * (mu**2 + sd**2 - 1) - torch.log(sd)).sum(1).mean()
        loss = rec + kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        for x in evals:
            mu, sd = model.encode(x)
            z = mu + sd * torch.randn(mu.shape, generator=gen)
            F.binary_cross_entropy_with_logits(model.dec(z), x, reduction="none").sum(1).mean()
    return steps / (time.perf_counter() - t0)


# =====================================================================================
# nnlab
# =====================================================================================


def nnlab_train(runs: Path, args: list[str]) -> dict:
    """Train with the nnlab CLI; returns steps/s (from the run's own timing), peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = nnlab_cmd("train", *args, f"--runs_dir={runs}")
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    run_id = r.stdout.strip()
    meta = json.loads((runs / run_id / "meta.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "id": run_id,
        "steps": meta["steps_done"],
        "seconds": meta["train_seconds"],
        "steps_per_s": meta["steps_done"] / meta["train_seconds"],
        "wall": wall,
        "peak_rss_mb": max(peak, before) / 1024,
    }


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    """Median and all values of fn() over repeats."""
    values = [fn() for _ in range(repeats)]
    return statistics.median(values), values


def prepare_torchvision_layout(tmp: Path, name: str) -> Path:
    """The dataset in torchvision's folder layout (for the reference's torchvision dataset)."""
    from nnlab import data

    folder = tmp / ("FashionMNIST" if name == "fashion-mnist" else "MNIST") / "raw"
    folder.mkdir(parents=True)
    if name == "fashion-mnist":
        for f in data.IDX_FILES:
            with gzip.open(DEBIAN / (f + ".gz")) as src, open(folder / f, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return tmp
    raw = data.load_sample()
    arrays = [raw.train_images, raw.train_labels, raw.test_images, raw.test_labels]
    for f, a in zip(data.IDX_FILES, arrays, strict=True):
        a = np.asarray(a, dtype=np.uint8)
        header = bytes([0, 0, 8, a.ndim]) + b"".join(n.to_bytes(4, "big") for n in a.shape)
        (folder / f).write_bytes(header + a.tobytes())
    return tmp


def main() -> None:
    """Run every workload, print the table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    opts = ap.parse_args()
    quick = opts.quick
    name = "fashion-mnist" if DEBIAN.is_dir() and not quick else "mnist-sample"
    log(
        f"dataset: {name}"
        + (
            ""
            if name == "fashion-mnist"
            else " (Debian's Fashion-MNIST not installed, or --quick: the bundled sample)"
        )
    )
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="nnlab-bench-"))
    runs = tmp / "runs"
    try:
        tv_root = prepare_torchvision_layout(tmp / "tv", name)
        from nnlab import data

        splits = data.load(name, None, 0.1, 0)
        steps_per_epoch = math.ceil(len(splits.train_x) / 32)
        ref_steps = 6 if quick else 24
        common = [f"--dataset={name}", "--seed=0"]

        # 1. train, recording the whole test split every 4 steps
        log("1. train β-VAE, recording every 4 steps")
        nn1 = nnlab_train(runs, ["vae", *common, "--snapshot_every=4"])
        out = tmp / "ref-snapshots"
        out.mkdir()
        ref1 = reference_vae_steps(tv_root, name, ref_steps, True, out)
        rows.append(
            {
                "workload": "1. train VAE + record test split every 4 steps (steps/s)",
                "nnlab": nn1["steps_per_s"],
                "reference": ref1,
                "ratio": nn1["steps_per_s"] / ref1,
                "target": ">= 30x",
                "ok": nn1["steps_per_s"] / ref1 >= 30,
                "note": f"one epoch of {len(splits.train_x):,} images: nnlab "
                f"{steps_per_epoch / nn1['steps_per_s']:.1f} s, reference "
                f"{steps_per_epoch / ref1:.0f} s",
            }
        )

        # 2. recording off, against the reference and a bare loop
        log("2. train β-VAE, recording off")
        nn2 = nnlab_train(runs, ["vae", *common, "--snapshot_every=0"])
        ref2 = reference_vae_steps(tv_root, name, ref_steps * 4, False, out)
        evals = (splits.val_x, splits.test_x)
        bare, _ = timed(
            lambda: bare_vae_steps(splits.train_x, steps_per_epoch, evals), 1 if quick else 3
        )
        rows.append(
            {
                "workload": "2. train VAE, recording off (steps/s)",
                "nnlab": nn2["steps_per_s"],
                "reference": ref2,
                "ratio": nn2["steps_per_s"] / ref2,
                "target": ">= 2.5x",
                "ok": nn2["steps_per_s"] / ref2 >= 2.5,
            }
        )
        rows.append(
            {
                "workload": "2b. same, against a bare in-memory loop (steps/s)",
                "nnlab": nn2["steps_per_s"],
                "reference": bare,
                "ratio": nn2["steps_per_s"] / bare,
                "target": ">= 0.9x (within 10%)",
                "ok": nn2["steps_per_s"] / bare >= 0.9,
            }
        )

        # 3. recording overhead
        cost = nn2["steps_per_s"] / nn1["steps_per_s"]
        rows.append(
            {
                "workload": "3. recording overhead (time with / without)",
                "nnlab": cost,
                "reference": None,
                "ratio": None,
                "target": "<= 1.5x",
                "ok": cost <= 1.5,
            }
        )
        # the same with bfloat16 snapshots, encoded on a core of their own
        nn1b = nnlab_train(
            runs, ["vae", *common, "--snapshot_every=4", "--record_precision=bfloat16"]
        )
        cost_b = nn2["steps_per_s"] / nn1b["steps_per_s"]
        rows.append(
            {
                "workload": "3b. same, with --record_precision=bfloat16",
                "nnlab": cost_b,
                "reference": None,
                "ratio": None,
                "target": "<= 1.5x",
                "ok": cost_b <= 1.5,
                "note": f"{nn1b['steps_per_s']:.0f} steps/s: "
                f"{nn1b['steps_per_s'] / ref1:.0f}x the reference of workload 1",
            }
        )

        # 4. animate: class densities, 10 classes, 10,000 probe points (<= 400 frames)
        log("4. animate")
        from nnlab import record, store

        run = store.open_run(nn1["id"], runs)
        rec = record.load_recording(run.latents, "vae")
        n_frames = min(len(rec), 40 if quick else 400)
        every = max(1, len(rec) // n_frames)
        frames = len(range(0, len(rec), every)) + (0 if (len(rec) - 1) % every == 0 else 1)
        t0 = time.perf_counter()
        r = nnlab_cmd("animate", nn1["id"], f"--runs_dir={runs}", f"--every={every}")
        fps = frames / (time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr
        ref_frames = 2 if quick else 4
        ref_fps = reference_render(rec.mu, rec.sd, rec.labels, ref_frames, tmp)
        rows.append(
            {
                "workload": f"4. animate VAE densities, {len(rec.labels):,} points, "
                f"{frames} frames (frames/s)",
                "nnlab": fps,
                "reference": ref_fps,
                "ratio": fps / ref_fps,
                "target": ">= 30x",
                "ok": fps / ref_fps >= 30,
            }
        )

        l3 = nnlab_train(
            runs,
            [
                "classifier",
                "--preset=latent3",
                *common,
                "--epochs=2",
                "--snapshot_every=54" if not quick else "--snapshot_every=20",
            ],
        )
        l3rec = record.load_recording(store.open_run(l3["id"], runs).latents, "classifier")
        t0 = time.perf_counter()
        r = nnlab_cmd("animate", l3["id"], f"--runs_dir={runs}")
        cube = len(l3rec) / (time.perf_counter() - t0)
        rows.append(
            {
                "workload": f"4b. animate 3-D cube, {len(l3rec)} frames (frames/s)",
                "nnlab": cube,
                "reference": None,
                "ratio": None,
                "target": "stated",
                "ok": True,
            }
        )
        t0 = time.perf_counter()
        r = nnlab_cmd("masks", l3["id"], f"--runs_dir={runs}")
        rows.append(
            {
                "workload": "4c. masks of 10 units, GIF + PNG (s, whole command)",
                "nnlab": time.perf_counter() - t0,
                "reference": None,
                "ratio": None,
                "target": "stated",
                "ok": r.returncode == 0,
            }
        )

        # 5. start-up on a store of 50 runs
        log("5. start-up")
        small = nnlab_train(runs, ["vae", "--dataset=mnist-sample", "--snapshot_every=50"])
        store50 = tmp / "store50"
        store50.mkdir()
        for i in range(50):
            shutil.copytree(runs / small["id"], store50 / f"vae-20260101-{i:06d}")

        def wall(*args):
            t0 = time.perf_counter()
            r = nnlab_cmd(*args, env={"PAGER": "cat"})
            assert r.returncode == 0, r.stderr
            return time.perf_counter() - t0

        help_s, _ = timed(lambda: wall("--help"), 5)
        summ_s, _ = timed(lambda: wall("summary", "--json", f"--runs_dir={store50}"), 5)
        rows.append(
            {
                "workload": "5. nnlab --help (s, wall)",
                "nnlab": help_s,
                "reference": None,
                "ratio": None,
                "target": "< 0.5 s",
                "ok": help_s < 0.5,
            }
        )
        rows.append(
            {
                "workload": "5b. nnlab summary --json, 50 runs (s, wall)",
                "nnlab": summ_s,
                "reference": None,
                "ratio": None,
                "target": "< 0.5 s",
                "ok": summ_s < 0.5,
            }
        )

        # 6. memory and disk
        chunks = record.chunk_files(run.latents)
        arrays = sum(v.nbytes for p in chunks for k, v in np.load(p).items() if k in ("mu", "sd"))
        on_disk = sum(p.stat().st_size for p in chunks)
        per = len(rec) * len(rec.labels)
        rows.append(
            {
                "workload": "6. peak RSS of workload 1 (MB)",
                "nnlab": nn1["peak_rss_mb"],
                "reference": None,
                "ratio": None,
                "target": "< 1536 MB",
                "ok": nn1["peak_rss_mb"] < 1536,
            }
        )
        rows.append(
            {
                "workload": "6b. recording, bytes per probe image per snapshot",
                "nnlab": arrays / per,
                "reference": None,
                "ratio": None,
                "target": "<= 8",
                "ok": arrays / per <= 8,
                "note": f"files incl. steps and zip headers: {on_disk / per:.2f}",
            }
        )

        # 7. classifier preset: nielsen epoch time
        log("7. nielsen classifier")
        ni = nnlab_train(
            runs, ["classifier", "--preset=nielsen", *common, "--epochs=1", "--snapshot_every=0"]
        )
        ref7 = reference_classifier_steps(tv_root, name, 300 if quick else 1500)
        n_steps = ni["steps"]
        rows.append(
            {
                "workload": f"7. nielsen epoch ({n_steps:,} steps of 10) time (s)",
                "nnlab": ni["seconds"],
                "reference": n_steps / ref7,
                "ratio": (n_steps / ref7) / ni["seconds"],
                "target": ">= 3x",
                "ok": (n_steps / ref7) / ni["seconds"] >= 3,
            }
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    machine = f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if opts.json:
        print(
            json.dumps(
                {"dataset": name, "machine": machine, "quick": quick, "rows": rows}, indent=2
            )
        )
        return
    print(f"dataset {name} · {machine}" + (" · --quick" if quick else ""))
    print(f"{'workload':<74} {'nnlab':>10} {'reference':>10} {'ratio':>8}  target")
    for r in rows:
        ref = "" if r["reference"] is None else f"{r['reference']:.3g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        mark = "ok" if r["ok"] else "MISSED"
        print(f"{r['workload']:<74} {r['nnlab']:>10.3g} {ref:>10} {ratio:>8}  {r['target']} {mark}")
        if r.get("note"):
            print(f"    {r['note']}")


if __name__ == "__main__":
    main()
