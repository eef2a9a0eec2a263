"""The latent recording: a fixed probe set encoded every few steps, stored by snapshot.

latents/probe.npz holds the probe set's labels and indices into its split (and, for a run
written by a user's own code, the images themselves, (N, C, H, W) uint8, and the class
names); latents/chunk-NNNNNN.npz hold consecutive snapshots: `steps`, `epochs` and, per
snapshot, the family's arrays (`Family.arrays`): `mu` and `sd` (a VAE's posterior, each
(S, N, D)) or `act` (a classifier's layer, (S, N, D)). A name ending in "?" is an array a
run may leave out (every chunk has it, or none).
A chunk is written (atomically) whenever the trainer checkpoints, so the recording on disk
always ends at or after the latest checkpoint, and a resume drops the chunks beyond it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnlab import families
from nnlab.helpers.errors import RunDamaged, RunError
from nnlab.helpers.files import check_npz, load_npz, save_npz

CHUNK_RE = re.compile(r"^chunk-(\d{6})\.npz$")


def probe_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of the probe images in a split: all, or a seeded class-stratified subset."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    classes, counts = np.unique(labels, return_counts=True)
    # Share the budget in proportion to class sizes (largest remainders), so small probe
    # sets still show every class.
    share = counts / n * size
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take))[: size - take.sum()]:
        take[i] += 1
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == c)
        picked.append(rng.choice(members, k, replace=False))
    return np.sort(np.concatenate(picked))


@dataclass
class Recording:
    """A whole recording read back: steps, epochs, labels and the latent arrays."""

    steps: np.ndarray  # (S,) int64
    epochs: np.ndarray  # (S,) float64: epochs done, fractional within an epoch
    labels: np.ndarray  # (N,) int64
    indices: np.ndarray  # (N,) positions in the probe split
    split: str
    points: np.ndarray  # (S, N, D) float32: VAE posterior means, or a layer's activations
    sd: np.ndarray | None = None  # (S, N, D) float32: each point's spread, where recorded
    classes: list[str] | None = None  # the class names the probe came with, if any

    def __len__(self) -> int:
        return len(self.steps)


class BeyondRange(RunError):
    """A snapshot's values that the recording's dtype cannot store (`count` of them)."""

    def __init__(self, count: int, message: str):
        super().__init__(message)
        self.count = count


class Recorder:
    """Takes snapshots of the probe set in memory and flushes them as chunk files."""

    def __init__(self, folder: Path, arrays: tuple[str, ...], dtype: str = "float16"):
        self.folder = Path(folder)
        # the family's names (the points, then their spread if any), without "?" marks
        self.arrays = tuple(a.rstrip("?") for a in arrays)
        self.dtype = np.dtype(dtype)
        self.pending: list[tuple[int, float, np.ndarray, np.ndarray | None]] = []
        self._saved: int | None = None  # snapshots on disk, counted once then kept up to date

    def write_probe(
        self,
        labels: np.ndarray,
        indices: np.ndarray,
        split: str,
        images: np.ndarray | None = None,
        classes: list[str] | None = None,
    ) -> None:
        """Save the probe set's labels and split indices (once, when the run starts), and
        its images (N, C, H, W) uint8 and class names when nnlab cannot load them itself."""
        self.folder.mkdir(parents=True, exist_ok=True)
        extra = {} if images is None else {"images": images.astype(np.uint8)}
        if classes is not None:
            extra["classes"] = np.array([str(c) for c in classes], dtype=str)
        save_npz(
            self.folder / "probe.npz",
            labels=labels.astype(np.int64),
            indices=indices.astype(np.int64),
            split=np.array(split),
            **extra,
        )

    @property
    def largest(self) -> float:
        """The largest magnitude the recording's dtype stores (float16: 65,504)."""
        return float(np.finfo(self.dtype).max)

    def add(self, step: int, epoch: float, a, b=None) -> None:
        """Keep one snapshot (torch tensors or arrays) until the next flush; refuse
        (BeyondRange, one line) values its dtype cannot store, which would become infinite."""
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        if b is not None:
            b = b.detach().cpu().numpy() if hasattr(b, "detach") else np.asarray(b)
        beyond = sum(int((np.abs(x) > self.largest).sum()) for x in (a, b) if x is not None)
        if beyond:
            raise BeyondRange(
                beyond,
                f"snapshot at step {step}: {beyond} latent values beyond what "
                f"{self.dtype} stores (±{self.largest:g}); train with --record_dtype=float32 "
                "to record them",
            )
        b = None if b is None else b.astype(self.dtype)
        self.pending.append((int(step), float(epoch), a.astype(self.dtype), b))

    def chunk_count(self) -> int:
        """How many chunk files are on disk."""
        return len(chunk_files(self.folder))

    def saved(self) -> int:
        """How many snapshots the chunk files on disk hold."""
        if self._saved is None:
            self._saved = snapshot_count(self.folder)
        return self._saved

    def flush(self) -> int:
        """Write pending snapshots as the next chunk; return the number of chunks on disk."""
        n = self.chunk_count()
        if not self.pending:
            return n
        before = self.saved()  # counted before the new chunk exists
        steps = np.array([p[0] for p in self.pending], dtype=np.int64)
        epochs = np.array([p[1] for p in self.pending], dtype=np.float64)
        present = 1 + (self.pending[0][3] is not None)  # the spread, when recorded
        stacked = [np.stack([p[2 + i] for p in self.pending]) for i in range(present)]
        named = dict(zip(self.arrays[:present], stacked, strict=True))
        path = self.folder / f"chunk-{n:06d}.npz"
        save_npz(path, steps=steps, epochs=epochs, **named)
        self._saved = before + len(self.pending)
        self.pending.clear()
        return n + 1

    def truncate(self, keep_chunks: int) -> None:
        """Drop pending snapshots and chunk files past the first `keep_chunks` (on resume)."""
        self.pending.clear()
        drop_chunks(self.folder, keep_chunks)
        self._saved = None


