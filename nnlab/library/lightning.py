"""A PyTorch Lightning callback that writes a LightningModule's run into nnlab's store:
its latent space every few steps, the loss it returns, the epoch metrics Lightning
collects, checkpoints of its weights, and how the fit ended. Needs the `lightning` extra;
this module is imported only when nnlab.LatentCallback is used."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nnlab.helpers.console import stderr_console, warn
from nnlab.helpers.errors import NnlabError
from nnlab.library.probe import UsageError
from nnlab.library.writer import RESERVED, RunWriter, start
from nnlab.store.meta import Status

try:
    from lightning.pytorch import Callback
except ImportError:  # said when the callback is first asked for, in one line
    raise UsageError(
        "nnlab.LatentCallback needs Lightning: pip install 'nnlab[lightning]'"
    ) from None


class LatentCallback(Callback):
    """Records a LightningModule into nnlab's store (the process of global rank 0 only).

    images, labels, classes: the probe set, as for RunWriter.watch. encode: a function of
    a batch of images, or the name of a method of the module (e.g. "encode") returning
    latents or a (mean, sd) pair; layer: instead, the name of a submodule whose output is
    recorded (run on the probe by itself when the module has no forward(), as Lightning's
    LitAutoEncoder); layers: several submodules recorded too, for `nnlab layers` (as for
    RunWriter.watch). image_shape, precision, prepare: as for RunWriter.watch (prepare
    shapes a batch as the module takes it, e.g. lambda x: x.flatten(1)). every_n_steps:
    the snapshot cadence in optimiser steps. name, settings, dataset, runs_dir: as for
    nnlab.start (settings default to the module's hparams). checkpoint: save the module's
    state_dict at each epoch's end. The run id is `run_id` once fitting starts.
    """

    def __init__(
        self,
        images: Any,
        labels: Any,
        *,
        classes: Sequence[str] | None = None,
        encode: Callable | str | None = None,
        layer: str | None = None,
        layers: Sequence[str] | None = None,
        image_shape: Sequence[int] | None = None,
        precision: str = "float32",
        prepare: Callable | None = None,
        every_n_steps: int = 50,
        name: str = "",
        settings: dict | None = None,
        dataset: str = "",
        runs_dir: str | Path | None = None,
        checkpoint: bool = True,
    ):
        super().__init__()
        if not (isinstance(every_n_steps, int) and every_n_steps >= 1):
            raise UsageError(f"every_n_steps={every_n_steps!r}: a whole number ≥ 1")
        self.images, self.labels, self.classes = images, labels, classes
        self.encode, self.layer, self.every = encode, layer, every_n_steps
        self.watching = {
            "image_shape": image_shape,
            "precision": precision,
            "prepare": prepare,
            "layers": layers,
        }
        self.name, self.settings, self.dataset = name, settings, dataset
        self.runs_dir, self.save = runs_dir, checkpoint
        self.run: RunWriter | None = None
        self._warned: set[str] = set()  # kinds of write skipped (each said once)

    @property
    def run_id(self) -> str | None:
        """The id of the run being written (None before fitting starts)."""
        return None if self.run is None else self.run.id

    def on_fit_start(self, trainer, pl_module) -> None:
        """Create the run, fix the probe and record the untrained state (step 0)."""
        if not trainer.is_global_zero:
            return
        encode = self.encode
        if isinstance(encode, str):
            if not callable(getattr(pl_module, encode, None)):
                raise UsageError(
                    f"encode='{encode}': {type(pl_module).__name__} has no such method"
                )
            encode = getattr(pl_module, encode)
        settings = self.settings if self.settings is not None else _hparams(pl_module)
        self.run = start(self.name, settings=settings, dataset=self.dataset, runs_dir=self.runs_dir)
        try:
            self.run.watch(
                self.images,
                self.labels,
                classes=self.classes,
                module=pl_module,
                encode=encode,
                layer=self.layer,
                **self.watching,
            )
            self.run.snapshot(trainer.global_step, epoch=float(trainer.current_epoch))
        except BaseException:
            self.run.finish(Status.FAILED)
            raise

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """The loss every log_every_n_steps, a snapshot every every_n_steps."""
        if self.run is None:
            return
        step = trainer.global_step
        loss = _loss(outputs)
        if loss is not None and step % max(trainer.log_every_n_steps, 1) == 0:
            self._guard("the loss", step, self.run.log, step, loss=loss)
        if step % self.every == 0 and step > self.run.last_snapshot:
            batches = trainer.num_training_batches
            done = (batch_idx + 1) / batches if math.isfinite(batches) and batches else 0.0
            epoch = trainer.current_epoch + done
            self._guard("a snapshot", step, self.run.snapshot, step, epoch=epoch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """The epoch's metrics as Lightning collected them (train and validation), and a
        checkpoint of the module's weights."""
        if self.run is None:
            return
        step, numbers, positions = trainer.global_step, {}, []
        for key, value in trainer.callback_metrics.items():
            if hasattr(value, "numel") and value.numel() == 1 and math.isfinite(float(value)):
                name = key.replace("/", "_")
                if name in RESERVED:  # nnlab's own position keys: its line has them already
                    positions.append(name)
                    continue
                numbers[name] = float(value)
        if positions:
            why = f"{', '.join(positions)}: a name nnlab keeps for a line's position"
            self._skipped("logged metric(s)", step, why)
        if numbers:
            epoch = trainer.current_epoch + 1
            self._guard(
                "the epoch's metrics", step, self.run.log_epoch, epoch, step=step, **numbers
            )
        if self.save:
            self._guard(
                "a checkpoint", step, self.run.checkpoint, step, model=pl_module.state_dict()
            )

    def on_fit_end(self, trainer, pl_module) -> None:
        """The final state recorded, and the run marked finished."""
        if self.run is None:
            return
        step = trainer.global_step
        if step > self.run.last_snapshot:
            self._guard(
                "a snapshot", step, self.run.snapshot, step, epoch=float(trainer.current_epoch)
            )
        self.run.finish(Status.FINISHED)

    def _guard(self, what: str, at: int, write, *args, **kwargs) -> None:
        """Write into the run (at step `at`); a recording problem (NaN latents of a
        diverging model, a value the run cannot hold) skips this write instead of stopping
        the user's fit."""
        try:
            write(*args, **kwargs)
        except NnlabError as e:  # UsageError is one
            self._skipped(what, at, str(e))

    def _skipped(self, what: str, step: int, why: str) -> None:
        """Say on stderr (once per kind of write) and in the run's metrics.jsonl (a line of
        kind "skipped") what was not recorded, and why."""
        if what not in self._warned:
            self._warned.add(what)
            warn(
                stderr_console(),
                f"nnlab: {what} at step {step} not recorded ({why}); "
                "training goes on, later ones are skipped the same way and noted in the run",
            )
        self.run.note_skipped(step, what, why)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """An exception in the fit marks the run failed (Ctrl-C: interrupted)."""
        if self.run is not None:
            self.run.finish(
                Status.INTERRUPTED if isinstance(exception, KeyboardInterrupt) else Status.FAILED
            )


def _loss(outputs) -> float | None:
    """training_step's loss as a number: its tensor, or a dict's "loss"."""
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if value is None or not hasattr(value, "numel") or value.numel() != 1:
        return None
    value = float(value.detach())
    return value if math.isfinite(value) else None


def _hparams(pl_module) -> dict:
    """The module's hyperparameters (save_hyperparameters), as far as they are JSON."""
    import json

    out = {}
    for key, value in dict(getattr(pl_module, "hparams", {}) or {}).items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = repr(value)
        out[str(key)] = value
    return out
