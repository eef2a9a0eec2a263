"""Readers of the image file formats nnlab trains on, each to (N, C, H, W) uint8 images
and (N,) int64 labels: IDX (MNIST and its kin), CIFAR's binary and python releases, SVHN's
MATLAB files, a folder of PNG/JPEG images, and a user's .npz.

Nothing here unpickles what it is handed: CIFAR's python batches go through an unpickler
that knows only the numpy globals an array needs, .npz files load with allow_pickle=False,
and MATLAB files are parsed by scipy (no pickle in that format).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nnlab.helpers.errors import NnlabError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CIFAR_PIXELS = 3 * 32 * 32
# The only globals a pickled numpy array needs (numpy 1 and 2 spell the module two ways),
# and the codec call with which protocol 2 writes Python 3 bytes (torch's weights_only
# unpickler allows it too: it encodes text, it cannot run code).
NUMPY_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def regular_file(path: Path, where: str = "") -> None:
    """Refuse, in one line, what is not a regular file to read: missing, a loop of links, a
    folder, a FIFO (a reader would wait for ever) or a device (/dev/zero never ends). A
    link to a regular file is read as that file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NnlabError(f"{where or path}: no such file") from None
    except OSError as e:  # ELOOP: too many levels of symbolic links
        raise NnlabError(f"{where or path}: cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise NnlabError(f"{where or path}: not a regular file (a folder, FIFO or device)")


def read_idx(path: Path, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or .gz) of unsigned bytes into a numpy array: its header
    first, then exactly the bytes it declares (never more: a gzip bomb stops there), and
    nothing when the header claims more than max_bytes."""
    regular_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise NnlabError(f"{path} is not an IDX file of unsigned bytes")
            dims = f.read(4 * head[3])
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(head[3]))
            size = int(np.prod(shape)) if len(dims) == 4 * head[3] else -1
            if max_bytes is not None and size > max_bytes:
                raise NnlabError(
                    f"{path}: its IDX header claims {shape} ({size:,} bytes), more than this "
                    f"dataset holds ({max_bytes:,})"
                )
            data = f.read(size + 1) if size >= 0 else b""
    except (OSError, EOFError, zlib.error) as e:
        raise NnlabError(f"cannot read {path}: {e}") from None
    if size < 0 or len(data) != size:
        raise NnlabError(f"{path}: size does not match its IDX header {shape}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def read_cifar_binary(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR's binary release: records of `label_bytes` label bytes (CIFAR-100: coarse,
    fine; the last is used) then 3,072 pixel bytes (R, G, B planes of 32x32)."""
    raw = _read_bytes(path)
    record = label_bytes + CIFAR_PIXELS
    if len(raw) % record:
        raise NnlabError(f"{path}: not a CIFAR binary batch ({len(raw)} bytes)")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32)
    return np.ascontiguousarray(images), rows[:, label_bytes - 1].astype(np.int64)


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers and nothing else: any
    other global (os.system, builtins.eval...) is refused before it is looked up."""

    def find_class(self, module: str, name: str):
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")


def unpickle_arrays(path: Path) -> dict:
    """A CIFAR python batch (a pickled dict of arrays, lists and bytes) through the
    restricted unpickler; keys are returned as text."""
    raw = _read_bytes(path)
    try:
        obj = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # UnpicklingError, EOFError, a refused global...
        raise NnlabError(f"{path}: not a CIFAR python batch ({e})") from None
    if not isinstance(obj, dict):
        raise NnlabError(f"{path}: not a CIFAR python batch (holds {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_cifar_python(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one CIFAR python batch (label_key: labels or fine_labels)."""
    batch = unpickle_arrays(path)
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or labels is None:
        raise NnlabError(f"{path}: no 'data' array and '{label_key}' in this CIFAR batch")
    try:  # a list of whole numbers, nothing else (10**30, text, nested lists: damage)
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels of {labels.dtype} {labels.shape}")
        labels = labels.astype(np.int64)
    except (ValueError, TypeError, OverflowError) as e:
        raise NnlabError(f"{path}: '{label_key}' is not a list of whole numbers ({e})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape != (len(labels), CIFAR_PIXELS):
        raise NnlabError(f"{path}: 'data' is {data.dtype} {data.shape}, not N x 3072 bytes")
    return data.reshape(-1, 3, 32, 32), labels


def check_mat_size(path: Path, max_bytes: int) -> None:
    """Refuse a MATLAB v5 file whose data elements, inflated, would exceed max_bytes: each
    compressed element is inflated in bounded steps and dropped (a zip bomb stops at the
    bound), before scipy reads the file and inflates each variable whole."""
    with open(path, "rb") as f:
        if len(f.read(128)) < 128:  # the text header and the version
            raise NnlabError(f"{path}: not a MATLAB v5 file")
        total = 0
        while True:
            tag = f.read(8)
            if len(tag) < 8:
                return
            kind, size = int.from_bytes(tag[:4], "little"), int.from_bytes(tag[4:], "little")
            if kind != 15:  # stored as it is: its size is what it holds
                total += size
                f.seek(size + (-size % 8), os.SEEK_CUR)
            else:  # miCOMPRESSED: inflate in steps, never more than the bound allows
                inflate, left = zlib.decompressobj(), size
                while left:
                    chunk = f.read(min(left, 2**20))
                    if not chunk:
                        break
                    left -= len(chunk)
                    while chunk:
                        total += len(inflate.decompress(chunk, 2**22))
                        chunk = inflate.unconsumed_tail
                        if total > max_bytes:
                            break
                    if total > max_bytes:
                        break
            if total > max_bytes:
                raise NnlabError(
                    f"{path}: holds more than {max_bytes:,} bytes of data, more than this "
                    "dataset has"
                )


def read_svhn_mat(path: Path, max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's cropped-digit MATLAB file: X (32, 32, 3, N), y in 1..10 with 10 for digit 0."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise NnlabError(
            "reading SVHN's .mat files needs scipy: "
            'pip install -e ".[svhn]" (or pip install scipy)'
        ) from None
    regular_file(path)
    if max_bytes is not None:
        try:
            check_mat_size(path, max_bytes)
        except (OSError, zlib.error) as e:
            raise NnlabError(f"{path}: not a readable SVHN .mat file ({e})") from None
    try:
        mat = loadmat(str(path))
    except Exception as e:
        raise NnlabError(f"{path}: not a readable SVHN .mat file ({e})") from None
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)))
    return images.astype(np.uint8), (mat["y"].reshape(-1).astype(np.int64) % 10)