def drop_chunks(folder: Path, keep: int) -> None:
    """Remove the chunk files of a recording past its first `keep` (a resume's cut)."""
    for path in chunk_files(folder)[keep:]:
        path.unlink()


def chunk_files(folder: Path) -> list[Path]:
    """The chunk files of a recording, in order."""
    if not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).iterdir() if CHUNK_RE.match(p.name))


def snapshot_count(folder: Path, max_bytes: int | None = None) -> int:
    """Number of snapshots on disk, reading only the small `steps` arrays (each chunk's
    claims checked against max_bytes first, when given)."""
    return len(load_steps(folder, max_bytes))


def load_steps(folder: Path, max_bytes: int | None = None) -> np.ndarray:
    """The steps of every snapshot on disk, reading only the small `steps` arrays."""
    parts = []
    for path in chunk_files(folder):
        if max_bytes is not None:
            check_npz(path, max_bytes)
        try:
            with np.load(path, allow_pickle=False) as z:
                parts.append(np.asarray(z["steps"], dtype=np.int64))
        except Exception:
            raise RunDamaged(f"{path}: damaged") from None
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def load_last(folder: Path, arrays: tuple[str, ...], max_bytes: int | None = None) -> Recording:
    """The last snapshot of a run's recording alone (reads the probe and the last chunk)."""
    rec = load_recording(folder, arrays, max_bytes, last_chunk_only=True)
    keep = slice(len(rec) - 1, len(rec))
    return dataclasses.replace(
        rec,
        steps=rec.steps[keep],
        epochs=rec.epochs[keep],
        points=rec.points[keep],
        sd=None if rec.sd is None else rec.sd[keep],
    )


