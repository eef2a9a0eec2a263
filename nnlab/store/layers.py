"""The recording of several layers at once (--record_layers): at each snapshot, every
recorded layer's activations on the probe set (the same images as the latent recording,
whose probe.npz it shares) and the output layer's weights and bias (neural collapse's
NC3 and NC4 compare them with the last hidden layer's class means).

<run>/layers/chunk-NNNNNN.npz holds `steps`, `epochs`, `names` (the layers, in order),
`layer-<i>` (S, N, D_i) per layer, and `head_weight` (S, C, D) and `head_bias` (S, C).
Chunks are written as the latent recording's are (at each checkpoint and publish), and a
resume drops the chunks written after its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnlab.helpers.errors import RunDamaged, RunError
from nnlab.helpers.files import load_npz, save_npz
from nnlab.store import record


@dataclass
class LayerRecording:
    """Several layers' activations over training, float32 in memory."""

    steps: np.ndarray  # (S,)
    epochs: np.ndarray  # (S,)
    names: list[str]
    layers: dict[str, np.ndarray]  # name -> (S, N, D)
    labels: np.ndarray  # (N,) the probe's classes
    head_weight: np.ndarray | None  # (S, C, D)
    head_bias: np.ndarray | None  # (S, C)

    def __len__(self) -> int:
        return len(self.steps)


class LayerRecorder:
    """Keeps snapshots of several layers in memory and flushes them as chunk files."""

    def __init__(self, folder: Path, names: list[str], dtype: str = "float16"):
        self.folder = Path(folder)
        self.names = list(names)
        self.dtype = np.dtype(dtype)
        self.pending: list[tuple[int, float, list[np.ndarray], tuple | None]] = []

    def add(self, step: int, epoch: float, acts: list, head: tuple | None) -> None:
        """Keep one snapshot: each layer's (N, D) activations in `names` order, and the
        output layer's (weight, bias) or None; refuse values the dtype cannot store."""
        arrays = [np.asarray(a.detach().cpu() if hasattr(a, "detach") else a) for a in acts]
        largest = float(np.finfo(self.dtype).max)
        for name, a in zip(self.names, arrays, strict=True):
            beyond = int((np.abs(a) > largest).sum())
            if beyond:
                raise record.BeyondRange(
                    beyond,
                    f"snapshot at step {step}: {beyond} values of layer {name} beyond what "
                    f"{self.dtype} stores (±{largest:g}); train with --record_dtype=float32",
                )
        self.pending.append((int(step), float(epoch), [a.astype(self.dtype) for a in arrays], head))

    def chunk_count(self) -> int:
        """How many chunk files are on disk."""
        return len(record.chunk_files(self.folder))

    def flush(self) -> int:
        """Write pending snapshots as the next chunk; return the number of chunks on disk."""
        n = self.chunk_count()
        if not self.pending:
            return n
        self.folder.mkdir(parents=True, exist_ok=True)
        named = {
            f"layer-{i}": np.stack([p[2][i] for p in self.pending]) for i in range(len(self.names))
        }
        if self.pending[0][3] is not None:
            named["head_weight"] = np.stack([np.asarray(p[3][0], np.float32) for p in self.pending])
            named["head_bias"] = np.stack([np.asarray(p[3][1], np.float32) for p in self.pending])
        save_npz(
            self.folder / f"chunk-{n:06d}.npz",
            steps=np.array([p[0] for p in self.pending], dtype=np.int64),
            epochs=np.array([p[1] for p in self.pending], dtype=np.float64),
            names=np.array(self.names, dtype=str),
            **named,
        )
        self.pending.clear()
        return n + 1

    def truncate(self, keep_chunks: int) -> None:
        """Drop pending snapshots and chunk files past the first `keep_chunks` (on resume)."""
        self.pending.clear()
        record.drop_chunks(self.folder, keep_chunks)


def several(folder: Path) -> bool:
    """Whether a run recorded several layers (what `nnlab layers` and its measures need)."""
    return len(names_of(folder)) > 1


def names_of(folder: Path) -> list[str]:
    """The recorded layers' names (from the first chunk), [] when none are recorded."""
    files = record.chunk_files(folder) if Path(folder).is_dir() else []
    if not files:
        return []
    return [str(n) for n in load_npz(files[0], None, ("names",))["names"]]


def load_layers(folder: Path, probe_folder: Path, max_bytes: int | None = None) -> LayerRecording:
    """Read the whole recording of several layers, checked: every chunk names the same
    layers, each layer one width, every array one row per snapshot and probe image."""
    files = record.chunk_files(folder) if Path(folder).is_dir() else []
    if not files:
        raise RunError(f"{folder}: no layers recorded (train with --record_layers=all)")
    labels = record.probe_labels(probe_folder)
    parts = [load_npz(p, max_bytes) for p in files]
    names = [str(n) for n in parts[0].get("names", [])]
    for path, part in zip(files, parts, strict=True):
        _check(path, part, names, len(labels))
    layers = {
        name: np.concatenate([part[f"layer-{i}"] for part in parts]).astype(np.float32)
        for i, name in enumerate(names)
    }
    head = "head_weight" in parts[0]
    return LayerRecording(
        steps=np.concatenate([part["steps"] for part in parts]).astype(np.int64),
        epochs=np.concatenate([part["epochs"] for part in parts]).astype(np.float64),
        names=names,
        layers=layers,
        labels=labels,
        head_weight=np.concatenate([p["head_weight"] for p in parts]) if head else None,
        head_bias=np.concatenate([p["head_bias"] for p in parts]) if head else None,
    )


def _check(path: Path, part: dict, names: list[str], n: int) -> None:
    if [str(x) for x in part.get("names", [])] != names or not names:
        _damaged(path, "its layers differ from the first chunk's")
    s = len(part.get("steps", []))
    if len(part.get("epochs", [])) != s:
        _damaged(path, "steps and epochs differ in length")
    for i in range(len(names)):
        a = part.get(f"layer-{i}")
        if a is None or a.ndim != 3 or a.shape[:2] != (s, n) or a.shape[2] == 0:
            _damaged(path, f"layer {names[i]} has shape {getattr(a, 'shape', None)}")


def _damaged(path, why: str):
    raise RunDamaged(f"{path}: damaged ({why})")


def as_recording(folder: Path, probe_folder: Path, name: str, max_bytes: int | None = None):
    """One recorded layer as a record.Recording (its points; the probe's labels, indices
    and split), read without the other layers, for drawing as the latent layer is drawn."""
    names = names_of(folder)
    if name not in names:
        from nnlab.helpers.errors import NnlabError, did_you_mean

        if not names:
            raise NnlabError(
                f"--layer={name}: this run recorded one layer; train with --record_layers=all "
                "to draw another"
            )
        recorded = ", ".join(names)
        raise NnlabError(f"--layer={name}: not recorded{did_you_mean(name, names)} ({recorded})")
    for path in record.chunk_files(folder):  # every chunk numbers the layers alike
        if [str(x) for x in load_npz(path, None, ("names",)).get("names", [])] != names:
            _damaged(path, "its layers differ from the first chunk's")
    # the one layer alone, read as the latent recording is (its probe is the latents')
    key = f"layer-{names.index(name)}"
    return record.load_recording(folder, (key,), max_bytes, probe_folder=probe_folder)
