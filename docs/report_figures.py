"""The report page of the reference run, measured in headless Chromium, and its screenshot.

    python docs/report_figures.py [RUN_ID] [--runs_dir=DIR] [--write-readme]

Without RUN_ID it trains the reference run first (one epoch of the reference β-VAE with
a snapshot every 4 steps of 10,000 probe images: Fashion-MNIST when Debian's copy is
installed). It then times `nnlab report` (wall, a fresh process, twice: the first call
also measures the latent metrics over training and caches them in the run), measures the
page's size, the time until it is interactive and the redraw time of a slider drag (the
page's own performance.now() around each redraw, in the same browser harness the tests
use, tests/browser.py), and saves docs/report.png. With --write-readme the table replaces
the README block <!-- report-budget:start --> ... <!-- report-budget:end -->.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import browser  # noqa: E402  (the harness lives with the tests)


def nnlab(*args: str) -> tuple[str, float]:
    """An nnlab command in a fresh process: (stdout, wall seconds)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "nnlab", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return r.stdout.strip(), time.perf_counter() - t0


def main() -> None:
    """Measure, print the table, save the screenshot (and the README block)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_id", nargs="?")
    ap.add_argument("--runs_dir")
    ap.add_argument("--write-readme", action="store_true")
    opts = ap.parse_args()
    why = browser.missing()
    if why:
        raise SystemExit(f"report_figures: {why}")
    run_id = opts.run_id
    # a given run lives in --runs_dir, $NNLAB_RUNS or ./runs (as for nnlab itself); the
    # reference run trained here goes to a temporary store
    runs_dir = opts.runs_dir or (
        os.environ.get("NNLAB_RUNS", "runs")
        if run_id
        else tempfile.mkdtemp(prefix="nnlab-report-") + "/runs"
    )
    if run_id is None:
        data = (
            "fashion-mnist"
            if Path("/usr/share/datasets/fashion-mnist").is_dir()
            else "mnist-sample"
        )
        run_id, _ = nnlab(
            "train", "vae", f"--dataset={data}", "--seed=16", f"--runs_dir={runs_dir}"
        )
    out = Path(runs_dir) / "report-measure.html"
    # the first call measures the latent metrics over training and caches them in the run:
    # time it from an empty cache
    (Path(runs_dir) / run_id / "latent-metrics.json").unlink(missing_ok=True)
    _, first = nnlab("report", run_id, f"--out={out}", f"--runs_dir={runs_dir}")
    _, again = nnlab("report", run_id, f"--out={out}", f"--runs_dir={runs_dir}")
    size = out.stat().st_size
    loads = []
    for _ in range(3):  # a fresh browser each time; the median of three openings
        with browser.page_of(out) as (page, errors):
            loads.append(page.evaluate("window.nnlabReport.readyMs"))
    ready = sorted(loads)[1]
    with browser.page_of(out, width=1500, height=1150) as (page, errors):
        drag = browser.drag_frame_times(page, 100)
        page.evaluate("window.nnlabReport.setPosition(+document.getElementById('slider').max)")
        page.locator("#controls").scroll_into_view_if_needed()
        # hover one probe image (the tooltip shows it) for the picture
        x, y, _, _ = page.evaluate(f"window.nnlabReport.pointAt({json.dumps(run_id)}, 7)")
        page.mouse.move(x, y)
        box = page.evaluate(
            """() => { const a = document.getElementById('controls').getBoundingClientRect();
                       const c = document.getElementById('charts').getBoundingClientRect();
                       return [a.top + window.scrollY, c.top + window.scrollY + 230]; }"""
        )
        page.screenshot(
            path=str(ROOT / "docs" / "report.png"),
            full_page=True,
            clip={"x": 0, "y": box[0], "width": 1500, "height": min(box[1] - box[0], 1100)},
        )
        if errors:
            raise SystemExit(f"report_figures: console errors: {errors}")
    d = json.loads(out.read_text().split('type="application/json">', 1)[1].split("</script>", 1)[0])
    lat = d["runs"][0]["latent"]
    rows = [
        "| measured | value | budget |",
        "| --- | --- | --- |",
        f"| page size | {size / 2**20:.1f} MB ({lat['points']:,} of {lat['total_points']:,} probe "
        f"images, {len(lat['steps'])} snapshots) | ≤ 10 MB |",
        f"| `nnlab report` (wall, start-up included) | {first:.1f} s first, {again:.1f} s again "
        "(latent metrics cached) | < 10 s |",
        f"| interactive after opening (file read, page and data parsed, first frame drawn; "
        f"median of 3) | {ready:.0f} ms | < 1 s |",
        f"| slider drag redraw, {drag['frames']} frames | median {drag['median_ms']:.1f} ms, 90th "
        f"percentile {drag['p90_ms']:.1f} ms ({1000 / drag['median_ms']:.0f} frames/s) | "
        "≥ 30 frames/s |",
    ]
    table = "\n".join(rows)
    print(table)
    if opts.write_readme:
        from measure_sources import write_block  # docs/: the page that holds the block

        write_block("report-budget", table)


if __name__ == "__main__":
    main()
