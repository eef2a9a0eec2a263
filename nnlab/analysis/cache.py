"""The latent metrics of a run's recording, as `summary` shows them, cached in the run.

Computing them means reading the recording and measuring overlaps, a nearest-class-mean
classifier and (for a 2-D VAE) a grid integral: ~0.1 s for the last snapshot of a
10,000-image probe set and ~0.6 s for the start/middle/end trend. A 100-point sweep's table
would spend seconds on it every time. So the values are written once into
<run>/latent-metrics.json beside the recording's signature, and read back while the
signature still matches.

The signature is a sha256 over every file of the recording (probe.npz and the chunks):
name, size and modification time in nanoseconds, plus this nnlab's version (a newer nnlab
may measure differently). nnlab writes each recording file atomically (a new inode, a new
mtime), and a resume truncates or adds chunks, so any change nnlab makes changes the
signature; hashing the bytes themselves would cost as much as the computation it saves.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from nnlab.analysis import latent
from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.version import VERSION
from nnlab.store import folders, record

FORMAT = 2  # 2: sealed with a checksum of its content (format 1 caches are recomputed)
LAYERS = "layers"  # the kind of cached value that follows the recording of several layers


def signature(folder: Path) -> str:
    """The recording's signature: sha256 of each file's name, size and mtime (ns), and the
    nnlab version; '' when there is no recording."""
    if not folder.is_dir():
        return ""
    h = hashlib.sha256(f"nnlab {VERSION} format {FORMAT}\n".encode())
    with os.scandir(folder) as it:
        entries = sorted((e for e in it if e.name.endswith(".npz")), key=lambda e: e.name)
    for e in entries:
        st = e.stat(follow_symlinks=False)
        h.update(f"{e.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def last_metrics(run: folders.Run, arrays: tuple[str, ...], max_bytes: int | None = None) -> dict:
    """latent.snapshot_metrics of the recording's last snapshot, from the cache when the
    recording has not changed since it was written."""

    def compute() -> dict:
        return latent.snapshot_metrics(record.load_last(run.latents, arrays, max_bytes), 0)

    return _cached(run, "last", compute)


def last_of(run: folders.Run, cfg, meta: dict) -> dict:
    """last_metrics of a run whose config and meta.json are read: the arrays its family
    records, the recording's size ceiling from both."""
    from nnlab import families
    from nnlab.store import schema

    return last_metrics(run, families.of(cfg).arrays, schema.size_ceilings(cfg, meta)[1])


TREND = "trend-width"  # a new name: caches written before the width was kept lack it


def trend(run: folders.Run, arrays: tuple[str, ...], max_bytes: int | None = None) -> dict:
    """latent.trend of the whole recording (start, middle, end) and the recorded layer's
    width (overlaps say little beyond a few dimensions), cached likewise."""

    def compute() -> dict:
        rec = record.load_recording(run.latents, arrays, max_bytes)
        return {**latent.trend(rec), "width": int(rec.points.shape[2])}

    return _cached(run, TREND, compute)


def series(
    run: folders.Run, arrays: tuple[str, ...], max_bytes: int | None, max_points: int
) -> dict:
    """latent.series over the recording (at most max_points snapshots) as lists (NaN as
    None), cached likewise."""

    def compute() -> dict:
        rec = record.load_recording(run.latents, arrays, max_bytes)
        values = latent.series(rec, max_points)
        return {k: _finite_lists(v.tolist()) for k, v in values.items()}

    return _cached(run, f"series{max_points}", compute)


