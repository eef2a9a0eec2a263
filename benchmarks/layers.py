"""Every layer over training (#39), measured: what recording several layers costs, how long
the measures take, and the shapes of two papers reproduced at a size 2 cores train in
minutes. One invocation, each training in a fresh process with 2 torch threads, one after
another:

1. cost: the same MLP (784-256-128-64-10, ReLU, AdamW lr 1e-3, batch 64, one epoch of
   Fashion-MNIST, a snapshot of 2,000 test images every 50 steps) recording its 64-unit
   layer alone (--latent_layer), then all four layers (--record_layers=all): the
   training's wall time, and in this process the time of one snapshot's pass of each kind
   (median of 20).
2. measures: a 6-layer recording (784-256-256-128-128-64-10, ~100 snapshots of 2,000
   test images, AdamW lr 1e-3, batch 64, one epoch): `nnlab layers --json` cold
   (nothing cached) and again (cached).
3. collapse: Papyan, Han and Donoho's setting at small scale: an MLP 784-256-256-128-10
   (ReLU, cross-entropy) on a class-balanced Fashion-MNIST subset (600 training images a
   class), SGD with momentum 0.9, weight decay 5e-4, lr 0.05 divided by 10 at a third and
   two thirds of 350 epochs, batch 128, measured on 2,000 training images: NC1-NC4 from
   initialisation through the terminal phase (training error 0), and the step at which
   each layer's CKA to its final state passes 0.9 (bottom-up convergence, Raghu et al.).

    python benchmarks/layers.py [--only=cost,measures,collapse] [--write-docs] [--figures]

--write-docs replaces the block <!-- layers-benchmark:start --> ... :end --> of
docs/commands/layers.md; --figures copies the collapse run's pictures into docs/. Needs
Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
COST = [
    "classifier", "--dataset=fashion-mnist", "--sizes=[784,256,128,64,10]",
    "--activation=relu", "--loss=ce", "--optimizer=adamw", "--lr=1e-3", "--batch_size=64",
    "--epochs=1", "--snapshot_every=50", "--probe_size=2000",
]  # fmt: skip
MEASURES = [
    "classifier", "--dataset=fashion-mnist", "--sizes=[784,256,256,128,128,64,10]",
    "--activation=relu", "--loss=ce", "--optimizer=adamw", "--lr=1e-3", "--batch_size=64",
    "--epochs=1", "--snapshot_every=8", "--probe_size=2000", "--record_layers=all",
]  # fmt: skip
EPOCHS = 350  # as Papyan et al. train
COLLAPSE = [
    "classifier", "--sizes=[784,256,256,128,10]", "--activation=relu", "--loss=ce",
    "--optimizer=sgd", "--momentum=0.9", "--weight_decay=5e-4", "--lr=0.05",
    f"--epochs={EPOCHS}", f"--lr_milestones=[{EPOCHS // 3},{2 * EPOCHS // 3}]",
    "--batch_size=128", "--val_fraction=0", "--probe_split=train", "--probe_size=2000",
    "--snapshot_every=200", "--record_layers=all", "--log_every=200",
]  # fmt: skip
PER_CLASS = 600


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))


def nnlab(runs: Path, *args: str) -> tuple[str, float]:
    """An nnlab command in a fresh process: (stdout, wall seconds)."""
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", *args, f"--runs_dir={runs}"],
        capture_output=True,
        text=True,
        env=env(),
    )
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return r.stdout.strip(), time.perf_counter() - t


def subset(path: Path) -> str:
    """A class-balanced Fashion-MNIST subset as an npz (PER_CLASS training images a class,
    the whole test split), the dataset name that reads it."""
    sys.path.insert(0, str(ROOT))
    from nnlab.data import catalog

    raw = catalog.load_raw("fashion-mnist")
    rng = np.random.default_rng(0)
    keep = np.sort(
        np.concatenate(
            [rng.permutation(np.flatnonzero(raw.train_labels == c))[:PER_CLASS] for c in range(10)]
        )
    )
    np.savez(
        path,
        x=raw.train_images[keep, 0],
        y=raw.train_labels[keep],
        x_test=raw.test_images[:, 0],
        y_test=raw.test_labels,
        classes=np.array(raw.classes),
    )
    return f"npz:{path}"


def cost(runs: Path) -> dict:
    """Training wall time with one recorded layer and with four; one snapshot's pass."""
    one, t_one = nnlab(runs, "train", *COST, "--latent_layer=3")
    four, t_four = nnlab(runs, "train", *COST, "--record_layers=all")
    sys.path.insert(0, str(ROOT))
    import torch

    from nnlab import families
    from nnlab.store import folders
    from nnlab.training import snapshots
    from nnlab.training.loading import load_model

    torch.set_num_threads(THREADS)
    opened = folders.read_run(four, runs)
    cfg, model, _ = load_model(opened)
    x = torch.rand(2000, 784)
    tap = families.of(cfg).latent_tap(cfg)

    def median_ms(f) -> float:
        f()
        times = []
        for _ in range(20):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    names = cfg.recorded_layers()
    single = median_ms(lambda: snapshots.encode_probe(model, cfg, x))
    joined = median_ms(lambda: snapshots.capture_layers(model, names, x, "mean", tap))
    return {
        "train_one_s": t_one,
        "train_four_s": t_four,
        "snapshot_one_ms": single,
        "snapshot_four_ms": joined,
    }


def measures(runs: Path) -> dict:
    """`nnlab layers --json` of a 6-layer, ~100-snapshot recording, cold and cached."""
    run_id, _ = nnlab(runs, "train", *MEASURES)
    out, cold = nnlab(runs, "layers", run_id, "--json")
    _, warm = nnlab(runs, "layers", run_id, "--json")
    m = json.loads(out)
    return {
        "run": run_id,
        "layers": len(m["names"]),
        "snapshots": len(m["steps"]),
        "cold_s": cold,
        "cached_s": warm,
        "converged": converged(m),
    }


