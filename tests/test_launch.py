"""`nnlab serve` started for real (nnlab.server.launch): its one-line refusals before it
listens, its URL on stdout, Ctrl-C; and in Chromium, a training followed live."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import browser

pytest.importorskip("uvicorn", reason='the serve extra: pip install -e ".[serve]"')

from nnlab.server import launch  # noqa: E402

NNLAB = [sys.executable, "-m", "nnlab"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_refusals_come_before_anything_listens(nnlab, runs, tmp_path):
    r = nnlab("serve", f"--runs_dir={tmp_path / 'none'}")
    assert r.code == 2 and "no run store there" in r.err and r.out == ""
    runs.mkdir()
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    try:
        port = held.getsockname()[1]
        r = nnlab("serve", f"--runs_dir={runs}", f"--port={port}")
        assert r.code == 2 and f"--port={port}: in use on 127.0.0.1" in r.err and r.out == ""
    finally:
        held.close()
    for args, needle in (
        (["--port=70000"], "--port=70000: choose 1 to 65535"),
        (["--port=-1"], "--port=-1: expected a whole number of at least 0"),
        (["--host=no.such.host.invalid"], "--host=no.such.host.invalid: not an address"),
        (["x"], "unexpected argument 'x'"),
    ):
        r = nnlab("serve", f"--runs_dir={runs}", *args)
        assert r.code == 2 and needle in r.err and len(r.err.splitlines()) == 1, r.err


def test_a_free_port_and_the_url():
    sock = launch.bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0 and launch.url_of(sock, "127.0.0.1") == f"http://127.0.0.1:{port}/"
    finally:
        sock.close()
    assert launch.url_of(launch.bind("::1", 0), "::1").startswith("http://[::1]:")


def _wait(page, expression: str, timeout: float = 30.0) -> None:
    """Poll an expression in the page until it is true (Playwright's wait_for_function
    evaluates a string, which the served pages' Content-Security-Policy forbids)."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def _serve(runs: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*NNLAB, "serve", f"--runs_dir={runs}", "--port=0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), proc.stderr.read()
    return proc, url


@pytest.mark.slow
def test_serve_prints_its_url_answers_and_stops_on_ctrl_c(runs):
    runs.mkdir()
    proc, url = _serve(runs)
    try:
        with urllib.request.urlopen(url + "api/runs", timeout=10) as r:
            assert json.loads(r.read())["runs"] == []
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out == "" and "serve stopped" in err


@pytest.mark.slow
def test_a_wide_host_is_warned_about(runs):
    runs.mkdir()
    proc, url = _serve(runs, "--host=0.0.0.0")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "anyone who can reach port" in err


REASON = browser.missing()


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None and not os.environ.get("CI"), reason=str(REASON))
def test_a_training_is_followed_live_in_chromium(runs):
    """Serve an empty store, start a training, and watch it in Chromium: the run appears on
    the runs page, its page's slider grows and its canvas changes without a reload, and
    the status turns finished."""
    runs.mkdir()
    proc, url = _serve(runs)
    train = None
    try:
        with browser.browser_page() as (page, errors):
            page.goto(url)
            page.evaluate("window.stayed = true")  # gone if the page reloads
            train = subprocess.Popen(
                [*NNLAB, "train", "vae", "--dataset=mnist-sample", "--epochs=12",
                 "--snapshot_every=5", "--probe_size=500", f"--runs_dir={runs}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
            )  # fmt: skip
            _wait(page, "window.nnlabRuns && window.nnlabRuns.shown().length == 1")
            assert page.evaluate("window.stayed") is True
            run_id = page.evaluate("window.nnlabRuns.shown()[0]")
            page.goto(f"{url}run/{run_id}")
            _wait(page, "window.nnlabReport !== undefined")
            page.evaluate("window.stayed = true")
            seen, pixels = [], set()
            deadline = time.time() + 90
            while time.time() < deadline:
                state = page.evaluate("[window.nnlabReport.state.last, window.nnlabReport.state.v]")
                seen.append(state)
                pixels.add(hash(browser.canvas_pixels(page, run_id)))
                status = page.evaluate("document.getElementById('header').textContent")
                if "finished" in status and train.poll() is not None:
                    break
                time.sleep(0.5)
            assert train.wait(timeout=60) == 0
            _wait(page, "document.getElementById('header').textContent.includes('finished')")
            assert page.evaluate("window.stayed") is True  # never reloaded
            lasts = [last for last, _ in seen]
            assert len(set(lasts)) >= 3 and lasts == sorted(lasts), lasts
            assert all(v == last for last, v in seen)  # on the newest, it follows the newest
            assert len(pixels) >= 3
            # grown by the snapshots fetched since (not whole each time): all of them there
            from nnlab.store import record

            recorded = record.snapshot_count(runs / run_id / "latents")
            assert page.evaluate("window.nnlabReport.state.last") + 1 == recorded
            assert errors == []
    finally:
        if train is not None and train.poll() is None:
            train.kill()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None and not os.environ.get("CI"), reason=str(REASON))
