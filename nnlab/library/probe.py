"""The probe of a run written by the user's own code: its images and labels checked once,
and how a snapshot encodes them (the user's function, or a forward hook on a named
module), in chunks, under no_grad and in eval mode, the module's mode restored after."""

from __future__ import annotations

import copy
import os
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnlab.data.catalog import MAX_CLASS_NAME, MAX_CLASSES
from nnlab.helpers.background import Background
from nnlab.helpers.errors import NnlabError, did_you_mean


class UsageError(NnlabError, ValueError):
    """A call of nnlab's Python API that cannot be honoured (bad arguments, or the wrong
    moment); the run on disk is left as it was."""


def as_array(x: Any, what: str) -> np.ndarray:
    """A torch tensor or array-like as a numpy array (on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise UsageError(f"{what}: not an array ({e})") from None


def display_images(images: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """Images as the pictures show them: (N, C, H, W) uint8. uint8 stays as it is; floats
    in [0, 1] are scaled by 255; other floats (normalised inputs) by the set's min and max.
    shape: each image's (H, W) or (C, H, W) when the network takes them flat (N, D)."""
    if images.ndim == 0 or len(images) == 0:
        raise UsageError("images: the probe set is empty")
    if shape is not None and not all(isinstance(n, int) and n > 0 for n in shape):
        raise UsageError(f"image_shape={tuple(shape)}: sizes are whole numbers from 1")
    if shape is not None:
        size = int(np.prod(shape)) if len(shape) in (2, 3) else -1
        if size != int(np.prod(images.shape[1:])):
            raise UsageError(
                f"image_shape={tuple(shape)}: does not hold the {int(np.prod(images.shape[1:]))} "
                "values of each image (give (H, W) or (C, H, W))"
            )
        images = images.reshape(len(images), *shape)
    if images.ndim == 2:
        raise UsageError(
            f"images: flat vectors ({images.shape[1]} values each): say how to draw them with "
            "image_shape=(H, W) or (C, H, W)"
        )
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise UsageError(
            f"images: expected N×H×W or N×C×H×W with C 1 or 3 (channels first), got shape "
            f"{tuple(images.shape)}"
        )
    if images.dtype == np.uint8:
        return images
    if images.dtype == bool or not np.issubdtype(images.dtype, np.number):
        raise UsageError(f"images: expected numbers, got {images.dtype}")
    x = images.astype(np.float64)
    if not np.isfinite(x).all():
        raise UsageError("images: hold NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:  # normalised inputs: shown with the set's own range
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.round(x * 255).astype(np.uint8)


def check_labels(labels: np.ndarray, n: int, classes: Sequence[str] | None) -> list[str]:
    """The class names for labels of n images (given, or 0..max); refuse what does not fit,
    and more than MAX_CLASSES classes (named or implied by the largest label)."""
    if labels.ndim != 1 or len(labels) != n:
        raise UsageError(
            f"labels: expected one label per image ({n}), got shape {tuple(labels.shape)}"
        )
    if n == 0:
        raise UsageError("images: the probe set is empty")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"labels: expected whole numbers (class indices), got {labels.dtype}")
    if labels.min() < 0:
        raise UsageError(f"labels: class indices start at 0, got {int(labels.min())}")
    if classes is None and int(labels.max()) >= MAX_CLASSES:
        raise UsageError(
            f"labels: label {int(labels.max())} implies {int(labels.max()) + 1:,} classes; "
            f"nnlab draws at most {MAX_CLASSES:,} (number your classes from 0)"
        )
    if classes is None:
        return [str(i) for i in range(int(labels.max()) + 1)]
    if len(classes) > MAX_CLASSES:
        raise UsageError(f"classes: {len(classes):,} names; nnlab draws at most {MAX_CLASSES:,}")
    names = [str(c) for c in classes]
    long = next((n for n in names if len(n) > MAX_CLASS_NAME), None)
    if long is not None:
        raise UsageError(
            f"classes: a name of {len(long):,} characters ({long[:20]!r}...); at most "
            f"{MAX_CLASS_NAME} each"
        )
    if not names:
        raise UsageError("classes: give at least one class name")
    if int(labels.max()) >= len(names):
        raise UsageError(
            f"labels: label {int(labels.max())} but only {len(names)} class names "
            f"(labels run from 0 to {len(names) - 1})"
        )
    return names