def converged(m: dict, level: float = 0.9) -> dict:
    """Each layer's first measured step from which its CKA to its final state stays at or
    above `level` (bottom-up: lower layers earlier)."""
    out = {}
    for name in m["names"]:
        values = np.array(m["cka_final"][name])
        below = np.flatnonzero(values < level)
        first = 0 if not len(below) else below[-1] + 1
        out[name] = m["steps"][min(first, len(values) - 1)]
    return out


def collapse(runs: Path, tmp: Path, figures: bool) -> dict:
    """Papyan et al.'s setting, small: NC1-NC4 over training and the terminal phase."""
    dataset = subset(tmp / "fmnist-subset.npz")
    run_id, wall = nnlab(runs, "train", *COLLAPSE, f"--dataset={dataset}")
    out, _ = nnlab(runs, "layers", run_id, "--json")
    paths, _ = nnlab(runs, "layers", run_id)
    m = json.loads(out)
    lines = [json.loads(x) for x in (runs / run_id / "metrics.jsonl").read_text().splitlines() if x]
    epochs = [x for x in lines if x.get("kind") == "epoch"]
    nc = m["collapse"]
    # the terminal phase begins when the network errs on none of the probe's training
    # images (measured at each snapshot, from the recorded layer and weights)
    zeros = [i for i, e in enumerate(nc["error"]) if e == 0]
    at = zeros[0] if zeros else None
    result = {
        "run": run_id,
        "wall_s": wall,
        "layer": m["collapse_layer"],
        "zero_error_step": m["steps"][at] if at is not None else None,
        "zero_error_epoch": m["epochs"][at] if at is not None else None,
        "zero_error_snapshots": f"{len(zeros)} of {len(nc['error'])}",
        "final_train_acc": epochs[-1]["train_acc"],
        "final_test_acc": epochs[-1]["test_acc"],
        "nc_start": {k: v[0] for k, v in nc.items()},
        "nc_tpt": {k: v[at] for k, v in nc.items()} if at is not None else None,
        "nc_end": {k: v[-1] for k, v in nc.items()},
        "converged": converged(m),
    }
    if figures:
        for path in paths.splitlines():
            name = Path(path).name.replace("layers-", "layers-collapse-")
            shutil.copy(path, ROOT / "docs" / name)
    return result


def table(results: dict) -> str:
    """The docs block: what was measured, as markdown."""
    rows = ["| measured | value |", "| --- | --- |"]
    if "cost" in results:
        c = results["cost"]
        rows.append(
            f"| one snapshot's pass, 2,000 images: one layer / four layers (one pass) | "
            f"{c['snapshot_one_ms']:.1f} ms / {c['snapshot_four_ms']:.1f} ms "
            f"({c['snapshot_four_ms'] / c['snapshot_one_ms']:.2f}×) |"
        )
        rows.append(
            f"| one epoch of Fashion-MNIST, a snapshot every 50 steps: one layer / four | "
            f"{c['train_one_s']:.1f} s / {c['train_four_s']:.1f} s "
            f"({c['train_four_s'] / c['train_one_s']:.2f}×) |"
        )
    if "measures" in results:
        r = results["measures"]
        rows.append(
            f"| `nnlab layers --json`, {r['layers']} layers × {r['snapshots']} snapshots × "
            f"2,000 images: cold / cached (a fresh process each, start-up included) | "
            f"{r['cold_s']:.1f} s / {r['cached_s']:.1f} s |"
        )
        steps = ", ".join(f"{k} {v}" for k, v in r["converged"].items())
        rows.append(f"| … step each layer's CKA to its final state stays ≥ 0.9 | {steps} |")
    if "collapse" in results:
        r = results["collapse"]
        for key in ("nc1", "nc2", "nc3", "nc4"):
            tpt = f"{r['nc_tpt'][key]:.4g}" if r["nc_tpt"] else "–"
            zero = r["zero_error_epoch"]
            rows.append(
                f"| {key.upper()} of {r['layer']}: initialisation / training error 0 "
                f"({f'epoch {zero:.0f}' if zero is not None else 'not reached'}) / end "
                f"(epoch {EPOCHS}) | "
                f"{r['nc_start'][key]:.4g} / {tpt} / {r['nc_end'][key]:.4g} |"
            )
        steps = ", ".join(f"{k} {v}" for k, v in r["converged"].items())
        rows.append(f"| … step each layer's CKA to its final state stays ≥ 0.9 | {steps} |")
        rows.append(
            f"| … training {r['wall_s']:.0f} s; final train / test accuracy | "
            f"{100 * r['final_train_acc']:.2f}% / {100 * r['final_test_acc']:.2f}% |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="cost,measures,collapse")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--figures", action="store_true")
    opts = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        if "cost" in opts.only:
            log("cost: one recorded layer, then four…")
            results["cost"] = cost(runs)
        if "measures" in opts.only:
            log("measures: a 6-layer recording, nnlab layers cold and cached…")
            results["measures"] = measures(runs)
        if "collapse" in opts.only:
            log(f"collapse: {EPOCHS} epochs of a Fashion-MNIST subset…")
            results["collapse"] = collapse(runs, Path(tmp), opts.figures)
    print(json.dumps(results, indent=1))
    text = table(results)
    log(text)
    if opts.write_docs:
        sys.path.insert(0, str(ROOT / "docs"))
        from measure_sources import write_block  # docs/: finds the page that holds the block

        write_block("layers-benchmark", text)


if __name__ == "__main__":
    main()
