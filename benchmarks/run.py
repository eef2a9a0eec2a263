"""nnlab's benchmarks: each workload run twice in one invocation, nnlab and a reference
written the usual way (benchmarks/reference.py), on full Fashion-MNIST when Debian's copy is
installed (else the bundled sample, said in the output).

    python benchmarks/run.py [--quick] [--json]

Prints a table of medians over repeats and the ratio reference/nnlab (or nnlab against its
target), and with --json the same as JSON on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import reference as ref
import torch


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Row:
    """One line of the table: nnlab's number, the reference's, and the target."""

    workload: str
    nnlab: float
    reference: float | None = None
    ratio: float | None = None  # reference time / nnlab time, or nnlab rate / reference rate
    target: str = "stated"
    ok: bool = True
    note: str = ""


@dataclass
class Bench:
    """What every workload shares: the dataset, the scratch folder, earlier results."""

    name: str  # the dataset
    quick: bool
    tmp: Path
    tv_root: Path  # the dataset in torchvision's layout, for the references
    splits: object  # nnlab.training.data.Splits
    done: dict = field(default_factory=dict)  # results later workloads reuse

    @property
    def runs(self) -> Path:
        return self.tmp / "runs"

    @property
    def common(self) -> list[str]:
        return [f"--dataset={self.name}", "--seed=0"]

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.splits.train_x) / 32)

    @property
    def ref_steps(self) -> int:
        return 6 if self.quick else 24


def nnlab_cmd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the nnlab CLI in a fresh process (as a user would)."""
    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "nnlab", *args], capture_output=True, text=True, env=e, check=False
    )


