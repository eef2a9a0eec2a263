"""Hooks that exist for nnlab's own tests, kept in this one module so that the training
loop and the file writer name them and nothing more. Each does nothing unless its
environment variable is set:

- NNLAB_FAULT_KILL_IN_WRITE=N or =NAME: SIGKILL inside the Nth checkpoint write of the
  process, or inside the first write of the file NAME, with the temp file written but not
  yet renamed into place (the crash-consistency and exact-resume tests);
- NNLAB_FAULT_NAN_AT_STEP=N: the training loss becomes NaN at step N (divergence tests);
- NNLAB_SMOKE=1: every training stops after SMOKE_EPOCHS epochs of at most SMOKE_STEPS
  steps and records at most SMOKE_PROBE images, its saved config unchanged (the
  documentation test runs every page's commands so);
- NNLAB_NO_PUBLISHING=1: a training writes what it logged and recorded at checkpoints
  only, not every PUBLISH_SECONDS between them (benchmarks/run.py measures what
  publishing costs against it).
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

KILL_IN_WRITE = "NNLAB_FAULT_KILL_IN_WRITE"
NAN_AT_STEP = "NNLAB_FAULT_NAN_AT_STEP"
SMOKE = "NNLAB_SMOKE"
NO_PUBLISHING = "NNLAB_NO_PUBLISHING"
SMOKE_EPOCHS, SMOKE_STEPS, SMOKE_PROBE = 2, 3, 500

_checkpoint_writes = 0  # checkpoint writes of this process, for KILL_IN_WRITE=N


def kill_in_write(path: Path) -> None:
    """Die here if KILL_IN_WRITE names this write (called between a temp file's fsync and
    its rename)."""
    global _checkpoint_writes
    fault = os.environ.get(KILL_IN_WRITE)
    if not fault:
        return
    if path.suffix == ".pt":
        _checkpoint_writes += 1
        if fault == str(_checkpoint_writes):
            os.kill(os.getpid(), signal.SIGKILL)
    if fault == path.name:
        os.kill(os.getpid(), signal.SIGKILL)


def nan_at_step() -> int:
    """The step whose loss NAN_AT_STEP makes NaN, or -1."""
    fault = os.environ.get(NAN_AT_STEP, "")
    return int(fault) if fault.isdigit() else -1


def smoke() -> bool:
    """Whether trainings are shortened (SMOKE)."""
    return bool(os.environ.get(SMOKE))


def publishing() -> bool:
    """Whether trainings publish between checkpoints (unless NO_PUBLISHING)."""
    return not os.environ.get(NO_PUBLISHING)


def smoke_config(cfg):
    """cfg with at most SMOKE_EPOCHS epochs and a probe of at most SMOKE_PROBE images."""
    return dataclasses.replace(
        cfg, epochs=min(cfg.epochs, SMOKE_EPOCHS), probe_size=min(cfg.probe_size, SMOKE_PROBE)
    )
