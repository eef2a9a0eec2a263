"""Latent snapshots while training: the probe set, one no-grad encoding pass per snapshot,
and the worker thread that runs those passes beside training for bfloat16 recording."""

from __future__ import annotations

import numpy as np
import torch

from nnlab.families.family import Config
from nnlab.helpers.background import Background
from nnlab.store import record
from nnlab.training.models import build_model, encode_latents


def choose_probe(cfg: Config, split_x: torch.Tensor, split_y: torch.Tensor):
    """The probe images of a split: (x, labels, positions in the split), seeded, stratified."""
    labels = split_y.cpu().numpy()
    chosen = record.probe_indices(labels, cfg.probe_size, cfg.seed)
    x = split_x[torch.from_numpy(chosen).to(split_x.device)]
    return x, labels[chosen], np.asarray(chosen)


def encode_probe(model, cfg: Config, probe_x: torch.Tensor) -> tuple:
    """The recorded latents of the probe set as float32 (bf16 arithmetic if configured)."""
    bf16 = cfg.record_precision == "bfloat16"
    with torch.autocast(probe_x.device.type, dtype=torch.bfloat16, enabled=bf16):
        enc = encode_latents(model, cfg, probe_x)
    return enc.points.float(), (None if enc.sd is None else enc.sd.float())


LAYER_CHUNK = 500  # probe images per forward pass when several layers are kept


@torch.no_grad()
def capture_layers(
    model, names: list[str], probe_x: torch.Tensor, reduction: str, also=None, run=None
):
    """Every named layer's activations on the probe set from one forward pass per chunk of
    images (eval mode, the network's `taps`): a convolution's feature maps reduced to the
    mean over positions of each channel (reduction "mean") or flattened ("raw"); float32
    on the CPU, in `names` order. also(taps) -> tensor, when given, is collected from the
    same pass too (the latent recording's layer): returns (layers, also's rows or None).
    run(batch): what passes the batch through the tapped layers (default: the model; a
    VAE's encoder, whose forward would draw samples from the global generator)."""
    run = run or model
    was = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    extra: list[torch.Tensor] = []
    try:
        for start in range(0, len(probe_x), LAYER_CHUNK):
            model.taps = {}
            run(probe_x[start : start + LAYER_CHUNK])
            for name in names:
                parts[name].append(kept_rows(model.taps[name], reduction).cpu())
            if also is not None:
                extra.append(also(model.taps).float())
    finally:
        model.taps = None
        model.train(was)
    return [torch.cat(parts[name]) for name in names], (torch.cat(extra) if extra else None)


def kept_rows(t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """A layer's batch of outputs as float32 rows (n, D): a feature map (n, C, H, W) as
    each channel's mean over positions (reduction "mean") or every value ("raw")."""
    if t.ndim == 4 and reduction == "mean":
        return t.float().mean(dim=(2, 3))
    return t.float().reshape(len(t), -1)  # a (n,) output too: one column


def head_of(model) -> tuple:
    """The output layer's weight (C, D) and bias (C,), float32 copies on the CPU (copies:
    on the CPU .numpy() shares the parameter's memory, which the next steps change)."""
    head = model.layers[-1]
    return tuple(p.detach().float().cpu().numpy().copy() for p in (head.weight, head.bias))


def beside_training(precision: str, device: torch.device, cpus: int) -> bool:
    """Whether snapshots should be encoded on a thread beside training: bf16 ones on a CPU
    of two cores or more keep up on a core of their own (float32 ones would not)."""
    return precision == "bfloat16" and device.type == "cpu" and cpus >= 2


class SnapshotWorker:
    """Encodes snapshots in a background thread from copies of the weights at their step,
    so the recording is the same as a synchronous one, only computed beside training."""

    def __init__(self, cfg: Config, probe_x: torch.Tensor, recorder: record.Recorder):
        self.cfg, self.probe_x, self.recorder = cfg, probe_x, recorder
        self.model = build_model(cfg).to(probe_x.device).eval()
        self.background = Background(self._encode, "nnlab-snapshots")  # at most 4 copies wait

    @staticmethod
    def wanted(cfg: Config, device: torch.device, cpus: int) -> bool:
        """bf16 snapshots are cheap enough to keep up on a core of their own: training then
        runs single-threaded on one core while the worker encodes on the other."""
        return bool(cfg.snapshot_every) and beside_training(cfg.record_precision, device, cpus)

    def submit(self, step: int, epoch: float, params: list[torch.Tensor]) -> None:
        """Queue a snapshot (blocks while 4 are waiting)."""
        self.background.put((step, epoch, params))

    def _encode(self, item) -> None:
        step, epoch, params = item
        with torch.no_grad():
            for dst, src in zip(self.model.parameters(), params, strict=True):
                dst.copy_(src)
        a, b = encode_probe(self.model, self.cfg, self.probe_x)
        self.recorder.add(step, epoch, a, b)

    def drain(self) -> None:
        """Wait until every queued snapshot is in the recorder."""
        self.background.drain()

    def close(self) -> None:
        """Stop the thread and give torch its threads back."""
        self.background.close()