def nnlab_train(runs: Path, args: list[str], env: dict | None = None) -> dict:
    """Train with the nnlab CLI; returns steps/s (from the run's own timing), peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = nnlab_cmd("train", *args, f"--runs_dir={runs}", env=env)
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


def wall(*args: str) -> float:
    """Seconds a whole nnlab command takes, start-up included."""
    t0 = time.perf_counter()
    r = nnlab_cmd(*args, env={"PAGER": "cat"})
    assert r.returncode == 0, r.stderr
    return time.perf_counter() - t0


# ------------------------------------------------------------------ workloads


def train_recording(b: Bench) -> list[Row]:
    """1. Train one epoch recording the whole test split every 4 steps."""
    log("1. train β-VAE, recording every 4 steps")
    nn1 = b.done["record"] = nnlab_train(b.runs, ["vae", *b.common, "--snapshot_every=4"])
    out = b.tmp / "ref-snapshots"
    out.mkdir()
    ref1 = b.done["ref1"] = ref.reference_vae_steps(b.tv_root, b.name, b.ref_steps, True, out)
    return [
        Row(
            "1. train VAE + record test split every 4 steps (steps/s)",
            nn1["steps_per_s"],
            ref1,
            nn1["steps_per_s"] / ref1,
            ">= 30x",
            nn1["steps_per_s"] / ref1 >= 30,
            f"one epoch of {len(b.splits.train_x):,} images: nnlab "
            f"{b.steps_per_epoch / nn1['steps_per_s']:.1f} s, reference "
            f"{b.steps_per_epoch / ref1:.0f} s",
        )
    ]


def train_plain(b: Bench) -> list[Row]:
    """2. Recording off, against the reference and against a bare in-memory loop."""
    log("2. train β-VAE, recording off")
    nn2 = b.done["plain"] = nnlab_train(b.runs, ["vae", *b.common, "--snapshot_every=0"])
    out = b.tmp / "ref-snapshots"
    ref2 = ref.reference_vae_steps(b.tv_root, b.name, b.ref_steps * 4, False, out)
    evals = (b.splits.val_x, b.splits.test_x)
    bare, _ = timed(
        lambda: ref.bare_vae_steps(b.splits.train_x, b.steps_per_epoch, evals),
        1 if b.quick else 3,
    )
    b.done["bare"] = bare
    rate = nn2["steps_per_s"]
    return [
        Row(
            "2. train VAE, recording off (steps/s)",
            rate,
            ref2,
            rate / ref2,
            ">= 2.5x",
            rate / ref2 >= 2.5,
        ),
        Row(
            "2b. same, against a bare in-memory loop (steps/s)",
            rate,
            bare,
            rate / bare,
            ">= 0.9x (within 10%)",
            rate / bare >= 0.9,
        ),
    ]


def recording_overhead(b: Bench) -> list[Row]:
    """3. Time with recording over time without, in float32 and in bfloat16."""
    plain = b.done["plain"]["steps_per_s"]
    cost = plain / b.done["record"]["steps_per_s"]
    args = ["vae", *b.common, "--snapshot_every=4", "--record_precision=bfloat16"]
    bf16 = nnlab_train(b.runs, args)
    cost_b = plain / bf16["steps_per_s"]
    return [
        Row("3. recording overhead (time with / without)", cost, target="<= 1.5x", ok=cost <= 1.5),
        Row(
            "3b. same, with --record_precision=bfloat16",
            cost_b,
            target="<= 1.5x",
            ok=cost_b <= 1.5,
            note=f"{bf16['steps_per_s']:.0f} steps/s: "
            f"{bf16['steps_per_s'] / b.done['ref1']:.0f}x the reference of workload 1",
        ),
    ]


def api_recording(b: Bench) -> list[Row]:
    """11. A plain loop recording through nnlab's Python API, against nnlab train (same
    network, probe and cadence: the whole test split every 4 steps, one epoch)."""
    log("11. a plain loop recording through the Python API")
    args = ["api", b.name, str(b.steps_per_epoch), "4", str(b.runs)]
    script = str(Path(__file__).with_name("reference.py"))
    apis, nnlabs = [], []
    # alternated, each in a fresh process, medians: single runs on this machine vary ±20%
    for _ in range(1 if b.quick else 3):
        nnlabs.append(nnlab_train(b.runs, ["vae", *b.common, "--snapshot_every=4"]))
        r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        apis.append(json.loads(r.stdout))
    api = statistics.median(a["steps_per_s"] for a in apis)
    run_id = apis[-1]["id"]
    evals = (b.splits.val_x, b.splits.test_x)
    bare = b.done.get("bare") or ref.bare_vae_steps(b.splits.train_x, b.steps_per_epoch, evals)
    nnlab_rate = statistics.median(n["steps_per_s"] for n in nnlabs)
    nnlab_cost = b.done["plain"]["steps_per_s"] / nnlab_rate  # with this row's median
    api_cost = bare / api
    return [
        Row(
            "11. own loop + Python API, record test split every 4 steps (steps/s)",
            api,
            nnlab_rate,
            nnlab_rate / api,
            "<= 1.1x nnlab train's time",
            nnlab_rate / api <= 1.1,
            f"medians of {len(apis)} alternated runs each (run {run_id}); ratio = the API "
            "loop's time / nnlab train's time for one epoch",
        ),
        Row(
            "11b. its recording overhead (time with / without) vs nnlab train's",
            api_cost,
            nnlab_cost,
            api_cost / nnlab_cost,
            "stated",
            True,
            "reference column: nnlab train's overhead; the API's is measured against a bare "
            "loop, nnlab's against its own loop without recording (row 2b: the bare is faster)",
        ),
    ]


def animate_density(b: Bench) -> list[Row]:
    """4. The density GIF of workload 1's recording, against the reference renderer."""
    from nnlab.store import folders, record

    log("4. animate")
    run_id = b.done["record"]["id"]
    rec = record.load_recording(folders.open_run(run_id, b.runs).latents, ("mu", "sd"))
    n_frames = min(len(rec), 40 if b.quick else 400)
    every = max(1, len(rec) // n_frames)
    frames = len(range(0, len(rec), every)) + (0 if (len(rec) - 1) % every == 0 else 1)
    fps = frames / wall("animate", run_id, f"--runs_dir={b.runs}", f"--every={every}")
    ref_fps = ref.reference_render(rec.points, rec.sd, rec.labels, 2 if b.quick else 4, b.tmp)
    return [
        Row(
            f"4. animate VAE densities, {len(rec.labels):,} points, {frames} frames (frames/s)",
            fps,
            ref_fps,
            fps / ref_fps,
            ">= 30x",
            fps / ref_fps >= 30,
        ),
        Row(
            "4a. same, against the target of 15 frames/s wall, start-up included",
            fps,
            target=">= 15 frames/s",
            ok=fps >= 15,
        ),
        *_animate_compare(b, frames, every),
    ]


def _animate_compare(b: Bench, frames: int, every: int) -> list[Row]:
    """4d. The two-panel --compare GIF: workload 1's recording beside a β = 10 run's."""
    log("4d. animate --compare, two panels (training a β = 10 run first)")
    args = ["vae", *b.common, "--snapshot_every=4", "--beta=10"]
    second = nnlab_train(b.runs, args)["id"]
    first = b.done["record"]["id"]
    seconds = wall(
        "animate", first, f"--compare={second}", f"--runs_dir={b.runs}", f"--every={every}"
    )
    return [
        Row(
            f"4d. animate --compare, 2 panels, {frames} frames (frames/s, wall)",
            frames / seconds,
            target=">= 8 frames/s",
            ok=frames / seconds >= 8,
        )
    ]


def cube_and_masks(b: Bench) -> list[Row]:
    """4b, 4c. The rotating 3-D cube of a latent3 run, and its masks."""
    from nnlab.store import folders, record

    every = "--snapshot_every=20" if b.quick else "--snapshot_every=54"
    l3 = nnlab_train(b.runs, ["classifier", "--preset=latent3", *b.common, "--epochs=2", every])
    n = len(record.load_recording(folders.open_run(l3["id"], b.runs).latents, ("act",)))
    cube = n / wall("animate", l3["id"], f"--runs_dir={b.runs}")
    masks_s = wall("masks", l3["id"], f"--runs_dir={b.runs}")
    return [
        Row(f"4b. animate 3-D cube, {n} frames (frames/s)", cube),
        Row("4c. masks of 10 units, GIF + PNG (s, whole command)", masks_s),
    ]


def startup(b: Bench) -> list[Row]:
    """5. Start-up: --help, and summary --json over a store of 50 runs."""
    log("5. start-up")
    small = nnlab_train(b.runs, ["vae", "--dataset=mnist-sample", "--snapshot_every=50"])
    store50 = b.tmp / "store50"
    store50.mkdir()
    for i in range(50):
        shutil.copytree(b.runs / small["id"], store50 / f"vae-20260101-{i:06d}")
    help_s, _ = timed(lambda: wall("--help"), 5)
    summ_s, _ = timed(lambda: wall("summary", "--json", f"--runs_dir={store50}"), 5)
    return [
        Row("5. nnlab --help (s, wall)", help_s, target="< 0.5 s", ok=help_s < 0.5),
        Row(
            "5b. nnlab summary --json, 50 runs (s, wall)", summ_s, target="< 0.5 s", ok=summ_s < 0.5
        ),
    ]


def memory_and_disk(b: Bench) -> list[Row]:
    """6. Peak memory of workload 1 and the bytes its recording takes."""
    from nnlab.store import folders, record

    nn1 = b.done["record"]
    latents = folders.open_run(nn1["id"], b.runs).latents
    rec = record.load_recording(latents, ("mu", "sd"))
    chunks = record.chunk_files(latents)
    arrays = sum(v.nbytes for p in chunks for k, v in np.load(p).items() if k in ("mu", "sd"))
    on_disk = sum(p.stat().st_size for p in chunks)
    per = len(rec) * len(rec.labels)
    rss = nn1["peak_rss_mb"]
    return [
        Row("6. peak RSS of workload 1 (MB)", rss, target="< 1536 MB", ok=rss < 1536),
        Row(
            "6b. recording, bytes per probe image per snapshot",
            arrays / per,
            target="<= 8",
            ok=arrays / per <= 8,
            note=f"files incl. steps and zip headers: {on_disk / per:.2f}",
        ),
    ]


def nielsen_epoch(b: Bench) -> list[Row]:
    """7. One epoch of Nielsen's network, against the reference loop's time for it."""
    log("7. nielsen classifier")
    args = ["classifier", "--preset=nielsen", *b.common, "--epochs=1", "--snapshot_every=0"]
    ni = nnlab_train(b.runs, args)
    rate = ref.reference_classifier_steps(b.tv_root, b.name, 300 if b.quick else 1500)
    ref_s = ni["steps"] / rate
    return [
        Row(
            f"7. nielsen epoch ({ni['steps']:,} steps of 10) time (s)",
            ni["seconds"],
            ref_s,
            ref_s / ni["seconds"],
            ">= 3x",
            ref_s / ni["seconds"] >= 3,
        )
    ]


def sweep_parallel(b: Bench) -> list[Row]:
    """8. A sweep of 8 points of the reference VAE on the sample: --jobs=2 against --jobs=1,
    for one epoch per point (the reference) and for five (training outweighs start-up)."""
    rows = []
    points = 4 if b.quick else 8
    seeds = ",".join(str(i) for i in range(points))
    for epochs, target in ((1, 0.6), (5, 0.6)):
        log(f"8. sweep of {points} points of {epochs} epoch(s), --jobs=2 against --jobs=1")
        args = ["sweep", "vae", "--dataset=mnist-sample", f"--seed={seeds}", f"--epochs={epochs}"]
        seconds = {}
        for jobs in (2, 1):
            runs = b.tmp / f"sweep-{epochs}-jobs{jobs}"
            seconds[jobs] = wall(*args, f"--jobs={jobs}", f"--runs_dir={runs}")
        ratio = seconds[2] / seconds[1]
        rows.append(
            Row(
                f"8. sweep, {points} VAE points x {epochs} epoch(s) (sample), jobs=2 / jobs=1 s",
                seconds[2],
                seconds[1],
                ratio,
                f"<= {target}x",
                ratio <= target,
                note="ratio here: jobs=2 wall time / jobs=1 wall time (lower is better)",
            )
        )
    ceiling = _parallel_ceiling(6 if b.quick else 15)
    rows.append(
        Row(
            "8c. ceiling: VAE train steps/s, 2 processes x 1 thread / 1 process x 2 threads",
            ceiling["two_processes"],
            ceiling["one_process"],
            ceiling["one_process"] / ceiling["two_processes"],
            "stated",
            note="ratio: the best jobs=2 / jobs=1 wall time that pure training allows here",
        )
    )
    return rows


def _on_and_off(b: Bench, on: dict, off: dict) -> tuple[float, float]:
    """The best training seconds of the reference VAE's epoch (recording every 4 steps) of
    two runs each, off and on in turn (the machine drifts); on and off: {"args", "env"}."""
    args = ["vae", *b.common, "--epochs=1"]
    seconds = {"on": [], "off": []}
    for side, how in (("off", off), ("on", on), ("off", off), ("on", on)):
        run = nnlab_train(b.runs, [*args, *how.get("args", [])], env=how.get("env"))
        seconds[side].append(run["seconds"])
    return min(seconds["on"]), min(seconds["off"])


def tensorboard_overhead(b: Bench) -> list[Row]:
    """9. The reference VAE's epoch (recording every 4 steps) with --tensorboard=true over
    the same without: live scalars and latent metrics cost under 5%."""
    log("9. --tensorboard=true against off")
    on, off = _on_and_off(b, {"args": ["--tensorboard=true"]}, {"args": ["--tensorboard=false"]})
    return [
        Row(
            "9. training time with --tensorboard=true / without (best of 2 each)",
            on / off,
            target="<= 1.05x",
            ok=on / off <= 1.05,
            note=f"off {off:.1f} s, on {on:.1f} s (one epoch, recording every 4 steps)",
        )
    ]


def publishing_overhead(b: Bench) -> list[Row]:
    """14. The reference VAE's epoch (recording every 4 steps) as every training runs it,
    publishing what it logged and recorded every PUBLISH_SECONDS for nnlab serve, over the
    same with NNLAB_NO_PUBLISHING (writes at checkpoints only): goal 3% at most."""
    from nnlab.helpers import testhooks
    from nnlab.store.folders import PUBLISH_SECONDS

    log("14. live publishing against none")
    hook = testhooks.NO_PUBLISHING
    on, off = _on_and_off(b, {"env": {hook: ""}}, {"env": {hook: "1"}})
    return [
        Row(
            "14. training time publishing for nnlab serve / not (best of 2 each)",
            on / off,
            target="<= 1.03x",
            ok=on / off <= 1.03,
            note=f"off {off:.1f} s, on {on:.1f} s (one epoch, recording every 4 steps, "
            f"a publish every {PUBLISH_SECONDS:g} s)",
        )
    ]


def big_store(b: Bench) -> list[Row]:
    """10. `nnlab summary` (the runs table) over a store of 2,000 runs; 10b. the table of a
    100-point sweep whose points hold workload 1's recording."""
    log("10. summary of 2,000 runs")
    runs = _big_store(b, 2000)
    seconds, _ = timed(lambda: wall("summary", f"--runs_dir={runs}"), 3)
    rows = [Row("10. nnlab summary, 2,000 runs (s, wall)", seconds, target="< 1 s", ok=seconds < 1)]
    log("10b. summary of a 100-point sweep")
    if "record" not in b.done:  # run alone (--only=big_store): workload 1's training only
        b.done["record"] = nnlab_train(b.runs, ["vae", *b.common, "--snapshot_every=4"])
    sweep_id, sweep_runs = _hundred_point_sweep(b, b.done["record"]["id"], 100)
    cold = wall("summary", sweep_id, f"--runs_dir={sweep_runs}")  # measures, fills the caches
    warm, _ = timed(lambda: wall("summary", sweep_id, f"--runs_dir={sweep_runs}"), 3)
    rows.append(
        Row(
            "10b. nnlab summary SWEEP_ID, 100 points (s, wall; cached latent metrics)",
            warm,
            cold,
            cold / warm,
            "< 2 s",
            warm < 2,
            note="reference column: the first call, which measures every point and caches it",
        )
    )
    return rows


def _big_store(b: Bench, n: int) -> Path:
    """A store of n copies of the fixture's VAE run: the files the runs table reads
    (checkpoints and latents left out)."""
    runs = b.tmp / f"big-store-{n}"
    if runs.is_dir():
        return runs
    fixture = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "store-format1"
    src = fixture / "vae-20261129-022720-format1"
    for i in range(n):
        d = runs / f"vae-20260101-000000-{i:04d}"
        d.mkdir(parents=True)
        for name in ("meta.json", "config.yaml", "metrics.jsonl"):
            shutil.copy(src / name, d / name)
    return runs


def read_api(b: Bench) -> list[Row]:
    """13. The Python read API, each beside the naive read it replaces: nnlab.runs() over
    2,000 runs (reference: json.load of every meta.json, no checks); run.latents(step) of
    workload 1's recording after the first call (reference: reading the whole recording
    for each step asked, as record.load_recording does); run.metrics()."""
    import random

    import nnlab
    from nnlab.store import record

    log("13. read API")
    runs = _big_store(b, 2000)
    table, _ = timed(lambda: _seconds(lambda: nnlab.runs(runs)), 5)
    floor, _ = timed(
        lambda: _seconds(lambda: [json.loads(p.read_text()) for p in runs.glob("*/meta.json")]), 5
    )
    rows = [
        Row(
            "13a. nnlab.runs(), 2,000 runs (s)",
            table,
            floor,
            floor / table,
            "< 1 s",
            table < 1,
            "reference: json.load of each meta.json alone (no checks, no status)",
        ),
    ]
    if "record" not in b.done:  # run alone (--only=read_api): workload 1's training only
        b.done["record"] = nnlab_train(b.runs, ["vae", *b.common, "--snapshot_every=4"])
    run = nnlab.open(b.done["record"]["id"], b.runs)
    steps = [int(s) for s in run.steps]
    first = _seconds(lambda: run.latents(steps[0]))
    rng = random.Random(0)
    asked = [rng.choice(steps) for _ in range(200)]
    per_call, _ = timed(lambda: _seconds(lambda: [run.latents(s) for s in asked]) / len(asked), 3)
    whole = _seconds(lambda: record.load_recording(run.path / "latents", ("mu", "sd")))
    n_points = run.latents(steps[-1])["mu"].shape[0]
    rows.append(
        Row(
            f"13b. run.latents(step), {len(steps)} snapshots x {n_points:,} points (ms/call)",
            1000 * per_call,
            1000 * whole,
            whole / per_call,
            "< 50 ms",
            per_call < 0.05,
            f"200 random steps after the first call ({1000 * first:.0f} ms); reference: the "
            "whole recording read for each",
        )
    )
    metrics_s, _ = timed(lambda: _seconds(run.metrics), 5)
    rows.append(Row("13c. run.metrics() of that run (ms)", 1000 * metrics_s, target="stated"))
    return rows


def _seconds(fn) -> float:
    """Seconds fn() takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _hundred_point_sweep(b: Bench, run_id: str, n: int) -> tuple[str, Path]:
    """A finished sweep of n points, each a copy of run_id (recording hard-linked): the
    files the sweep table reads, with workload 1's real recording behind every point."""
    src = b.runs / run_id
    root = b.tmp / "sweep-store"
    sweep_id = "sweep-vae-20260101-000000"
    (root / sweep_id).mkdir(parents=True)
    points = []
    for i in range(n):
        point = f"{sweep_id}-p{i:0{len(str(n - 1))}d}"
        (root / point / "latents").mkdir(parents=True)
        for name in ("meta.json", "config.yaml", "metrics.jsonl"):
            shutil.copy(src / name, root / point / name)
        for f in (src / "latents").iterdir():
            try:
                os.link(f, root / point / "latents" / f.name)
            except OSError:  # a file system without hard links
                shutil.copy(f, root / point / "latents" / f.name)
        values = {"seed": i}
        points.append({"run": point, "values": values, "status": "finished", "attempts": 1})
    rec = {
        "format": 1,
        "kind": "sweep",
        "id": sweep_id,
        "model": "vae",
        "command": f"nnlab sweep vae --seed=0,...,{n - 1}",
        "created": "2026-01-01T00:00:00.000+00:00",
        "status": "finished",
        "base": (src / "config.yaml").read_text(),
        "grid": {"seed": list(range(n))},
        "points": points,
    }
    (root / sweep_id / "sweep.json").write_text(json.dumps(rec))
    return sweep_id, root


STEP_LOOP = """
import sys, time, torch
from nnlab.config import config
from nnlab.training import models
torch.set_num_threads(int(sys.argv[1]))
cfg = config.build("vae")
model = models.build_model(cfg)
opt = models.make_optimizer(cfg, model.parameters())
x, y = torch.rand(32, 784), torch.zeros(32, dtype=torch.long)
gen = torch.Generator().manual_seed(0)
def step():
    loss = models.loss_terms(model, cfg, x, y, gen)["loss"]
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(50):
    step()
t0, n = time.perf_counter(), 0
while time.perf_counter() - t0 < float(sys.argv[2]):
    step(); n += 1
print(n / (time.perf_counter() - t0))
"""


def _parallel_ceiling(seconds: float) -> dict:
    """Training steps/s of the reference VAE: one process with 2 threads, against two
    processes with 1 thread each running at once (their sum)."""

    def start(threads):
        return subprocess.Popen(
            [sys.executable, "-c", STEP_LOOP, str(threads), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )

    one = float(start(2).communicate()[0])
    pair = [start(1), start(1)]
    two = sum(float(p.communicate()[0]) for p in pair)
    return {"one_process": one, "two_processes": two}


# Run in this order: later workloads reuse the runs of earlier ones (Bench.done).
WORKLOADS = (
    train_recording,
    train_plain,
    recording_overhead,
    api_recording,
    animate_density,
    cube_and_masks,
    startup,
    memory_and_disk,
    nielsen_epoch,
    sweep_parallel,
    tensorboard_overhead,
    publishing_overhead,
    big_store,
    read_api,
)


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides bfloat16's speed


def cpu_description() -> str:
    """The CPU's model name and which of CPU_FLAGS it has, as read from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU flags unknown"
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
        "?",
    )
    flags = set(
        next(
            (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
        )
    )
    shown = " ".join(f if f in flags else f"no {f}" for f in CPU_FLAGS)
    return f"{model} ({shown})"


def print_table(name: str, machine: str, quick: bool, rows: list[Row]) -> None:
    """The rows as the README shows them."""
    print(f"dataset {name} · {machine}" + (" · --quick" if quick else ""))
    print(f"{'workload':<74} {'nnlab':>10} {'reference':>10} {'ratio':>8}  target")
    for r in rows:
        reference = "" if r.reference is None else f"{r.reference:.3g}"
        ratio = "" if r.ratio is None else f"{r.ratio:.1f}x"
        mark = "ok" if r.ok else "MISSED"
        print(f"{r.workload:<74} {r.nnlab:>10.3g} {reference:>10} {ratio:>8}  {r.target} {mark}")
        if r.note:
            print(f"    {r.note}")


def main() -> None:
    """Run every workload, print the table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    ap.add_argument("--only", help="comma-separated workload names, e.g. sweep_parallel")
    opts = ap.parse_args()
    chosen = [w for w in WORKLOADS if not opts.only or w.__name__ in opts.only.split(",")]
    name = "fashion-mnist" if ref.DEBIAN.is_dir() and not opts.quick else "mnist-sample"
    if name != "fashion-mnist":
        log("dataset: mnist-sample (Debian's Fashion-MNIST not installed, or --quick)")
    else:
        log("dataset: fashion-mnist")
    from nnlab.training import data

    tmp = Path(tempfile.mkdtemp(prefix="nnlab-bench-"))
    rows: list[Row] = []
    try:
        tv_root = ref.prepare_torchvision_layout(tmp / "tv", name)
        bench = Bench(name, opts.quick, tmp, tv_root, data.load(name, None, 0.1, 0))
        for workload in chosen:
            rows += workload(bench)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    machine = (
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
        f" · {cpu_description()}"
    )
    if opts.json:
        table = [dataclasses.asdict(r) for r in rows]
        print(
            json.dumps(
                {"dataset": name, "machine": machine, "quick": opts.quick, "rows": table}, indent=2
            )
        )
    else:
        print_table(name, machine, opts.quick, rows)


if __name__ == "__main__":
    main()
