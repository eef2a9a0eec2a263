"""The t-SNE/UMAP views of `nnlab project` measured on a recording of the nielsen preset's
30-unit layer (Fashion-MNIST when Debian's copy is installed, else the bundled sample):
coherence against frames embedded independently, faithfulness at the last frame, and time.

    python benchmarks/projection.py [--methods=tsne,umap] [--json]

Coherence: the median displacement of a point between consecutive frames over the frame's
spread (median distance to its centroid), for the continued frames and for the same
frames each embedded alone from a random start (seeds differing): their ratio. Faithfulness:
the share of each point's 10 nearest neighbours in the layer kept among its 10 nearest in
2-D, at the last frame, continued against alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nnlab.analysis import projection as P
from nnlab.store import folders, record

ALONE_FRAMES = 10  # the independent baseline: the last 10 frames, each embedded alone


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def nnlab(*args: str, runs: Path) -> str:
    env = dict(os.environ, NNLAB_RUNS=str(runs))
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", *args], capture_output=True, text=True, env=env
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return r.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="tsne,umap")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    dataset = (
        "fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "mnist-sample"
    )
    runs = Path(tempfile.mkdtemp(prefix="nnlab-project-")) / "runs"
    # one epoch of 784-30-10, 100 snapshots of the 30-unit layer
    steps = 5400 if dataset == "fashion-mnist" else 360
    log(f"training nielsen on {dataset} ({steps} steps, 100 snapshots)")
    run_id = nnlab(
        "train", "classifier", "--preset=nielsen", f"--dataset={dataset}", "--epochs=1",
        f"--snapshot_every={steps // 100}", runs=runs,
    )  # fmt: skip
    opened = folders.read_run(run_id, runs)
    rec = record.load_recording(opened.run.latents, ("act",))
    results = {"dataset": dataset, "run": run_id, "snapshots": len(rec), "rows": []}
    for method in opts.methods.split(","):
        log(f"{method}: 100 frames of 2,000 points")
        t0 = time.perf_counter()
        out = nnlab(
            "project", run_id, f"--method={method}", "--points=2000", "--every=1", runs=runs
        )
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        nnlab("project", run_id, f"--method={method}", "--points=2000", "--every=1", runs=runs)
        again = time.perf_counter() - t0
        with np.load(out, allow_pickle=False) as z:
            coords, positions, snaps = z["coords"], z["positions"], z["snapshots"]
        frames = [rec.points[s][positions] for s in snaps]
        log(f"{method}: the last {ALONE_FRAMES} frames embedded alone")
        alone = np.stack(
            [P.embed_alone(f, method, seed=i) for i, f in enumerate(frames[-ALONE_FRAMES:])]
        )
        continued = P.coherence(coords[-ALONE_FRAMES:])
        independent = P.coherence(alone)
        kept = P.neighbour_preservation(frames[-1], coords[-1])
        kept_alone = P.neighbour_preservation(frames[-1], alone[-1])
        results["rows"].append(
            {
                "method": method,
                "frames": len(snaps),
                "points": len(positions),
                "seconds": round(first, 1),
                "again_seconds": round(again, 2),
                "coherence_continued": round(continued, 4),
                "coherence_alone": round(independent, 4),
                "coherence_ratio": round(independent / continued, 1),
                "knn10_continued": round(kept, 3),
                "knn10_alone": round(kept_alone, 3),
                "knn10_ratio": round(kept / kept_alone, 3),
            }
        )
    if opts.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{dataset} · nielsen 784-30-10, one epoch · {len(rec)} snapshots · {os.cpu_count()} CPUs"
    )
    print(
        f"{'method':<7}{'frames x points':>17}{'time':>9}{'again':>8}{'coherence cont/alone':>24}"
        f"{'ratio':>8}{'10-NN kept cont/alone':>25}{'ratio':>8}"
    )
    for r in results["rows"]:
        print(
            f"{r['method']:<7}{r['frames']:>8} x {r['points']:<6}{r['seconds']:>8}s"
            f"{r['again_seconds']:>7}s{r['coherence_continued']:>12} / {r['coherence_alone']:<9}"
            f"{r['coherence_ratio']:>7}x{r['knn10_continued']:>13} / {r['knn10_alone']:<9}"
            f"{r['knn10_ratio']:>7}x"
        )


if __name__ == "__main__":
    main()
