"""Signals become a clean stop between steps; the progress bar goes to its console."""

from __future__ import annotations

import io
import os
import signal

import pytest
from rich.console import Console

from nnlab.helpers.progress import StopSignals, TrainProgress


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_sets_a_flag_second_sigint_interrupts(first):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as stop:
        os.kill(os.getpid(), first)  # the first: a flag, no exception
        assert stop.received == signal.Signals(first).name
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


def test_a_second_sigterm_does_not_interrupt():
    """Only a person's second Ctrl-C stops at once; a repeated SIGTERM (a supervisor) still
    lets the job save and stop."""
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == "SIGTERM"


def test_progress_prints_epoch_lines_to_its_console():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=100)
    with TrainProgress(console, total=10, start=0) as bar:
        bar.advance(5, 1.25)
        bar.epoch(1, 2, "test accuracy 50.00%")
    assert "epoch 1/2: test accuracy 50.00%" in buf.getvalue()
    assert bar.done == 5


def test_without_a_terminal_progress_is_a_log_line_every_few_seconds(monkeypatch):
    from nnlab.helpers import progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=100)
    with TrainProgress(console, total=100, start=0) as bar:
        import time

        time.sleep(0.11)
        bar.advance(50, 0.5)
    assert "train: step 50/100 (50%)" in buf.getvalue() and "ETA" in buf.getvalue()
    buf.truncate(0)
    with progress.CountProgress(console, "animate", 4) as count:
        for _ in range(4):
            count.advance()
    assert "animate: 4/4" in buf.getvalue()
