"""Datasets as in-memory tensors: IDX files (torchvision layout or Debian's), or the bundled sample.

A whole split is one float tensor of shape (N, 784) in [0, 1] on the training device, and
batches are drawn by index from a seeded permutation: no per-item transforms, no workers.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from nnlab.helpers.errors import NnlabError

# dataset name -> torchvision class name (also the folder torchvision keeps it under)
TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
DEBIAN_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DOWNLOAD_TIMEOUT_S = 15
SAMPLE_TEST_PER_CLASS = 100  # mnist-sample: 400 train + 100 test images of each digit


@dataclass
class RawData:
    """The four uint8 arrays of a dataset and where they came from."""

    name: str
    train_images: np.ndarray  # (N, 28, 28) uint8
    train_labels: np.ndarray  # (N,) integer
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


@dataclass
class Splits:
    """Train, validation and test tensors on one device, pixels in [0, 1]."""

    name: str
    source: str
    train_x: object  # torch.Tensor (N, 784) float32
    train_y: object  # torch.Tensor (N,) int64
    train_index: np.ndarray  # positions of train_x rows in the original train split
    val_x: object
    val_y: object
    val_index: np.ndarray
    test_x: object
    test_y: object
    test_index: np.ndarray

    def split(self, name: str):
        """Return (x, y, original indices) of 'train', 'val' or 'test'."""
        if name not in ("train", "val", "test"):
            raise NnlabError(f"unknown split '{name}' (choose from: train, val, test)")
        return (
            getattr(self, f"{name}_x"),
            getattr(self, f"{name}_y"),
            getattr(self, f"{name}_index"),
        )


def default_data_dir() -> Path:
    """$NNLAB_DATA, or ~/.cache/nnlab/data."""
    env = os.environ.get("NNLAB_DATA")
    return Path(env) if env else Path.home() / ".cache" / "nnlab" / "data"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or .gz) of unsigned bytes into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise NnlabError(f"cannot read {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise NnlabError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise NnlabError(f"{path}: size does not match its IDX header {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_sample() -> RawData:
    """The bundled 5,000 MNIST digits, split stratified into 4,000 train and 1,000 test."""
    path = resources.files("nnlab") / "assets" / "mnist-5k.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    rng = np.random.default_rng(5000)  # fixed: the split never depends on a run's seed
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        members = np.flatnonzero(labels == c)
        test[rng.choice(members, SAMPLE_TEST_PER_CLASS, replace=False)] = True
    return RawData(
        "mnist-sample",
        images[~test],
        labels[~test].astype(np.int64),
        images[test],
        labels[test].astype(np.int64),
        "bundled sample",
    )


def _find_idx(name: str, data_dir: Path) -> tuple[str, Path] | None:
    """Return ('torchvision'|'idx', folder) where all four IDX files of `name` lie."""
    raw = data_dir / TORCHVISION[name] / "raw"
    if all((raw / f).is_file() for f in IDX_FILES):
        return "torchvision", raw
    folders = [raw, data_dir / TORCHVISION[name], data_dir / name]
    if name in DEBIAN_DIRS:
        folders.append(Path(DEBIAN_DIRS[name]))
    for folder in folders:
        if all((folder / (f + ".gz")).is_file() for f in IDX_FILES):
            return "idx", folder
    return None


def _load_torchvision(name: str, data_dir: Path) -> RawData:
    from torchvision import datasets

    cls = getattr(datasets, TORCHVISION[name])
    train = cls(str(data_dir), train=True, download=False)
    test = cls(str(data_dir), train=False, download=False)
    return RawData(
        name,
        train.data.numpy(),
        train.targets.numpy().astype(np.int64),
        test.data.numpy(),
        test.targets.numpy().astype(np.int64),
        str(Path(data_dir) / TORCHVISION[name] / "raw"),
    )


def _load_gz(name: str, folder: Path) -> RawData:
    arrays = [read_idx(folder / (f + ".gz")) for f in IDX_FILES]
    return RawData(
        name,
        arrays[0],
        arrays[1].astype(np.int64),
        arrays[2],
        arrays[3].astype(np.int64),
        str(folder),
    )


def _try_download(name: str, data_dir: Path) -> bool:
    """Let torchvision fetch the dataset, bounded in time; False when it cannot."""
    if os.environ.get("NNLAB_OFFLINE"):
        return False
    from torchvision import datasets

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # offline machines must not hang here
    try:
        getattr(datasets, TORCHVISION[name])(str(data_dir), train=True, download=True)
        getattr(datasets, TORCHVISION[name])(str(data_dir), train=False, download=True)
        return True
    except Exception:
        return False
    finally:
        socket.setdefaulttimeout(old)


def load_raw(name: str, data_dir: str | Path | None = None, *, warn=None) -> RawData:
    """Find, or download, dataset `name`; mnist falls back to the bundled sample with a warning."""
    if name == "mnist-sample":
        return load_sample()
    if name not in TORCHVISION:
        raise NnlabError(f"unknown dataset '{name}'")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    found = _find_idx(name, data_dir)
    if found is None and _try_download(name, data_dir):
        found = _find_idx(name, data_dir)
    if found is not None:
        kind, folder = found
        return (
            _load_torchvision(name, data_dir) if kind == "torchvision" else _load_gz(name, folder)
        )
    looked = [str(data_dir / TORCHVISION[name] / "raw"), str(data_dir / name)]
    looked += [DEBIAN_DIRS[name]] if name in DEBIAN_DIRS else []
    if name == "mnist":
        (warn or _stderr)(
            "warning: MNIST not found in "
            + ", ".join(looked)
            + " and could not be downloaded; training on the bundled mnist-sample "
            "(5,000 digits) instead. For full MNIST put the four IDX files in "
            f"{data_dir / 'MNIST' / 'raw'} or run once with network access."
        )
        return load_sample()
    hint = " (apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
    raise NnlabError(
        f"dataset '{name}' not found in {', '.join(looked)} and could not be downloaded{hint}"
    )


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def split(raw: RawData, val_fraction: float, seed: int, device="cpu") -> Splits:
    """Hold out a seeded validation split and move every split to `device` as float tensors."""
    import torch

    n = len(raw.train_labels)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    val_index, train_index = np.sort(order[:n_val]), np.sort(order[n_val:])
    test_index = np.arange(len(raw.test_labels))

    def tensors(images, labels, index):
        pixels = int(np.prod(images.shape[1:]))  # explicit: an empty split has no -1 to infer
        x = torch.from_numpy(np.ascontiguousarray(images[index].reshape(len(index), pixels)))
        x = x.to(device=device, dtype=torch.float32).div_(255.0)
        return x, torch.from_numpy(labels[index]).to(device)

    tx, ty = tensors(raw.train_images, raw.train_labels, train_index)
    vx, vy = tensors(raw.train_images, raw.train_labels, val_index)
    sx, sy = tensors(raw.test_images, raw.test_labels, test_index)
    return Splits(raw.name, raw.source, tx, ty, train_index, vx, vy, val_index, sx, sy, test_index)


def load(
    name: str,
    data_dir: str | Path | None,
    val_fraction: float,
    seed: int,
    device="cpu",
    *,
    warn=None,
) -> Splits:
    """Load dataset `name` and return its splits as tensors on `device`."""
    return split(load_raw(name, data_dir, warn=warn), val_fraction, seed, device)


def load_for(cfg, device="cpu", *, warn=None) -> Splits:
    """The splits a run's config trains on: its dataset and data folder, split by its
    validation share and seed (the same splits in every command that reads the run)."""
    return load(cfg.dataset, cfg.data_dir or None, cfg.val_fraction, cfg.seed, device, warn=warn)