@dataclass
class Encoded:
    """One snapshot's arrays: each probe image's point, and its spread when recorded."""

    points: np.ndarray  # (N, D) float32
    sd: np.ndarray | None
    layers: dict[str, np.ndarray] | None = None  # watch(layers=...): each (N, D_i) float32


class Encoder:
    """Encodes the probe images for a snapshot: `encode(batch)` returning latents (or a
    (mean, sd) pair), or the output of the submodule `layer` of `module` (a forward hook
    on the module's forward(); a module without a forward of its own, as Lightning's
    LitAutoEncoder, has the part itself run on the probe). `prepare(batch)` shapes each
    batch as the network takes it; without it, images go flat to a part whose first layer
    is a Linear taking that many features."""

    def __init__(
        self,
        images: Any,
        *,
        module=None,
        encode: Callable | None = None,
        layer: str | None = None,
        batch_size: int = 4096,
        precision: str = "float32",
        prepare: Callable | None = None,
        layers: Sequence[str] | None = None,
    ):
        import torch

        if (encode is None) == (layer is None):
            raise UsageError("watch: give either encode= (a function) or layer= (a module name)")
        if layer is not None and module is None:
            raise UsageError(f"watch: layer='{layer}' needs module= (the network to run)")
        if encode is not None and not callable(encode):
            raise UsageError("watch: encode= must be a function of a batch of images")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise UsageError(f"watch: batch_size={batch_size!r} must be a whole number ≥ 1")
        if module is not None and not isinstance(module, torch.nn.Module):
            raise UsageError(f"watch: module= must be a torch.nn.Module, got {type(module)}")
        if precision not in ("float32", "bfloat16"):
            raise UsageError(f"watch: precision='{precision}': use float32 or bfloat16")
        if prepare is not None and not callable(prepare):
            raise UsageError("watch: prepare= must be a function of a batch of images")
        self.module, self.encode, self.batch_size = module, encode, batch_size
        self.layer, self.precision = layer, precision
        self.target = None
        if layer is not None:
            self.target = _submodule(module, layer, "layer=")
        self.layers = _layer_list(layers, module)
        self.taps = {name: _submodule(module, name, "layers=") for name in self.layers}
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        if not x.is_floating_point():
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        self.images = x  # on the CPU; copied to the module's device once per device
        self._on: dict[str, torch.Tensor] = {}
        # a module without a forward of its own: the watched part is run on the probe
        self.direct = self.target is not None and not _has_forward(module)
        runs = self.target if self.direct else module
        self.given_prepare = prepare
        self.prepare = prepare
        # images that fail where the first layer is a Linear of one image's size: flat next
        self.may_flatten = prepare is None and _wants_flat(runs, x)

    def _device(self):
        import torch

        if self.module is not None:
            for p in self.module.parameters():
                return p.device
        return torch.device("cpu")

    def _probe(self):
        device = self._device()
        key = str(device)
        if key not in self._on:
            self._on = {key: self.images.to(device)}  # one copy, on the device in use
        return self._on[key]

    def __call__(self) -> Encoded:
        """Encode every probe image: in chunks, no grad, eval mode, mode restored."""
        import torch

        was = self.module.training if self.module is not None else None
        if self.module is not None:
            self.module.eval()
        captured: list = []
        hook = None
        if self.target is not None:
            hook = self.target.register_forward_hook(lambda m, i, out: captured.append(out))
        tapped: dict = {}  # watch(layers=...): each named module's output, in the same pass
        hooks = [
            module.register_forward_hook(lambda m, i, out, name=name: tapped.__setitem__(name, out))
            for name, module in self.taps.items()
        ]
        bf16 = self.precision == "bfloat16"
        layer_parts: dict[str, list] = {name: [] for name in self.layers}
        try:
            probe = self._probe()
            parts, spreads = [], []
            with torch.no_grad(), torch.autocast(probe.device.type, torch.bfloat16, enabled=bf16):
                for s in range(0, len(probe), self.batch_size):
                    tapped.clear()
                    out = self._run(probe[s : s + self.batch_size], hook, captured)
                    n = min(self.batch_size, len(probe) - s)
                    a, b = _split(out, n)
                    parts.append(a)
                    spreads.append(b)
                    for name in self.layers:
                        layer_parts[name].append(_tap_rows(tapped, name, n))
        finally:
            for h in [hook, *hooks]:
                if h is not None:
                    h.remove()
            if was is not None:
                self.module.train(was)
        if any((b is None) != (spreads[0] is None) for b in spreads):
            raise UsageError("encode: returned a spread for some batches and not others")
        points = np.concatenate(parts).astype(np.float32)
        sd = None if spreads[0] is None else np.concatenate(spreads).astype(np.float32)
        kept = {name: np.concatenate(p).astype(np.float32) for name, p in layer_parts.items()}
        return Encoded(points, sd, kept or None)

    def _run(self, xb, hook, captured):
        """One batch through what is watched; an error inside the user's network is one
        line naming the probe's shape and what the network's first layer takes (images
        the first Linear wants flat are tried flat once, and kept so)."""
        try:
            return self._through(xb, hook, captured)
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as e:
            if isinstance(e, UsageError):
                raise
            if self.may_flatten:
                self.may_flatten, self.prepare = False, _flatten
                return self._run(xb, hook, captured)
            raise UsageError(self._mismatch(tuple(xb.shape), e)) from None

    def _through(self, xb, hook, captured):
        if self.prepare is not None:
            xb = self.prepare(xb)
        if self.direct:
            return self.target(xb)
        if hook is not None:
            captured.clear()
            self.module(xb)
            if not captured:
                raise UsageError("watch: the watched layer did not run in forward()")
            return captured[-1]
        return self.encode(xb)

    def _mismatch(self, shape: tuple, e: Exception) -> str:
        """What went wrong running the probe, in one line, and what to give."""
        what = f"layer '{self.layer}'" if self.target is not None else "encode"
        runs = self.target if self.direct else self.module
        first = _first_layer(runs)
        takes = f"; its first layer, {first}, takes" if first else ""
        wants = (
            f" {first.in_features} features"
            if hasattr(first, "in_features")
            else f" {first.in_channels} channels"
            if hasattr(first, "in_channels")
            else ""
        )
        message = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return (
            f"watch: {what} failed on the probe images {shape}: {message}{takes}{wants}: "
            "give prepare= to shape a batch as the network takes it (e.g. prepare=lambda x: "
            "x.flatten(1)), or image_shape= for images given flat"
        )

    def twin(self) -> Encoder:
        """The same encoder on a copy of the module (for a snapshot thread)."""
        if self.module is None:
            raise UsageError("watch: precision='bfloat16' records on a copy of module=: give it")
        module = copy.deepcopy(self.module)
        encode = self.encode
        if encode is not None:
            if getattr(encode, "__self__", None) is not self.module:
                raise UsageError(
                    "watch: precision='bfloat16' records beside training, on a copy of the "
                    "module: give encode as a method of module (e.g. model.encode) or layer="
                )
            encode = types.MethodType(encode.__func__, module)
        return Encoder(
            self.images,
            module=module,
            encode=encode,
            layer=self.layer,
            batch_size=self.batch_size,
            precision=self.precision,
            prepare=self.given_prepare,
            layers=self.layers or None,
        )

    def wants_thread(self) -> bool:
        """bf16 snapshots keep up on a core of their own (nnlab's trainer does the same):
        training then runs on one CPU core while a thread encodes on the other."""
        from nnlab.training.snapshots import beside_training

        return beside_training(self.precision, self._device(), os.cpu_count() or 1)


