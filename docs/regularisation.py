"""Measure what regularisation and continual backprop do, and write the README's tables.

    python docs/regularisation.py penalties    # linear-ce: L1 against L2, sparsity, masks
    python docs/regularisation.py dropout      # nielsen: train/test gap with and without
    python docs/regularisation.py plasticity   # Permuted MNIST: SGD, L2, continual backprop
    python docs/regularisation.py all [--write-readme]

Every run is an ordinary `nnlab train` on the bundled MNIST sample in a temporary runs
dir; numbers are read back from the runs (checkpoints and metrics.jsonl), pictures made
with `nnlab masks` (penalties) or drawn from metrics.jsonl (plasticity) into docs/. With
--write-readme each table replaces its <!-- name:start --> ... <!-- name:end --> block.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from measure_sources import measure  # docs/: runs dir, printing, the README's blocks

from nnlab.helpers import files
from nnlab.store import folders, metrics
from nnlab.training import data
from nnlab.training.loading import load_model

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SAMPLE = "--dataset=mnist-sample"
STRENGTH = 1e-3  # the same lambda for L1 and L2
DROPOUT_SEEDS = (1, 2, 3)
TASKS = 300  # Permuted MNIST tasks of one epoch of the sample's 4,000 training images
SEEDS = "1,2,3"
# The continual-backprop authors' Permuted-MNIST settings scaled to this machine: ReLU,
# Kaiming init, SGD, the adaptable-contribution utility; their replacement rate 1e-4 per
# example and maturity 100 examples become per step of 32 examples 3.2e-3 and 4 steps.
PLASTIC = [
    "classifier",
    SAMPLE,
    "--sizes=[784,100,10]",
    "--activation=relu",
    "--loss=ce",
    "--optimizer=sgd",
    "--lr=0.05",
    "--batch_size=32",
    f"--epochs={TASKS}",
    "--permute_every=1",
    "--val_fraction=0",
    "--snapshot_every=0",
    "--probe_size=500",
    "--checkpoint_every_steps=0",
    "--init=kaiming",
    "--cbp_utility=adaptable_contribution",
    "--cbp_maturity=4",
]
# One grid: the methods (L2 on or off, continual backprop on or off) and the seeds.
GRID = ["--l2=0,1e-3", "--cbp_rate=0,3.2e-3", f"--seed={SEEDS}", "--jobs=2"]


def method_name(values: dict) -> str:
    """A point's method, from its swept values."""
    parts = [f"L2 ({values['l2']:g})"] if values["l2"] else []
    parts += [f"continual backprop (ρ = {values['cbp_rate']:g})"] if values["cbp_rate"] else []
    return "SGD + " + " + ".join(parts) if parts else "SGD"


def nnlab(runs: Path, *args: str) -> str:
    """An nnlab command in a fresh process; returns its stdout (a run id or paths)."""
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", *args, f"--runs_dir={runs}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    print(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else args[0], file=sys.stderr)
    return r.stdout.strip()


def sparsity(run: folders.Run) -> tuple[float, float]:
    """(share of first-layer |w| below 1% of the largest, share exactly 0) at the end."""
    w = files.load_checkpoint(run.checkpoints / "final.pt")["model"]["layers.0.weight"].abs()
    return float((w < 0.01 * w.max()).float().mean()), float((w == 0).float().mean())


def accuracies(run: folders.Run) -> tuple[float, float]:
    """(train, test) accuracy of the final model in evaluation mode (no dropout)."""
    cfg, model, _ = load_model(run, "final")
    s = data.load(cfg.dataset, None, cfg.val_fraction, cfg.seed)
    with torch.no_grad():
        train = (model(s.train_x).argmax(1) == s.train_y).float().mean()
        test = (model(s.test_x).argmax(1) == s.test_y).float().mean()
    return float(train), float(test)


def penalties(runs: Path) -> str:
    """linear-ce with no penalty, L1 and L2 at the same strength: sparsity and accuracy;
    the L1 and L2 masks into docs/."""
    rows = [
        "| penalty | weights with \\|w\\| < 1% of the largest | test accuracy | weight norm |",
        "| --- | --- | --- | --- |",
    ]
    for name, flag in (("none", None), ("L1", "l1"), ("L2", "l2")):
        args = ["classifier", "--preset=linear-ce", SAMPLE, "--snapshot_every=0", "--seed=1"]
        run_id = nnlab(runs, "train", *args, *([f"--{flag}={STRENGTH}"] if flag else []))
        run = folders.open_run(run_id, runs)
        share, _ = sparsity(run)
        w = files.load_checkpoint(run.checkpoints / "final.pt")["model"]["layers.0.weight"]
        acc = run.meta()["final"]["test_acc"]
        label = name if not flag else f"{name}, λ = {STRENGTH:g}"
        rows.append(f"| {label} | {share:.1%} | {acc:.1%} | {float(w.norm()):.1f} |")
        if flag:
            out = runs / f"masks-{flag}"
            gif, png = nnlab(runs, "masks", run_id, f"--out={out}").split()
            shutil.copy(png, DOCS / f"masks-{flag}.png")
    note = (
        "\n\n`linear-ce` (784-10, softmax cross-entropy, SGD lr 0.25, batch 10, 10 epochs) on "
        "the bundled sample, seed 1; the masks below are the L1 and L2 runs."
    )
    return "\n".join(rows) + note


