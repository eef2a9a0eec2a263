"""Continual tasks (`--permute_every=K`): Permuted MNIST, a sequence of tasks that each
shuffle the pixels of the same images by a new fixed permutation.

Task t covers epochs tK .. (t+1)K - 1. Task 0 is the images as they are (so its pictures
stay readable); task t >= 1 uses the permutation drawn by numpy's generator seeded with
(seed, t), which does not depend on the torch version. The permutations a run used are
written into the run as tasks.npz (one row per task), so other tools can apply them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nnlab.helpers import files
from nnlab.helpers.errors import RunDamaged

PIXELS = 784


def permutation(seed: int, task: int) -> np.ndarray:
    """The pixel order of `task`: row i of a permuted image is pixel perm[i] of the image."""
    if task == 0:
        return np.arange(PIXELS)
    return np.random.default_rng([seed, task]).permutation(PIXELS)


def count(epochs: int, every: int) -> int:
    """How many tasks a run of `epochs` epochs, K = `every` epochs a task, goes through."""
    return math.ceil(epochs / every) if every else 1


def training(epoch: int, every: int) -> int:
    """The task being trained during (0-based) epoch `epoch`."""
    return epoch // every if every else 0


def at(epoch: float, every: int) -> int:
    """The task a network has last trained on at fractional epoch `epoch` (a snapshot's or
    checkpoint's position): a state at the very end of task t's last epoch is task t's."""
    if not every:
        return 0
    return max(0, math.ceil(epoch / every - 1e-9) - 1)


def table(seed: int, n_tasks: int) -> np.ndarray:
    """Every task's permutation as an (n_tasks, 784) int16 array."""
    return np.stack([permutation(seed, t) for t in range(n_tasks)]).astype(np.int16)


def write(path: Path, seed: int, every: int, epochs: int) -> None:
    """Write a run's tasks file (store.folders.Run.tasks_file): the permutations, the seed
    and K."""
    files.save_npz(
        path,
        perms=table(seed, count(epochs, every)),
        seed=np.array(seed, dtype=np.int64),
        every=np.array(every, dtype=np.int64),
    )


def read(path: Path, n_tasks: int, seed: int) -> np.ndarray:
    """A run's permutations, checked: n_tasks rows, each the permutation its run's seed
    draws for that task (a file holding any other, valid or not, is damage)."""
    if not path.exists():
        raise RunDamaged(f"{path}: missing (a run with permute_every writes it)")
    perms = files.load_npz(path, max_bytes=64 * 2**20).get("perms")
    if perms is None or perms.ndim != 2 or perms.shape != (n_tasks, PIXELS):
        raise RunDamaged(f"{path}: damaged (expected {n_tasks} permutations of {PIXELS} pixels)")
    ok = (np.sort(perms.astype(np.int64), axis=1) == np.arange(PIXELS)).all()
    if not ok:
        raise RunDamaged(f"{path}: damaged (a row is not a permutation of the pixels)")
    if not np.array_equal(perms.astype(np.int64), table(seed, n_tasks).astype(np.int64)):
        raise RunDamaged(f"{path}: damaged (not the permutations of the run's seed {seed})")
    return perms.astype(np.int64)