class SnapshotThread:
    """Encodes snapshots on a thread beside training, each from a copy of the weights at
    its step, so the recording is the one a synchronous snapshot would make. `accept(step,
    epoch, encoded)` checks and keeps each; an error it raises comes back at drain()."""

    def __init__(self, source, twin: Encoder, accept: Callable):
        """source: the module training changes; twin: an encoder on a copy of it."""
        self.source, self.twin, self.accept = source, twin, accept
        self.background = Background(self._encode, "nnlab-snapshots")

    def submit(self, step: int, epoch: float) -> None:
        """Queue a snapshot of the module as it is now (blocks while 4 are waiting)."""
        state = [t.detach().clone() for t in self.source.state_dict().values()]
        self.background.put((step, epoch, state))

    def _encode(self, item) -> None:
        import torch

        step, epoch, state = item
        with torch.no_grad():
            for dst, src in zip(self.twin.module.state_dict().values(), state, strict=True):
                dst.copy_(src)
        self.accept(step, epoch, self.twin())

    def drain(self) -> None:
        """Wait until every queued snapshot is kept; raise the first error since the last."""
        self.background.drain()

    def close(self) -> None:
        """Stop the thread (torch gets its threads back)."""
        self.background.close()


def _split(out, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch's latents as (points (n, D), spread or None): a tensor is the points (a
    feature map is flattened); a pair is (mean, sd)."""
    if isinstance(out, dict):
        raise UsageError("encode: return latents, or a (mean, sd) pair, not a dict")
    if isinstance(out, (tuple, list)):
        if len(out) == 2 and all(hasattr(o, "shape") for o in out):
            a, b = (as_array(o, "encode") for o in out)
            if a.shape != b.shape:
                raise UsageError(
                    f"encode: mean {tuple(a.shape)} and sd {tuple(b.shape)} differ in shape"
                )
            return a.reshape(n, -1), b.reshape(n, -1)
        out = out[0]  # a module returning several outputs: its first
    a = as_array(out, "encode")
    if a.ndim < 1 or a.shape[0] != n:
        raise UsageError(f"encode: expected one row per image ({n}), got shape {a.shape}")
    return a.reshape(n, -1), None


def _submodule(module, name: str, option: str):
    """The submodule `name` of module, or a one-line UsageError naming its submodules."""
    names = dict(module.named_modules())
    if name in names and name != "":
        return names[name]
    shown = [n for n in names if n][:20]
    if not shown:
        raise UsageError(
            f"watch: {type(module).__name__} has no submodules to record: give encode= (a "
            f"function of a batch of images) instead of {option}"
        )
    raise UsageError(
        f"watch: no module '{name}' in {type(module).__name__}"
        f"{did_you_mean(name, shown)} (its modules: {', '.join(shown)})"
    )


def _layer_list(layers, module) -> list[str]:
    """watch(layers=...) as a list of distinct module names (at least two: one is layer=)."""
    if layers is None:
        return []
    if isinstance(layers, str) or not all(isinstance(x, str) for x in layers):
        raise UsageError("watch: layers= takes a list of module names, e.g. ['fc1', 'fc2']")
    names = list(dict.fromkeys(layers))
    if module is None:
        raise UsageError("watch: layers= needs module= (the network whose layers to record)")
    if len(names) < 2:
        raise UsageError("watch: layers= records several layers: name two or more (one: layer=)")
    return names


def _tap_rows(tapped: dict, name: str, n: int) -> np.ndarray:
    """One batch of a watched layer's output as (n, D) rows: a feature map (n, C, H, W)
    reduced to its channels' means over positions, as `nnlab train --record_layers` keeps
    them; a module that did not run, or returned a tuple or dict, is one line."""
    if name not in tapped:
        raise UsageError(f"watch: layers: module '{name}' did not run in forward()")
    out = tapped[name]
    if not hasattr(out, "shape"):
        kind = type(out).__name__
        raise UsageError(
            f"watch: layers: module '{name}' returns a {kind}, not a tensor; name a submodule "
            "whose output is one tensor (e.g. a Linear inside it)"
        )
    from nnlab.training.snapshots import kept_rows

    if out.shape[0] != n:
        raise UsageError(f"watch: layers: module '{name}' gave {out.shape[0]} rows for {n} images")
    return kept_rows(out.detach()).cpu().numpy()


def _has_forward(module) -> bool:
    """Whether a module defines forward() itself (a LightningModule may not: Lightning's
    own README's LitAutoEncoder has none; nn.Module's and Lightning's raise)."""
    forward = getattr(type(module), "forward", None)
    owner = getattr(forward, "__qualname__", "").split(".")[0]
    return owner not in ("Module", "LightningModule", "")


def _first_layer(module):
    """The first Linear or convolution of a module, in definition order (None: neither)."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    if module is None:
        return None
    return next((m for m in module.modules() if isinstance(m, kinds)), None)


def _wants_flat(module, x) -> bool:
    """Whether images reach a network whose first layer is a Linear taking one image's
    values flat (then they are flattened, as its training_step does)."""
    first = _first_layer(module)
    per_image = int(np.prod(x.shape[1:])) if x.ndim > 2 else 0
    return getattr(first, "in_features", None) == per_image and per_image > 0 and x.ndim > 2


def _flatten(x):
    """A batch of images, one row each."""
    return x.flatten(1)
