"""A search against a grid, side by side in one invocation: the reference VAE (`nnlab
train vae`: one epoch of the bundled MNIST sample per point), lr on a log scale from 1e-4
to 1e-1 and batch_size from 16 to 256.

1. A 7 x 7 grid: lr 1e-4, 3.2e-4, ..., 1e-1 (half decades), batch_size 16, 25, 40, 64,
   102, 161, 256 (log-spaced), every point to the end of its epoch.
2. `--search=tpe --prune=asha --prune_every=0.25` over the same box (log:1e-4..1e-1,
   log:16..256) with one worker, so that its proposals are reproducible, for each
   --search_seed asked.

Reported for each: trials, training steps (every step of every run, pruned ones' too,
from their meta.json), best test ELBO; for a search, its gap to the grid's best, the
steps it used as a share of the grid's, and the trial (and steps so far) at which it
first came within 1% of the grid's best.

    python benchmarks/search.py [--trials=15] [--seeds=0,1,2,3,4] [--json] [--write-docs]

--write-docs writes the table into the README and docs/commands/sweep.md (their
search-benchmark and search-table blocks), a sentence into the README, and the first
seed's summary and plot (`nnlab summary SWEEP_ID [--plot]`) to docs/summary-search.txt and
docs/search.png, as docs/make_figures.sh search runs it.

Training steps, not seconds, are the budget compared: they do not depend on how loaded
the machine is (the wall times are printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = ["vae", "--dataset=mnist-sample"]
LRS = [f"{10 ** (-4 + k / 2):.3g}" for k in range(7)]
BATCHES = [round(16 * 2 ** (4 * k / 6)) for k in range(7)]
WITHIN = 0.01


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def nnlab(*args: str, runs: Path) -> str:
    """Run nnlab (progress to our stderr); its stdout."""
    env = {**os.environ, "NNLAB_RUNS_DIR": str(runs)}
    cmd = [sys.executable, "-m", "nnlab", *args, f"--runs_dir={runs}"]
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip()


def measure(sweep_id: str, runs: Path) -> dict:
    """Trials, steps and values of a sweep, from its sweep.json and its runs' meta.json."""
    rec = json.loads((runs / sweep_id / "sweep.json").read_text())
    rows = []
    for p in rec["points"]:
        meta = json.loads((runs / p["run"] / "meta.json").read_text())
        value = (meta.get("final") or {}).get("test_elbo") if p["status"] == "finished" else None
        rows.append({"status": p["status"], "steps": meta["steps_done"], "value": value})
    values = [r["value"] for r in rows if r["value"] is not None]
    return {
        "trials": len(rows),
        "finished": sum(r["status"] == "finished" for r in rows),
        "pruned": sum(r["status"] == "pruned" for r in rows),
        "steps": sum(r["steps"] for r in rows),
        "best": max(values),
        "rows": rows,
    }


def first_within(rows: list[dict], target: float) -> tuple[int | None, int | None]:
    """The trial (1-based) at which the best so far came within WITHIN of target, and the
    steps spent up to and including it."""
    steps = 0
    for k, r in enumerate(rows, 1):
        steps += r["steps"]
        if r["value"] is not None and r["value"] >= target * (1 + WITHIN):  # ELBO < 0
            return k, steps
    return None, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nnlab-search-"))
    out: dict = {}
    t0 = time.perf_counter()
    grid_id = nnlab(
        "sweep",
        *BASE,
        f"--lr={','.join(LRS)}",
        f"--batch_size={','.join(map(str, BATCHES))}",
        "--jobs=2",
        runs=root / "grid",
    )
    out["grid"] = {**measure(grid_id, root / "grid"), "seconds": time.perf_counter() - t0}
    target = out["grid"]["best"]
    out["searches"] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.perf_counter()
        runs = root / f"tpe-{seed}"
        sid = nnlab(
            "sweep",
            *BASE,
            "--search=tpe",
            f"--trials={args.trials}",
            "--lr=log:1e-4..1e-1",
            "--batch_size=log:16..256",
            "--prune=asha",
            "--prune_every=0.25",
            f"--search_seed={seed}",
            "--jobs=1",
            runs=runs,
        )
        if args.write_docs and not out["searches"]:
            docs = Path(__file__).resolve().parent.parent / "docs"
            (docs / "summary-search.txt").write_text(nnlab("summary", sid, runs=runs) + "\n")
            shutil.copy(nnlab("summary", sid, "--plot", runs=runs), docs / "search.png")
        m = measure(sid, runs)
        k, steps = first_within(m["rows"], target)
        m.update(
            seed=seed,
            seconds=time.perf_counter() - t0,
            gap=(target - m["best"]) / abs(target),
            share=m["steps"] / out["grid"]["steps"],
            within_at_trial=k,
            within_at_steps=steps,
        )
        out["searches"].append(m)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return
    text = table(out)
    print(text)
    if args.write_docs:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs"))
        from measure_sources import write_block

        write_block("search-summary", headline(out))  # the README
        write_block("search-benchmark", text)  # the README
        write_block("search-table", text)  # the sweep page


def table(out: dict) -> str:
    """The measurements as a Markdown table and a line on how they were made."""
    g = out["grid"]
    rows = [
        "| | trials (finished, pruned) | training steps | best test ELBO | within 1% of the "
        "grid's best after |",
        "| --- | --- | --- | --- | --- |",
        f"| 7 × 7 grid | 49 (49, 0) | {g['steps']:,} (100%) | {g['best']:.2f} | - |",
    ]
    for m in out["searches"]:
        within = (
            f"trial {m['within_at_trial']}, {m['within_at_steps']:,} steps "
            f"({m['within_at_steps'] / g['steps']:.0%})"
            if m["within_at_trial"]
            else "never"
        )
        rows.append(
            f"| tpe + asha, seed {m['seed']} | {m['trials']} ({m['finished']}, {m['pruned']}) | "
            f"{m['steps']:,} ({m['share']:.0%}) | {m['best']:.2f} ({-m['gap']:+.2%}) | {within} |"
        )
    shares = [m["share"] for m in out["searches"]]
    return "\n".join(rows) + (
        f"\n\nThe reference VAE, one epoch of the bundled sample per trial "
        f"(`python benchmarks/search.py`, one invocation): the search's steps are "
        f"{min(shares):.0%}-{max(shares):.0%} of the grid's; in brackets, each best ELBO's "
        "difference from the grid's best (positive: better)."
    )


def headline(out: dict) -> str:
    """One sentence for the README."""
    g, ms = out["grid"], out["searches"]
    ok = sum(m["gap"] <= WITHIN for m in ms)
    return (
        f"On the reference VAE (one epoch of the bundled sample per trial, lr log 1e-4..1e-1 × "
        f"batch size 16..256), a 7 × 7 grid's 49 runs take {g['steps']:,} training steps to "
        f"a best test ELBO of {g['best']:.2f}; `--search=tpe --prune=asha` with "
        f"{ms[0]['trials']} trials came within 1% of it for {ok} of {len(ms)} search seeds, "
        f"using {min(m['share'] for m in ms):.0%}-{max(m['share'] for m in ms):.0%} of the "
        "grid's steps:"
    )


if __name__ == "__main__":
    main()