def _read_bytes(path: Path) -> bytes:
    regular_file(path)
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise NnlabError(f"cannot read {path}: {e.strerror or e}") from None


# ------------------------------------------------------------------ a folder of images


def folder_classes(root: Path, where: str) -> list[str]:
    """The class folders of an ImageFolder-style folder, sorted (torchvision's order)."""
    if not root.is_dir():
        raise NnlabError(f"{where}: no such folder")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        found = f"only '{names[0]}'" if names else "none"
        raise NnlabError(
            f"{where}: a classifier needs at least two class folders (one sub-folder of "
            f"images per class), found {found}"
        )
    return names


def folder_files(root: Path, classes: list[str], where: str) -> tuple[list[Path], np.ndarray]:
    """Every image file under the class folders, and its class index."""
    files, labels = [], []
    for i, name in enumerate(classes):
        found = sorted(
            p
            for p in (root / name).rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not found:
            raise NnlabError(f"{where}/{name}: no PNG or JPEG images in this class folder")
        files += found
        labels += [i] * len(found)
    return files, np.array(labels, dtype=np.int64)


def image_header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode of an image file, read from its header alone."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except Exception as e:
        raise NnlabError(f"cannot read image {path} ({type(e).__name__}: {e})") from None


def _as_8bit(im):
    """A PIL image whose channels hold 0..255: a 16-bit or 32-bit integer grey (I;16, I)
    scaled from 0..65535 and a float grey (F) from 0..1, rounded, instead of PIL's
    conversion, which clips them at 255 (a 16-bit PNG came out 99.6% white)."""
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im, dtype=np.float64) * (255 / 65535)
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64) * 255
    else:
        return im
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def read_images(files: list[Path], channels: int, size: int) -> np.ndarray:
    """Decode image files to (N, channels, H, W) uint8; `size` > 0 resizes each to a
    size x size square (bilinear), else all must share one size (checked by the caller)."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    out = None
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                im = _as_8bit(im).convert(mode)
                if size:
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except Exception as e:  # truncated or corrupt files fail here, not at the header
            raise NnlabError(f"cannot read image {path} ({type(e).__name__}: {e})") from None
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        if out is None:
            out = np.empty((len(files), *a.shape), dtype=np.uint8)
        if a.shape != out.shape[1:]:
            raise NnlabError(f"image {path} is {a.shape[2]}x{a.shape[1]}, the others differ")
        out[i] = a
    return out if out is not None else np.zeros((0, channels, size, size), dtype=np.uint8)


# ------------------------------------------------------------------ a user's .npz


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each member's (shape, dtype) from its .npy header alone: nothing is decompressed
    beyond the header, so an archive claiming a huge array can be refused before loading."""
    out = {}
    regular_file(path, f"npz:{path}")
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                out[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    except FileNotFoundError:
        raise NnlabError(f"npz:{path}: no such file") from None
    except Exception as e:  # BadZipFile, a header numpy cannot parse, MemoryError...
        reason = str(e) or type(e).__name__
        raise NnlabError(f"npz:{path}: not a readable .npz archive ({reason})") from None
    return out


def read_npz_member(path: Path, key: str) -> np.ndarray:
    """One array of a user's .npz, never unpickled (an object array is refused)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise NnlabError(
                f"npz:{path}: array '{key}' holds Python objects (it would have to be "
                "unpickled); save plain numeric arrays"
            ) from None
        raise NnlabError(f"npz:{path}: array '{key}' cannot be read ({e})") from None
    except Exception as e:  # a MemoryError has no message: say what it is
        reason = str(e) or type(e).__name__
        raise NnlabError(f"npz:{path}: array '{key}' cannot be read ({reason})") from None
