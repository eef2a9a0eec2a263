"""A search's point reporting its metric while it trains, so that the search's pruner can
stop it early: when to report, how the metric is measured then, and the stop.

A point reports at each epoch's end and, with `every`, within epochs: every `every` steps
(a whole number), or at each fraction `every` of an epoch (below 1). A report is labelled
by the training images seen so far, so that points of different batch sizes report at the
same labels when `every` is a fraction of an epoch. The trainer stops a pruned point at a
checkpoint and marks its run `pruned`: its metrics and recording stay usable. Torch is
imported only to measure (a sweep's coordinator imports this module without it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnlab.helpers.errors import TrainingStopped


class Pruned(TrainingStopped):
    """A search's pruner stopped the point (its run is checkpointed and marked pruned)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=0)


@dataclass
class Reports:
    """When a run reports `metric` and who decides: decide(label, value, stopping) is True
    to prune, False to go on (stopping(): whether the run is being stopped meanwhile)."""

    metric: str
    every: float  # 0: at epoch ends only; >= 1: every that many steps; < 1: epoch fraction
    decide: Callable[[int, float, Callable[[], bool]], bool]

    def label(self, epoch: int, batch: int, batch_size: int, n_train: int, spe: int) -> int | None:
        """The label of a report due at this loop position (epoch, batch of spe), or None.
        Epoch ends are at batch 0 of the next epoch."""
        if batch == 0:
            return epoch * n_train if epoch else None
        if not self.every or batch >= spe:
            return None
        seen = batch * batch_size  # below n_train: batch < steps per epoch
        if self.every >= 1:
            return epoch * n_train + seen if batch % int(self.every) == 0 else None
        quantum = max(1, round(self.every * n_train))
        k = seen // quantum
        if k > (seen - batch_size) // quantum and k * quantum < n_train:
            return epoch * n_train + k * quantum
        return None


def latent_now(trainer) -> dict:
    """The latent metrics of the probe set as the model encodes it now."""
    import torch

    from nnlab.analysis import latent
    from nnlab.store.record import Recording
    from nnlab.training.snapshots import encode_probe

    was = trainer.model.training
    with torch.no_grad():
        points, sd = encode_probe(trainer.model, trainer.cfg, trainer.probe_x)
    trainer.model.train(was)
    labels = trainer.probe_labels
    labels = (labels.cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)).astype(
        np.int64
    )
    rec = Recording(
        steps=np.array([trainer.step]),
        epochs=np.array([float(trainer.epoch)]),
        labels=labels,
        indices=np.arange(len(labels)),
        split="probe",
        points=points.cpu().numpy()[None],
        sd=None if sd is None else sd.cpu().numpy()[None],
    )
    return latent.snapshot_metrics(rec, 0)