def load_recording(
    folder: Path,
    arrays: tuple[str, ...],
    max_bytes: int | None = None,
    last_chunk_only: bool = False,
    probe_folder: Path | None = None,
) -> Recording:
    """Read the whole recording of a run (float32 in memory): the arrays named by its
    family (the points, then their spread if any); with max_bytes, a file whose arrays
    claim more is refused before it is read (schema.size_ceilings). probe_folder: where
    probe.npz is, when not beside the chunks (store.layers reads one layer this way)."""
    folder = Path(folder)
    probe = load_npz(
        Path(probe_folder or folder) / "probe.npz",
        max_bytes,
        ("labels", "indices", "split", "classes"),
    )
    files = chunk_files(folder)
    files = files[-1:] if last_chunk_only else files
    if not files:
        raise RunError(f"{folder}: no latent snapshots recorded")
    # only the arrays asked for are decompressed (a chunk of several layers holds more)
    wanted = ("steps", "epochs", *(a.rstrip("?") for a in arrays))
    parts = [load_npz(p, max_bytes, wanted) for p in files]
    # an optional array ("sd?") is read when the first chunk has it, then every chunk must
    keys = present_arrays(arrays, parts[0])
    width = None  # every chunk's arrays: (S, N, D) with one D, S integer steps and epochs
    for p, part in zip(files, parts, strict=True):
        width = check_chunk(p, part, keys, width)
    loaded = {k: np.concatenate([part[k] for part in parts]).astype(np.float32) for k in keys}
    steps = np.concatenate([part["steps"] for part in parts]).astype(np.int64)
    n = len(probe["labels"])
    for k, v in loaded.items():
        if v.ndim != 3 or v.shape[0] != len(steps) or v.shape[1] != n:
            raise RunDamaged(f"{folder}: damaged ('{k}' has shape {v.shape})")
    return Recording(
        steps=steps,
        epochs=np.concatenate([part["epochs"] for part in parts]).astype(np.float64),
        labels=probe["labels"].astype(np.int64),
        indices=probe["indices"].astype(np.int64),
        split=str(probe.get("split", "test")),
        points=loaded[keys[0]],
        sd=loaded[keys[1]] if len(keys) > 1 else None,
        classes=[str(c) for c in probe["classes"]] if "classes" in probe else None,
    )


def present_arrays(arrays: tuple[str, ...], first: dict) -> tuple[str, ...]:
    """The family's array names a recording holds: every required one, and an optional one
    ("sd?") when its first chunk has it (then every chunk must)."""
    return tuple(a.rstrip("?") for a in arrays if not a.endswith("?") or a[:-1] in first)


def check_chunk(path: Path, part: dict, keys: tuple[str, ...], width: int | None) -> int | None:
    """Refuse a chunk that lacks an array, whose steps are not whole numbers one per
    snapshot, or whose arrays are not (S, N, D) with the recording's one D (`width`, None
    for the first chunk read); returns D."""
    if any(k not in part for k in ("steps", "epochs", *keys)):
        raise RunDamaged(f"{path}: damaged (missing arrays)")
    s = part["steps"]
    if s.ndim != 1 or not np.issubdtype(s.dtype, np.integer) or len(part["epochs"]) != len(s):
        raise RunDamaged(f"{path}: damaged (steps are not whole numbers, one per snapshot)")
    for k in keys:
        a = part[k]
        if a.ndim != 3 or len(a) != len(s) or (width is not None and a.shape[2] != width):
            raise RunDamaged(f"{path}: damaged ('{k}' has shape {a.shape})")
        width = a.shape[2]
    return width