def test_filter_sort_and_compare_twenty_runs_in_chromium(runs):
    """#36: 24 runs on the runs page: the filter box narrows them (every word must match,
    tags too), a column header sorts them, and 20 selected runs open side by side."""
    import shutil

    from nnlab.store import folders, labels
    from tests.conftest import FIXTURE_STORE, FIXTURE_VAE

    runs.mkdir()
    ids = [f"vae-20260101-{k:06d}" for k in range(24)]
    for k, run_id in enumerate(ids):
        shutil.copytree(FIXTURE_STORE / FIXTURE_VAE, runs / run_id)
        if k % 3 == 0:
            labels.change(folders.open_run(run_id, runs), add=["third"])
    proc, url = _serve(runs)
    try:
        with browser.browser_page() as (page, errors):
            page.goto(url)
            _wait(page, "window.nnlabRuns && window.nnlabRuns.shown().length == 24")
            assert page.evaluate("window.nnlabRuns.shown()")[0] == ids[-1]  # newest first
            page.fill("#filter", "third 00001")
            _wait(page, "window.nnlabRuns.shown().length == 3")  # 12, 15, 18: tagged, 1x
            page.fill("#filter", "")
            _wait(page, "window.nnlabRuns.shown().length == 24")
            page.locator("th", has_text="id").first.click()
            assert page.evaluate("window.nnlabRuns.shown()") == ids  # by id, rising
            page.locator("th", has_text="id").first.click()
            assert page.evaluate("window.nnlabRuns.shown()") == ids[::-1]  # and back
            boxes = page.locator("#rows input[type=checkbox]")
            for k in range(20):
                boxes.nth(k).check()
            assert page.locator("#compare").text_content() == "compare 20 runs"
            page.locator("#compare").click()
            _wait(page, "window.nnlabReport !== undefined && window.nnlabReport.complete", 120)
            assert len(page.evaluate("window.nnlabReport.runs")) == 20
            assert "/compare?ids=" in page.url and errors == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None and not os.environ.get("CI"), reason=str(REASON))
def test_a_search_is_followed_live_in_chromium(runs):
    """#36: a search's page while its trials finish: the trials chart grows to all of them,
    the best-so-far line with it, without a reload; no console errors."""
    pytest.importorskip("optuna")
    runs.mkdir()
    proc, url = _serve(runs)
    search = None
    try:
        # the browser is up before the search starts, and each trial takes seconds: a
        # search that ended before its page first drew would show no growth (seen in CI)
        with browser.browser_page() as (page, errors):
            search = subprocess.Popen(
                [*NNLAB, "sweep", "vae", "--dataset=mnist-sample", "--probe_size=200",
                 "--hidden_dims=[32]", "--snapshot_every=9", "--search=tpe", "--trials=4",
                 "--epochs=12", "--lr=log:1e-3..3e-2", "--jobs=1", f"--runs_dir={runs}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
            )  # fmt: skip
            deadline = time.time() + 60
            while not list(runs.glob("sweep-*")):
                assert time.time() < deadline, "no sweep folder"
                time.sleep(0.1)
            sweep_id = next(runs.glob("sweep-*")).name
            page.goto(f"{url}run/{sweep_id}")
            page.evaluate("window.stayed = true")
            titles = []
            deadline = time.time() + 240
            while time.time() < deadline:
                if page.evaluate("window.nnlabReport !== undefined"):
                    charts = page.evaluate("window.nnlabReport.charts()")
                    titles += [c["title"] for c in charts if "per trial" in c["title"]]
                if titles and "4 finished" in titles[-1] and search.poll() is not None:
                    break
                time.sleep(0.5)
            assert search.wait(timeout=60) == 0
            assert titles and titles[-1] == "test_elbo per trial (4 finished, 0 pruned of 4)"
            assert len(set(titles)) >= 2, titles  # it grew while the page was open
            assert page.evaluate("window.stayed") is True and errors == []
    finally:
        if search is not None and search.poll() is None:
            search.kill()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