def dropout(runs: Path) -> str:
    """nielsen with and without dropout: train and test accuracy in evaluation mode."""
    rows = [
        "| dropout | train accuracy | test accuracy | gap (train − test) |",
        "| --- | --- | --- | --- |",
    ]
    for p in (None, 0.2, 0.5):
        trains, tests = [], []
        for seed in DROPOUT_SEEDS:
            flags = [f"--dropout={p}"] if p else []
            run_id = nnlab(
                runs, "train", "classifier", "--preset=nielsen", SAMPLE, "--snapshot_every=0",
                f"--seed={seed}", *flags,
            )  # fmt: skip
            tr, te = accuracies(folders.open_run(run_id, runs))
            trains.append(tr)
            tests.append(te)
        gaps = [a - b for a, b in zip(trains, tests, strict=True)]
        rows.append(f"| {p or 'none'} | {_ms(trains)} | {_ms(tests)} | {_ms(gaps, points=True)} |")
    note = (
        "\n\n`nielsen` (784-30-10, sigmoid, quadratic cost, SGD lr 3.0, batch 10, 30 epochs) on "
        f"the bundled sample (3,600 training images), mean ± sd over seeds "
        f"{', '.join(map(str, DROPOUT_SEEDS))}; accuracies of the final model in evaluation "
        "mode (dropout off) on the whole train and test splits."
    )
    return "\n".join(rows) + note


def _ms(values: list[float], points: bool = False) -> str:
    m, s = statistics.mean(values), statistics.stdev(values)
    if points:
        return f"{100 * m:.1f} ± {100 * s:.1f} points"
    return f"{m:.1%} ± {s:.1%}"


def plasticity(runs: Path) -> str:
    """Permuted MNIST for TASKS tasks, as one `nnlab sweep` over the methods and 3 seeds:
    accuracy at the end of each task and the hidden layer's health, mean ± sd over the
    seeds; docs/plasticity.png."""
    return plasticity_of(runs, nnlab(runs, "sweep", *PLASTIC, *GRID))


def plasticity_of(runs: Path, sweep_id: str) -> str:
    """The table (and docs/plasticity.png) of a finished plasticity sweep."""
    rec = files.read_json(runs / sweep_id / "sweep.json")
    results: dict[str, list[dict]] = {}
    for point in rec["points"]:
        lines = metrics.read(folders.open_run(point["run"], runs).metrics)
        results.setdefault(method_name(point["values"]), []).append(
            {"tasks": metrics.of_kind(lines, "task"), "epochs": metrics.of_kind(lines, "epoch")}
        )
    _plasticity_figure(results)
    tenth = TASKS // 10
    rows = [
        f"| method ({len(SEEDS.split(','))} seeds, mean ± sd) | accuracy, tasks 1–{tenth} | "
        f"accuracy, last {tenth} tasks | effective rank, first → last task | dead units, "
        "first → last | units replaced |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, seeds in results.items():
        early = [statistics.mean(x["test_acc"] for x in r["tasks"][:tenth]) for r in seeds]
        late = [statistics.mean(x["test_acc"] for x in r["tasks"][-tenth:]) for r in seeds]
        rank = [
            (r["epochs"][0]["h1_effective_rank"], r["epochs"][-1]["h1_effective_rank"])
            for r in seeds
        ]
        dead = [(r["epochs"][0]["h1_dead"], r["epochs"][-1]["h1_dead"]) for r in seeds]
        replaced = [r["epochs"][-1].get("cbp_replaced", 0) for r in seeds]
        rows.append(
            f"| {name} | {_ms(early)} | {_ms(late)}"
            f" | {statistics.mean(a for a, _ in rank):.1f} → {_ms_plain([b for _, b in rank])}"
            f" | {statistics.mean(a for a, _ in dead):.0%} → {_ms([b for _, b in dead])}"
            f" | {statistics.mean(replaced):,.0f} |"
        )
    return f"(`nnlab summary {sweep_id}` pools the same seeds)\n\n" + "\n".join(rows)


def _ms_plain(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _plasticity_figure(results: dict[str, list[dict]]) -> None:
    """Three panels against the task: accuracy (10-task mean), effective rank, dead units;
    each method's mean over its seeds, shaded ± one sd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), dpi=80)
    for name, seeds in results.items():
        t = [x["task"] for x in seeds[0]["tasks"]]
        panels = (
            np.array([_smooth([x["test_acc"] for x in r["tasks"]]) for r in seeds]),
            np.array([[e["h1_effective_rank"] for e in r["epochs"]] for r in seeds]),
            np.array([[100 * e["h1_dead"] for e in r["epochs"]] for r in seeds]),
        )
        for ax, values in zip(axes, panels, strict=True):
            mean, sd = values.mean(0), values.std(0, ddof=1)
            (line,) = ax.plot(t[: len(mean)], mean, lw=1.2, label=name)
            ax.fill_between(t[: len(mean)], mean - sd, mean + sd, alpha=0.2, color=line.get_color())
    titles = (
        "test accuracy at the end of each task (mean of 10)",
        "effective rank of the hidden layer",
        "dead hidden units (%)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("task")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Permuted MNIST (bundled sample): {TASKS} tasks of one epoch, 784-100-10 ReLU, Kaiming "
        f"init, SGD lr 0.05, batch 32; mean ± sd over seeds {SEEDS}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(DOCS / "plasticity.png")
    plt.close(fig)


def _smooth(values: list[float], k: int = 10) -> list[float]:
    """A trailing mean over k tasks (fewer at the start)."""
    return [statistics.mean(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


def main() -> None:
    """Measure what was asked, print the tables, optionally write them into the README."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="+", choices=("penalties", "dropout", "plasticity", "all"))
    ap.add_argument("--write-readme", action="store_true")
    opts = ap.parse_args()
    tables = {"penalties": penalties, "dropout": dropout, "plasticity": plasticity}
    chosen = list(tables) if "all" in opts.what else opts.what
    torch.set_num_threads(1)  # the reading side; training runs in its own processes
    measure(tables, chosen, opts.write_readme)


if __name__ == "__main__":
    main()