class Snapshots:
    """A recording read one snapshot at a time, for a reader that asks for one (a notebook,
    a server): the chunk files are listed again at every call, so a run that is training
    shows each chunk as soon as it is flushed, and a chunk's arrays are read once while
    its file is unchanged (name, size and mtime) and kept for the next call."""

    KEEP = 4  # chunks kept in memory (a chunk holds up to an epoch of snapshots)

    def __init__(self, folder: Path, arrays: tuple[str, ...], max_bytes: int | None = None):
        self.folder, self.arrays, self.max_bytes = Path(folder), arrays, max_bytes
        self._steps: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # file key -> steps
        self._arrays: dict[tuple, dict[str, np.ndarray]] = {}  # file key -> arrays, LRU
        self._probe: tuple[tuple, dict] | None = None

    def _index(self) -> list[tuple[tuple, Path, np.ndarray, np.ndarray]]:
        """(file key, path, steps, epochs) of every chunk on disk now, in order."""
        out = []
        for path in chunk_files(self.folder):
            st = path.stat()
            key = (path.name, st.st_size, st.st_mtime_ns, st.st_ino)
            if key not in self._steps:
                part = load_npz(path, self.max_bytes, ("steps", "epochs"))
                if "steps" not in part or "epochs" not in part:
                    raise RunDamaged(f"{path}: damaged (missing arrays)")
                steps, epochs = part["steps"], part["epochs"]
                if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
                    raise RunDamaged(f"{path}: damaged (steps are not whole numbers)")
                if epochs.shape != steps.shape:
                    raise RunDamaged(f"{path}: damaged (not one epoch per snapshot)")
                self._steps[key] = (steps.astype(np.int64), epochs.astype(np.float64))
            out.append((key, path, *self._steps[key]))
        return out

    def steps(self) -> np.ndarray:
        """The step of every snapshot on disk, in order."""
        index = self._index()
        return np.concatenate([i[2] for i in index]) if index else np.zeros(0, np.int64)

    def epochs(self) -> np.ndarray:
        """The epoch (fractional) of every snapshot on disk, in order."""
        index = self._index()
        return np.concatenate([i[3] for i in index]) if index else np.zeros(0, np.float64)

    def probe(self) -> dict:
        """probe.npz's labels, split indices, split and class names (not its images)."""
        path = self.folder / "probe.npz"
        st = path.stat() if path.is_file() else None
        key = None if st is None else (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._probe is None or self._probe[0] != key:
            probe = load_npz(path, self.max_bytes, ("labels", "indices", "split", "classes"))
            if "labels" not in probe or probe["labels"].ndim != 1:
                raise RunDamaged(f"{path}: damaged (no labels)")
            self._probe = (key, probe)
        return self._probe[1]

    def snapshot(self, step: int | None = None) -> tuple[int, float, dict[str, np.ndarray]]:
        """(step, epoch, {array name: (N, D) float32}) of the snapshot at `step` (None:
        the last one); KeyError when no snapshot was taken at that step."""
        index = self._index()
        if not index:
            raise RunError(f"{self.folder}: no latent snapshots recorded")
        for key, path, steps, epochs in reversed(index):  # the newest chunk first
            hits = np.flatnonzero(steps == step) if step is not None else np.arange(len(steps))
            if len(hits):
                i = int(hits[-1])
                arrays = self._chunk(key, path)
                return int(steps[i]), float(epochs[i]), {k: v[i] for k, v in arrays.items()}
        raise KeyError(step)

    def _chunk(self, key: tuple, path: Path) -> dict[str, np.ndarray]:
        """A chunk's arrays as float32, checked (from memory while its file is unchanged)."""
        if key in self._arrays:
            self._arrays[key] = self._arrays.pop(key)  # most recently used last
            return self._arrays[key]
        part = load_npz(path, self.max_bytes)
        keys = present_arrays(self.arrays, part)
        check_chunk(path, part, keys, None)
        n = len(self.probe()["labels"])
        arrays = {k: part[k].astype(np.float32) for k in keys}
        for k, v in arrays.items():
            if v.shape[1] != n:
                raise RunDamaged(f"{path}: damaged ('{k}' has {v.shape[1]} points, not {n})")
        self._arrays[key] = arrays
        while len(self._arrays) > self.KEEP:
            self._arrays.pop(next(iter(self._arrays)))
        return arrays


def class_names(rec: Recording, cfg) -> list[str]:
    """The display names of a recording's classes: those its probe came with, else its
    family's for the run's dataset."""
    return rec.classes if rec.classes is not None else families.of(cfg).class_names(cfg)


def probe_labels(folder: Path) -> np.ndarray:
    """The probe's labels alone (not its images), from probe.npz."""
    probe = load_npz(Path(folder) / "probe.npz", keys=("labels",))
    if "labels" not in probe:
        raise RunDamaged(f"{folder}/probe.npz: damaged (no labels)")
    return np.asarray(probe["labels"], dtype=np.int64)


def probe_classes(folder: Path) -> list[str] | None:
    """The class names the probe was written with (None for runs whose dataset names them)."""
    if not (Path(folder) / "probe.npz").is_file():
        return None
    probe = load_npz(Path(folder) / "probe.npz", keys=("classes",))
    return [str(c) for c in probe["classes"]] if "classes" in probe else None


def run_class_names(folder: Path, cfg) -> list[str]:
    """A run's class names without reading its recording: its probe's (in `folder`), else
    its family's for its dataset."""
    names = probe_classes(folder)
    return names if names is not None else families.of(cfg).class_names(cfg)


def load_images(folder: Path, positions: np.ndarray, max_bytes: int | None = None):
    """The probe images at `positions` as stored with the probe, (n, C, H, W) uint8, or
    None when the probe holds no images (nnlab loads them from the run's dataset)."""
    probe = load_npz(Path(folder) / "probe.npz", max_bytes, ("images", "labels"))
    if "images" not in probe:
        return None
    images = probe["images"]
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(probe["labels"]):
        raise RunDamaged(f"{folder}/probe.npz: damaged (images of shape {images.shape})")
    return images[positions]
