"""`nnlab serve` measured (#36): the live latency, the first paint, scrubbing, and load.

1. latency: serve an empty store, start a training (the reference VAE on the bundled
   sample, a snapshot every 5 steps, 40 epochs: about 25 s), open its page in Chromium (Debian's,
   through Playwright) and, for every snapshot, take the time from its chunk's write
   (the file's mtime) to the page's first drawing of a step at least as new (the page
   notes each drawing on the wall clock): median and 95th percentile.
2. first paint: the reference recording (one epoch of Fashion-MNIST, a snapshot every 4
   steps of 10,000 probe images: 423 snapshots), its served page opened three times in a
   fresh browser: the time to the first frame (from navigation start, as the page measures
   it) and the bytes that took (the shell, its script and the first data request), then
   the whole recording's bytes and the slider's redraw times once it is in.
3. load: 50 clients on 127.0.0.1 for 20 s, each holding the page's event stream open and
   fetching its data in a loop, while the training of (1) runs: the data requests' p50
   and p95 latency and the server's peak memory (VmHWM).
4. runs: a store of 10,000 runs: /api/runs when the server has just started and again,
   and the runs page's time from navigation to its table.

    python benchmarks/serve.py [--only=latency,paint,load,runs] [--write-docs] [--figures]

--figures saves the reference run's served page and the runs page as docs/serve-run.png
and docs/serve-runs.png (docs/make_figures.sh serve); --write-docs replaces the block
<!-- serve-benchmark:start --> ... :end --> of docs/commands/serve.md. Every process
runs with one torch thread (a training, the server, the browser and the clients share
the 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import browser  # noqa: E402  (the harness lives with the tests)

NNLAB = [sys.executable, "-m", "nnlab"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TRAIN = [
    "train", "vae", "--dataset=mnist-sample", "--epochs=40", "--snapshot_every=5",
    "--probe_size=500",
]  # fmt: skip
CLIENTS, LOAD_SECONDS = 50, 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def serve(runs: Path) -> tuple[subprocess.Popen, str]:
    """`nnlab serve` on any free port: the process and its URL."""
    proc = subprocess.Popen(
        [*NNLAB, "serve", f"--runs_dir={runs}", "--port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    return proc, proc.stdout.readline().strip()


def wait(page, expression: str, timeout: float = 60.0) -> None:
    """Poll an expression in the page until it is true (the CSP forbids eval)."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {expression}")
        time.sleep(0.05)


