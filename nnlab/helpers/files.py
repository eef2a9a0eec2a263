"""Files written atomically and read safely, and advisory locks on files.

Every write replaces its file atomically (temp file in the same directory, fsync,
os.replace), so a reader or a crash sees the old or the new version, never a mix.
Readers never unpickle: checkpoints load with torch.load(weights_only=True) after their
zip checksums are verified, arrays with np.load(allow_pickle=False).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from nnlab.helpers import testhooks
from nnlab.helpers.errors import RunDamaged, RunError

TMP_PREFIX = ".tmp-"  # temp files of interrupted writes start with this; resume removes them


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_mode() -> int:
    """0o666 less the umask: what open() would give a new file (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; on failure the old file is left untouched."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        testhooks.kill_in_write(path)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):  # name the file the user knows, not the temp file
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    _fsync_dir(path.parent)


def write_text(path: str | Path, text: str) -> None:
    """Replace a text file atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Replace a JSON file atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


TEXT_CEILING = 64 * 2**20  # meta.json, config.yaml: far above what nnlab writes


def read_text(path: str | Path, max_bytes: int = TEXT_CEILING) -> str:
    """A small text file of a run, refused (RunError) when larger than max_bytes."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise RunDamaged(f"{path}: damaged ({size:,} B; at most {max_bytes:,} expected)")
    return path.read_text("utf-8")


def read_json(path: str | Path) -> dict:
    """Read a JSON object, raising RunError naming the file when it is missing or damaged."""
    path = Path(path)
    try:
        obj = json.loads(read_text(path))
    except FileNotFoundError:
        raise RunDamaged(f"{path}: missing") from None
    except (OSError, ValueError, RecursionError) as e:  # bad JSON, 5,000-digit numbers, nesting
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise RunDamaged(f"{path}: damaged ({first})") from None
    if not isinstance(obj, dict):
        raise RunDamaged(f"{path}: damaged (not a JSON object)")
    return obj


def save_npz(path: str | Path, **arrays) -> None:
    """Write numpy arrays as one .npz atomically (no pickled objects)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes(path, buf.getvalue())


def check_npz(path: str | Path, max_bytes: int) -> None:
    """Refuse an .npz whose members claim more than max_bytes each, before reading any:
    the zip directory's sizes and every array header's shape are checked, so a small file
    declaring a huge array (or a deflate bomb) costs no memory and no time."""
    import zipfile

    import numpy as np

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > max_bytes:
                    raise RunDamaged(
                        f"{path}: damaged ({info.filename} claims {info.file_size:,} B)"
                    )
                with z.open(info) as f:
                    major, _ = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if major == 1
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > max_bytes:
                    raise RunDamaged(f"{path}: damaged ({info.filename} declares {shape})")
    except RunError:
        raise
    except FileNotFoundError:
        raise RunDamaged(f"{path}: missing") from None
    except Exception as e:  # zipfile, a bad header
        raise RunDamaged(f"{path}: damaged ({type(e).__name__}: {e})") from None


def load_npz(
    path: str | Path, max_bytes: int | None = None, keys: tuple[str, ...] | None = None
) -> dict:
    """Read an .npz with allow_pickle=False into a dict of arrays (only the members named
    in `keys` that it has, when given: the others are never decompressed); RunError if
    damaged, or if a member claims more than max_bytes (checked before anything is read)."""
    import numpy as np

    path = Path(path)
    if max_bytes is not None:
        check_npz(path, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if keys is None or k in keys}
    except FileNotFoundError:
        raise RunDamaged(f"{path}: missing") from None
    except Exception as e:  # zipfile, ValueError (pickled objects), EOFError...
        raise RunDamaged(f"{path}: damaged or unsafe ({type(e).__name__}: {e})") from None


def save_checkpoint(path: str | Path, obj: dict) -> None:
    """Write a checkpoint (tensors and plain values only) atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_checkpoint(
    path: str | Path,
    map_location="cpu",
    max_bytes: int | None = None,
    required: tuple[str, ...] = ("model",),
) -> dict:
    """Load a checkpoint with weights_only=True; never unpickles arbitrary objects; refuses
    one whose members claim more than max_bytes in all (before inflating them), or that
    lacks a `required` key."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunDamaged(f"{path}: checkpoint missing")
    verify_archive(path, max_bytes)
    try:
        with warnings.catch_warnings():  # torch's warnings would add lines to the one-line error
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunDamaged(f"{path}: cannot be loaded safely ({first[:200]})") from None
    if not isinstance(obj, dict) or any(k not in obj for k in required):
        raise RunDamaged(f"{path}: not an nnlab checkpoint")
    return obj


def verify_archive(path: Path, max_bytes: int | None = None) -> None:
    """Check every member's CRC-32, raising RunError if damaged: torch.load alone would
    accept flipped bits in tensor data and hand back silently wrong weights. With
    max_bytes, the members' declared sizes are checked first: nothing is inflated past it
    (zipfile stops at a member's declared size, so a deflate bomb cannot lie its way in)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            claimed = sum(info.file_size for info in z.infolist())
            if max_bytes is not None and claimed > max_bytes:
                raise RunError(
                    f"{path}: damaged (its members claim {claimed:,} B; this run's checkpoints "
                    f"hold at most {max_bytes:,})"
                )
            bad = z.testzip()
    except RunError:
        raise
    except Exception as e:  # every decoder's failure (zlib, encryption flags, methods...)
        raise RunDamaged(f"{path}: damaged (not a readable checkpoint archive: {e})") from None
    if bad is not None:
        raise RunDamaged(f"{path}: damaged (checksum mismatch in {bad})")


def seal(data: Any, *arrays) -> str:
    """The checksum nnlab seals what it keeps with (meta.json, the latent-metrics cache,
    kept projections): SHA-256 of `data` as canonical JSON (keys sorted, no spaces, ASCII),
    then of each array's dtype, shape and bytes. A file whose seal differs from its
    content was changed by someone else: its reader refuses it or computes it again."""
    import hashlib

    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    h = hashlib.sha256(text.encode())
    if arrays:
        import numpy as np
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"\n{a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- locks


class Lock:
    """An exclusive advisory lock on a file (flock), released when the process ends."""

    def __init__(self, path: Path, what: str):
        self.path = path
        self.what = what
        self.fd: int | None = None

    def acquire(self, info: dict) -> None:
        """Take the lock or raise RunError naming whoever holds it."""
        try:  # never through a link: a planted one would truncate a file outside the store
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise RunError(f"{self.path}: cannot be used as a lock ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise RunError(
                f"{self.what} is in use by another nnlab process ({_holder_text(holder)})"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as e:  # a full disk: give the lock back rather than leak it
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self.fd = fd

    def release(self) -> None:
        """Give the lock up."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _holder_text(raw: str) -> str:
    """What a lock file says of its holder, for a person: "pid 25504, since 14:03" (with
    the host when it is another machine, the date when it is not today)."""
    import datetime as dt
    import socket

    try:
        info = json.loads(raw)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return raw or "unknown"
    parts = []
    if isinstance(info.get("pid"), int):
        parts.append(f"pid {info['pid']}")
    host = info.get("host")
    if isinstance(host, str) and host != socket.gethostname():
        parts.append(f"on {host}")
    try:
        since = dt.datetime.fromisoformat(str(info.get("since")))
        same_day = since.date() == dt.datetime.now(since.tzinfo).date()
        parts.append(f"since {since:%H:%M}" if same_day else f"since {since:%Y-%m-%d %H:%M}")
    except ValueError:
        pass
    return ", ".join(parts) or raw


def is_locked(path: Path) -> bool:
    """True when another process holds the lock file at `path`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def file_key(path: str | Path) -> tuple:
    """A file's size, modification time and inode, () when it cannot be read: what tells a
    long-lived reader that the file changed (rewritten atomically, appended, removed)."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_size, st.st_mtime_ns, st.st_ino)
