"""The test hooks do nothing unless asked, and what each does when asked (the kill itself
is exercised by the crash tests of test_reliability.py, in a child process)."""

from __future__ import annotations

from nnlab.config.config import build
from nnlab.helpers import testhooks


def test_every_hook_is_off_by_default(monkeypatch, tmp_path):
    for name in (
        testhooks.KILL_IN_WRITE,
        testhooks.NAN_AT_STEP,
        testhooks.SMOKE,
        testhooks.NO_PUBLISHING,
    ):
        monkeypatch.delenv(name, raising=False)
    assert testhooks.nan_at_step() == -1 and not testhooks.smoke()
    assert testhooks.publishing()
    testhooks.kill_in_write(tmp_path / "latest.pt")  # returns: nothing asked


def test_nan_step_and_smoke_when_asked(monkeypatch):
    monkeypatch.setenv(testhooks.NAN_AT_STEP, "33")
    assert testhooks.nan_at_step() == 33
    monkeypatch.setenv(testhooks.NAN_AT_STEP, "soon")
    assert testhooks.nan_at_step() == -1  # not a step: off
    monkeypatch.setenv(testhooks.SMOKE, "1")
    cfg = build("vae", overrides={"epochs": "300", "probe_size": "10000"})
    short = testhooks.smoke_config(cfg)
    assert testhooks.smoke() and (short.epochs, short.probe_size) == (2, 500)
    assert (cfg.epochs, cfg.probe_size) == (300, 10000)  # the config itself is unchanged