def written(run: Path) -> dict[int, float]:
    """Each recorded step and when its chunk was written (the file's mtime, seconds)."""
    out = {}
    for path in sorted((run / "latents").glob("chunk-*.npz")):
        with np.load(path, allow_pickle=False) as z:
            for step in z["steps"].tolist():
                out.setdefault(int(step), path.stat().st_mtime)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency_and_load(runs: Path, load: bool) -> dict:
    """Follow a training in Chromium; with load, 50 clients beside it."""
    runs.mkdir(parents=True)
    proc, url = serve(runs)
    train = subprocess.Popen(
        [*NNLAB, *TRAIN, f"--runs_dir={runs}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        run_id = _first_run(runs)  # the id is printed when the training ends
        stop = threading.Event()
        clients = _clients(url, run_id, stop) if load else None
        with browser.browser_page() as (page, errors):
            page.goto(f"{url}run/{run_id}")
            wait(page, "window.nnlabReport !== undefined")
            while train.poll() is None:
                time.sleep(0.5)
            time.sleep(4)  # the last publish, its event and its drawing
            drawn = page.evaluate("window.nnlabDrawn")
            if errors:
                raise SystemExit(f"console errors: {errors}")
        stop.set()
        peak = _peak_kb(proc.pid)
        result = {"run": run_id, **_latencies(drawn, written(runs / run_id))}
        if clients is not None:
            result["load"] = {**clients(), "server_peak_mb": peak / 1024}
        return result
    finally:
        if train.poll() is None:
            train.kill()
        proc.terminate()
        proc.wait(timeout=20)


def _first_run(runs: Path) -> str:
    while True:
        found = [p.name for p in runs.iterdir() if (p / "meta.json").exists()]
        if found:
            return found[0]
        time.sleep(0.1)


def _latencies(drawn: list, steps: dict[int, float]) -> dict:
    """For each recorded step: its chunk's write to the first drawing of it or a newer one."""
    waits = []
    opened = (
        drawn[0][0] / 1000
    )  # the page's first frame: what was written before, it never waited for
    for step, at in steps.items():
        shown = [t / 1000 for t, newest in drawn if newest >= step and t / 1000 >= at - 0.05]
        if shown and at > opened:
            waits.append(max(0.0, min(shown) - at))
    return {
        "snapshots": len(waits),
        "latency_median_s": statistics.median(waits),
        "latency_p95_s": percentile(waits, 0.95),
        "latency_max_s": max(waits),
    }


def _clients(url: str, run_id: str, stop: threading.Event):
    """CLIENTS threads, each with the page's event stream open, fetching its data in a
    loop until stop; returns a function giving their latencies."""
    times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    t0 = time.perf_counter()

    def client(k: int) -> None:
        stream = urllib.request.urlopen(f"{url}api/events?ids={run_id}", timeout=60)
        try:
            while not stop.is_set() and time.perf_counter() - t0 < LOAD_SECONDS:
                t = time.perf_counter()
                try:
                    with urllib.request.urlopen(f"{url}api/page?ids={run_id}", timeout=60) as r:
                        r.read()
                except OSError as e:
                    with lock:
                        failures.append(str(e))
                    continue
                with lock:
                    times.append(time.perf_counter() - t)
        finally:
            stream.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    for th in threads:
        th.start()

    def result() -> dict:
        for th in threads:
            th.join(timeout=60)
        return {
            "clients": CLIENTS,
            "seconds": round(time.perf_counter() - t0, 1),
            "requests": len(times),
            "failures": len(failures),
            "p50_ms": 1000 * percentile(times, 0.5),
            "p95_ms": 1000 * percentile(times, 0.95),
        }

    return result


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def screenshots(url: str, run_id: str) -> None:
    """docs/serve-run.png and docs/serve-runs.png: the run's page and the runs page."""
    with browser.browser_page(1500, 1150) as (page, errors):
        page.goto(f"{url}run/{run_id}")
        wait(page, "window.nnlabReport !== undefined && window.nnlabReport.complete")
        page.wait_for_timeout(500)  # the charts are drawn after the first frame
        page.screenshot(path=str(ROOT / "docs" / "serve-run.png"), full_page=False)
        page.goto(url)
        wait(page, "window.nnlabRuns && window.nnlabRuns.shown().length > 0")
        bottom = page.evaluate("document.getElementById('sweeps').getBoundingClientRect().bottom")
        clip = {"x": 0, "y": 0, "width": 1500, "height": min(1150, bottom + 24)}
        page.screenshot(path=str(ROOT / "docs" / "serve-runs.png"), clip=clip)
        if errors:
            raise SystemExit(f"console errors: {errors}")


def first_paint(runs: Path, figures: bool = False) -> dict:
    """The reference recording's served page: first frame, bytes, the rest, scrubbing."""
    data = "fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "mnist-sample"
    r = subprocess.run(
        [*NNLAB, "train", "vae", f"--dataset={data}", "--seed=16", f"--runs_dir={runs}"],
        capture_output=True,
        text=True,
        env={**ENV, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
    )
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    run_id = r.stdout.strip()
    proc, url = serve(runs)
    try:
        sizes = {
            name: len(urllib.request.urlopen(url + path, timeout=120).read())
            for name, path in (
                ("first", f"api/page?ids={run_id}&first=1"),
                ("whole", f"api/page?ids={run_id}"),
                ("shell", f"run/{run_id}"),
                ("script", "static/page.js"),
            )
        }  # asked once: the server computed and cached both before the timed openings
        paints, drag = [], None
        for _ in range(3):
            with browser.browser_page(1500, 1150) as (page, errors):
                page.goto(f"{url}run/{run_id}")
                wait(page, "window.nnlabReport !== undefined")
                paints.append(page.evaluate("window.nnlabReport.readyMs"))
                wait(page, "window.nnlabReport.complete")
                drag = browser.drag_frame_times(page, 100)
                snapshots = page.evaluate("+document.getElementById('slider').max + 1")
                if errors:
                    raise SystemExit(f"console errors: {errors}")
        if figures:
            screenshots(url, run_id)
        return {
            "run": run_id,
            "snapshots": snapshots,
            "first_paint_ms": statistics.median(paints),
            "first_bytes": sizes["first"] + sizes["shell"] + sizes["script"],
            "whole_bytes": sizes["whole"],
            "drag_median_ms": drag["median_ms"],
            "drag_p90_ms": drag["p90_ms"],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=20)


RUNS = 10_000
FIXTURE = ROOT / "tests" / "fixtures" / "store-format1" / "vae-20261129-022720-format1"


def runs_page(runs: Path) -> dict:
    """A store of 10,000 runs (each a copy of a test fixture's meta.json and config):
    /api/runs when the server starts and again, and the runs page's time to its table."""
    import shutil

    runs.mkdir(parents=True)
    for i in range(RUNS):
        folder = runs / f"vae-20260101-{i:06d}"
        folder.mkdir()
        for name in ("meta.json", "config.yaml"):
            shutil.copy(FIXTURE / name, folder / name)
    proc, url = serve(runs)
    try:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            urllib.request.urlopen(url + "api/runs", timeout=120).read()
            times.append(time.perf_counter() - t)
        ready = []
        for _ in range(3):
            with browser.browser_page() as (page, errors):
                page.goto(url)
                wait(page, "window.nnlabRuns !== undefined")
                ready.append(page.evaluate("window.nnlabRuns.readyMs"))
                if errors:
                    raise SystemExit(f"console errors: {errors}")
        return {
            "runs": RUNS,
            "api_first_s": times[0],
            "api_again_s": statistics.median(times[1:]),
            "ready_ms": statistics.median(ready),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def table(results: dict) -> str:
    rows = ["| measured | value | goal |", "| --- | --- | --- |"]
    if "latency" in results:
        r = results["latency"]
        rows.append(
            f"| snapshot written → drawn on its page, {r['snapshots']} snapshots of a training "
            f"| median {r['latency_median_s']:.2f} s, p95 {r['latency_p95_s']:.2f} s, "
            f"max {r['latency_max_s']:.2f} s | < 2 s |"
        )
    if "load" in results:
        r = results["load"]
        if "load" in r:
            ld = r["load"]
            rows.append(
                f"| {ld['clients']} clients for {LOAD_SECONDS} s (event stream open, data "
                f"fetched in a loop; the last answered at {ld['seconds']:.0f} s) beside the "
                f"training | {ld['requests']:,} requests, "
                f"{ld['failures']} failed, p50 {ld['p50_ms']:.0f} ms, p95 {ld['p95_ms']:.0f} ms; "
                f"server peak memory {ld['server_peak_mb']:.0f} MB | bounded |"
            )
            rows.append(
                f"| … meanwhile, snapshot written → drawn on a page following the training | "
                f"median {r['latency_median_s']:.2f} s, p95 {r['latency_p95_s']:.2f} s | |"
            )
    if "paint" in results:
        p = results["paint"]
        rows.append(
            f"| the reference recording's page ({p['snapshots']} snapshots × 1,000 of 10,000 "
            f"points): first frame, median of 3 | {p['first_paint_ms']:.0f} ms, "
            f"{p['first_bytes'] / 2**20:.2f} MB transferred | < 1 s, < 2 MB |"
        )
        rows.append(
            f"| … the whole recording, fetched after the first frame | "
            f"{p['whole_bytes'] / 2**20:.1f} MB | |"
        )
        rows.append(
            f"| … slider drag once loaded, 100 frames | median {p['drag_median_ms']:.1f} ms, "
            f"p90 {p['drag_p90_ms']:.1f} ms ({1000 / p['drag_median_ms']:.0f} frames/s) | "
            "≥ 30 frames/s |"
        )
    if "runs" in results:
        r = results["runs"]
        rows.append(
            f"| the runs page with {r['runs']:,} runs: /api/runs first, then again; the page's "
            f"table drawn (median of 3) | {r['api_first_s']:.2f} s, {r['api_again_s']:.2f} s; "
            f"{r['ready_ms']:.0f} ms | interactive < 1 s |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="latency,paint,load,runs")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--figures", action="store_true", help="docs/serve-run.png, serve-runs.png")
    opts = ap.parse_args()
    why = browser.missing()
    if why:
        raise SystemExit(f"serve benchmark: {why}")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "latency" in opts.only:
            log("latency: a training followed in Chromium…")
            results["latency"] = latency_and_load(Path(tmp) / "live", False)
        if "load" in opts.only:
            log(f"load: {CLIENTS} clients beside a training followed in Chromium…")
            results["load"] = latency_and_load(Path(tmp) / "loaded", True)
        if "runs" in opts.only:
            log(f"the runs page with {RUNS:,} runs…")
            results["runs"] = runs_page(Path(tmp) / "many")
        if "paint" in opts.only:
            log("first paint: the reference recording…")
            results["paint"] = first_paint(Path(tmp) / "ref", opts.figures)
    print(json.dumps(results, indent=1))
    text = table(results)
    log(text)
    if opts.write_docs:
        sys.path.insert(0, str(ROOT / "docs"))
        from measure_sources import write_block  # docs/: finds the page that holds the block

        write_block("serve-benchmark", text)


if __name__ == "__main__":
    main()