def _finite_lists(value):
    """Nested lists of numbers with NaN and infinities as None (strict JSON)."""
    if isinstance(value, list):
        return [_finite_lists(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cached(run: folders.Run, kind: str) -> dict | None:
    """The cached `kind` ("last" or TREND) while the recording is unchanged, else None:
    a caller that finds it needs neither the config nor the recording."""
    return _lookup(run, kind)[0]


def _lookup(run: folders.Run, kind: str) -> tuple[dict | None, str, dict]:
    """(the cached `kind` or None, the recording's signature now, the cache file's data)."""
    folder, path = _where(run, kind)
    sig = signature(folder)
    cache = _read(path)
    hit = cache.get(kind) if cache.get("signature") == sig else None
    return (hit if _valid(kind, hit) else None), sig, cache


def _where(run: folders.Run, kind: str) -> tuple[Path, Path]:
    # the measures of several layers follow their own recording, in their own file
    if kind == LAYERS:
        return run.layers, run.layers_cache_file
    return run.latents, run.cache_file


def layer_measures(run: folders.Run, cfg, meta) -> dict:
    """analysis.layers.measure of the run's recording of several layers, from the cache
    while that recording is unchanged (progress on stderr when computed); a run that
    recorded one layer is one line saying what to run."""
    from nnlab import families
    from nnlab.analysis import layers as measures
    from nnlab.helpers.console import stderr_console
    from nnlab.helpers.progress import CountProgress
    from nnlab.store import layers

    if not layers.several(run.layers):
        raise NnlabError(
            f"run {run.id} recorded one layer: train with --record_layers=all (every layer) "
            "to measure and compare several"
        )

    def compute() -> dict:
        ceiling = families.of(cfg).layers_ceiling(cfg, meta)
        rec = layers.load_layers(run.layers, run.latents, ceiling)
        nc_layer = families.of(cfg).collapse_layer(cfg)
        total = len(latent.series_indices(len(rec), measures.SERIES_POINTS))
        with CountProgress(stderr_console(), "measuring layers", total) as bar:
            return measures.measure(rec, nc_layer, on_step=lambda k, n: bar.advance())

    return _cached(run, LAYERS, compute)


def _cached(run: folders.Run, kind: str, compute) -> dict:
    """The cached value of `kind` if its signature matches, else compute() (then cached)."""
    hit, sig, cache = _lookup(run, kind)
    if hit is not None:
        return hit
    # Through JSON and back, so that a computed value and a cached one are the same data.
    value = json.loads(json.dumps(compute()))
    if cache.get("signature") != sig:
        cache = {"format": FORMAT, "signature": sig}
    cache[kind] = value
    # Computed from what was read: if the recording changed meanwhile, the signature taken
    # before reading no longer matches it and the next reader recomputes.
    try:
        files.write_json(_where(run, kind)[1], {**cache, "checksum": files.seal(cache)})
    except OSError:  # a read-only store still gets its numbers, just not cached
        pass
    return value


def _read(path: Path) -> dict:
    """The cache file, or {} when it is missing, damaged, or of another format."""
    if not path.is_file():
        return {}
    try:
        cache = files.read_json(path)
    except (NnlabError, OSError, ValueError):
        return {}
    if cache.get("format") != FORMAT:
        return {}
    sealed = {k: v for k, v in cache.items() if k != "checksum"}
    return sealed if cache.get("checksum") == files.seal(sealed) else {}  # changed: recompute


def _valid(kind: str, value) -> bool:
    """Whether a cached value has the shape nnlab writes: every number finite (or None), a
    snapshot's metrics with their step, a trend's three snapshots, a series' steps."""

    def numbers_ok(v) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and numbers_ok(x) for k, x in v.items())
        if isinstance(v, list):
            return all(numbers_ok(x) for x in v)
        if isinstance(v, float):
            return math.isfinite(v)
        return v is None or isinstance(v, (int, str))

    def number(x) -> bool:
        if x is None:
            return True
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def snapshot_ok(v) -> bool:
        if not (isinstance(v, dict) and isinstance(v.get("step"), int) and numbers_ok(v)):
            return False
        for m in latent.METRICS:  # each metric a number (a vector: a list of numbers)
            x = v.get(m.key)
            ok = isinstance(x, list) and all(map(number, x)) if m.vector else number(x)
            if m.key in v and not ok:
                return False
        return True

    if kind == "last":
        return snapshot_ok(value)
    if kind == TREND:
        parts = ("start", "middle", "end")
        width = value.get("width") if isinstance(value, dict) else None
        ok_width = isinstance(width, int) and not isinstance(width, bool) and width >= 1
        return ok_width and all(snapshot_ok(value.get(p)) for p in parts)
    if kind == LAYERS:
        return (
            isinstance(value, dict) and isinstance(value.get("names"), list) and numbers_ok(value)
        )
    return isinstance(value, dict) and isinstance(value.get("step"), list) and numbers_ok(value)
