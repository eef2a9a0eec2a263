"""2-D views of a wide recorded layer over training: PCA, t-SNE (openTSNE) and UMAP
(umap-learn), each frame continuing from the previous frame's layout so that what moves in
an animation is the network, not the algorithm.

Method. A class-stratified subsample of the probe (the same points in every frame) is
embedded at the chosen snapshots. PCA is fitted once, on the last snapshot, and every
snapshot is projected onto it (as `animate` does for wide layers). t-SNE: the first frame
is a full t-SNE from its PCA (the recommended initialisation, rescaled to std 1e-4) with
early exaggeration; each later frame recomputes the affinities of that snapshot and starts
the optimisation from the previous frame's coordinates, without exaggeration, so the
layout (and its scale) carries over and only what changed in the layer moves. UMAP: the
first frame from its PCA, each later one initialised with the previous frame's
coordinates and fewer epochs, then mapped back to the previous frame's centre and scale
(UMAP rescales an initialisation into a 10-unit box).

The coordinates are kept in <run>/projections/ with the recording's signature and the
parameters, and read back while both are unchanged.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnlab.analysis import cache
from nnlab.analysis.density import pca_basis
from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError, RunError
from nnlab.store import folders, record

METHODS = ("pca", "tsne", "umap")
NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
EXTRA = "projections"  # pip install 'nnlab[projections]': openTSNE and umap-learn
POINTS_RANGE = (10, 20000)
DEFAULT_POINTS = 2000
MAX_FRAMES = 100  # without --every, snapshots are thinned to at most this many frames


@dataclass(frozen=True)
class Params:
    """The parameters of each method (stated in the README, kept with the coordinates)."""

    perplexity: float = 30.0
    tsne_exaggerated: int = 250  # first frame: iterations with early exaggeration 12
    tsne_first: int = 500  # then these without
    tsne_per_frame: int = 100  # each later frame, from the previous layout
    umap_neighbors: int = 15
    umap_first: int = 500  # epochs of the first frame
    umap_per_frame: int = 100  # epochs of each later frame
    umap_rate: float = 0.25  # the learning rate of each later frame (UMAP's own: 1)


def require(method: str) -> None:
    """Refuse an unknown method, or one whose library is not installed, in one line."""
    if method not in METHODS:
        from nnlab.helpers.errors import did_you_mean

        raise NnlabError(
            f"--method={method}: choose pca, tsne or umap{did_you_mean(str(method), METHODS)}"
        )
    module = {"tsne": "openTSNE", "umap": "umap"}.get(method)
    if module is None:
        return
    import importlib.util

    if importlib.util.find_spec(module) is None:
        package = {"tsne": "openTSNE", "umap": "umap-learn"}[method]
        raise NnlabError(
            f"--method={method} needs {package}: pip install 'nnlab[{EXTRA}]' (or {package})"
        )


def embed_frames(
    frames: list[np.ndarray],
    method: str,
    seed: int = 0,
    params: Params = Params(),
    on_frame: Callable[[], None] | None = None,
) -> np.ndarray:
    """2-D coordinates (F, n, 2) of each frame's points (n, D), each frame continuing from
    the last (PCA: one basis, fitted on the last frame)."""
    require(method)
    if method == "pca":
        centre, basis, _ = pca_basis(frames[-1], 2)
        out = np.stack([(f - centre) @ basis.T for f in frames]).astype(np.float32)
        if on_frame:
            for _ in frames:
                on_frame()
        return out
    out, previous = [], None
    for f in frames:
        previous = _frame(np.asarray(f, dtype=np.float64), method, seed, params, previous)
        out.append(previous)
        if on_frame:
            on_frame()
    return np.stack(out).astype(np.float32)


def embed_alone(x: np.ndarray, method: str, seed: int, params: Params = Params()) -> np.ndarray:
    """One frame embedded on its own, from a random start of this seed (the flickering
    baseline: what running the method independently per frame gives)."""
    require(method)
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(len(x), 2)) * 1e-4
    return _frame(np.asarray(x, dtype=np.float64), method, seed, params, None, start)


def _frame(x, method, seed, params: Params, previous, start=None) -> np.ndarray:
    """One frame: from `previous` coordinates when given, else from scratch (`start`, or
    the frame's PCA)."""
    x = x + 0.0  # a writable float64 copy
    if method == "tsne":
        return _tsne(x, seed, params, previous, start)
    return _umap(x, seed, params, previous, start)


def _tsne(x, seed, params: Params, previous, start) -> np.ndarray:
    from openTSNE import TSNEEmbedding, affinity, initialization

    perplexity = min(params.perplexity, (len(x) - 1) / 3)  # openTSNE needs 3 * perplexity < n
    jobs = os.cpu_count() or 1  # its gradients on every core: 1.6x faster on two
    aff = affinity.PerplexityBasedNN(
        x, perplexity=perplexity, method="exact", random_state=seed, n_jobs=jobs
    )
    kw = {"random_state": seed, "n_jobs": jobs, "negative_gradient_method": "bh"}
    if previous is not None:
        emb = TSNEEmbedding(previous.astype(np.float64), aff, **kw)
        return np.asarray(emb.optimize(params.tsne_per_frame, momentum=0.8), dtype=np.float64)
    init = start if start is not None else initialization.pca(x, random_state=seed)
    emb = TSNEEmbedding(np.asarray(init, dtype=np.float64), aff, **kw)
    emb = emb.optimize(params.tsne_exaggerated, exaggeration=12, momentum=0.5)
    return np.asarray(emb.optimize(params.tsne_first, momentum=0.8), dtype=np.float64)


def _umap(x, seed, params: Params, previous, start) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # its numba and n_jobs notices are not the user's concern
        warnings.simplefilter("ignore")
        import umap

        neighbours = min(params.umap_neighbors, len(x) - 1)
        if previous is None:
            init = start if start is not None else "pca"
            reducer = umap.UMAP(
                n_neighbors=neighbours, init=init, n_epochs=params.umap_first, random_state=seed
            )
            return reducer.fit_transform(x).astype(np.float64)
        reducer = umap.UMAP(
            n_neighbors=neighbours,
            init=previous,
            n_epochs=params.umap_per_frame,
            learning_rate=params.umap_rate,
            random_state=seed,
        )
        y = reducer.fit_transform(x).astype(np.float64)
    # back to the previous frame's centre and scale (UMAP rescaled the start into a box)
    scale = previous.std() / max(y.std(), 1e-12)
    return (y - y.mean(0)) * scale + previous.mean(0)


# ------------------------------------------------------------------ measures


def coherence(coords: np.ndarray) -> float:
    """Median over consecutive frames of (median displacement of a point) / (the frame's
    spread: median distance to its centroid); small is coherent."""
    ratios = []
    for a, b in zip(coords[:-1], coords[1:], strict=True):
        spread = np.median(np.linalg.norm(b - b.mean(0), axis=1))
        ratios.append(np.median(np.linalg.norm(b - a, axis=1)) / max(spread, 1e-12))
    return float(np.median(ratios))


def neighbour_preservation(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """The mean fraction of each point's k nearest neighbours in x that are among its k
    nearest in y (exact, by full distance matrices)."""

    def knn(a):
        a = np.asarray(a, dtype=np.float64)
        sq = (a * a).sum(1)
        d = sq[:, None] + sq[None, :] - 2 * a @ a.T
        np.fill_diagonal(d, np.inf)
        return np.argpartition(d, k, axis=1)[:, :k]

    a, b = knn(x), knn(y)
    return float(np.mean([len(np.intersect1d(p, q)) / k for p, q in zip(a, b, strict=True)]))


# ------------------------------------------------------------------ stored in the run


@dataclass
class Projection:
    """A run's recording embedded in 2-D: the frames' snapshots and the points drawn."""

    method: str
    coords: np.ndarray  # (F, n, 2)
    snapshots: np.ndarray  # (F,) indices into the recording
    positions: np.ndarray  # (n,) indices into the probe
    path: Path


def frame_snapshots(n: int, every: int) -> np.ndarray:
    """Snapshots to embed: every `every`-th, always ending with the last."""
    idx = list(range(0, n, every))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return np.array(idx, dtype=np.int64)


def project(
    run: folders.Run,
    rec: record.Recording,
    method: str,
    points: int,
    every: int,
    seed: int,
    bar: Callable | None = None,
    params: Params = Params(),
    layer: str = "",
) -> Projection:
    """The projection of a run's recording (layer: one of the layers --record_layers kept,
    whose recording it then follows), read back from <run>/projections/ while the
    recording and the parameters are unchanged, else computed (inside bar(frames), a
    progress bar with an advance() per frame) and stored atomically."""
    plan = _Plan(run, rec.labels, len(rec), method, points, every, seed, params, layer)
    hit = plan.read()
    if hit is not None:
        return hit
    snapshots, positions, path = plan.snapshots, plan.positions, plan.path
    frames = [rec.points[s][positions] for s in snapshots]
    if bar is None:
        coords = embed_frames(frames, method, seed, params)
    else:
        with bar(len(frames)) as progress:
            coords = embed_frames(frames, method, seed, params, progress.advance)
    path.parent.mkdir(exist_ok=True)
    coords = np.asarray(coords, dtype=np.float32)
    files.save_npz(
        path,
        coords=coords,
        snapshots=snapshots,
        positions=positions,
        key=np.array(json.dumps(plan.key, sort_keys=True)),
        checksum=np.array(files.seal(plan.key, coords)),  # a changed coordinate: recomputed
    )
    return Projection(method, coords, snapshots, positions, path)


def kept(
    run: folders.Run,
    labels: np.ndarray,
    snapshots: int,
    method: str,
    points: int,
    every: int,
    seed: int,
    params: Params = Params(),
) -> Projection | None:
    """The projection kept in the run for these arguments while the recording (its
    `labels` and number of `snapshots`, read without the arrays) is unchanged, else None."""
    return _Plan(run, labels, snapshots, method, points, every, seed, params).read()


class _Plan:
    """What a projection of these arguments embeds (snapshots, probe positions), where it is
    kept, and the key its file must hold: the recording's signature and the arguments."""

    def __init__(self, run, labels, snapshots: int, method, points, every, seed, params, layer=""):
        require(method)
        lo, hi = POINTS_RANGE
        if not (isinstance(points, int) and not isinstance(points, bool) and lo <= points <= hi):
            raise NnlabError(f"--points={points}: choose {lo:,} to {hi:,} probe points")
        points = min(points, len(labels))  # the whole probe: one file, however asked
        self.method = method
        self.positions = np.sort(record.probe_indices(labels, points, seed))
        self.snapshots = frame_snapshots(snapshots, every)
        if layer and not LAYER_NAME.fullmatch(layer):
            raise NnlabError(f"--layer={layer[:80]!r}: not a layer name nnlab keeps files for")
        named = f"{method}-{layer}" if layer else method  # the recorded layer's: no name
        self.path = run.projections / f"{named}-{points}-every{every}.npz"
        self.key = {
            "signature": cache.signature(run.layers if layer else run.latents),
            "method": method,
            "points": int(points),
            "every": int(every),
            "seed": int(seed),
            "params": asdict(params),
            **({"layer": layer} if layer else {}),
        }

    def read(self) -> Projection | None:
        """The kept projection, if its file holds exactly this key and shape."""
        hit = _read(self.path, self.key, len(self.snapshots), len(self.positions))
        if hit is None:
            return None
        return Projection(self.method, hit, self.snapshots, self.positions, self.path)


LAYER_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}")  # in a file name: h1, conv2, body.1


def stored(run: folders.Run) -> tuple[str, int, int] | None:
    """(method, points, every) of the newest t-SNE or UMAP projection kept in the run that
    still matches its recording, or None."""
    folder = run.projections
    if not folder.is_dir():
        return None
    sig = cache.signature(run.latents)
    found = []
    for p in folder.glob("*.npz"):
        try:
            with np.load(p, allow_pickle=False) as z:
                key = json.loads(str(z["key"])) if "key" in z.files else {}
        except Exception:
            continue
        if key.get("signature") == sig and key.get("method") in ("tsne", "umap"):
            found.append((p.stat().st_mtime_ns, key["method"], key["points"], key["every"]))
    return tuple(max(found)[1:]) if found else None


def _read(path: Path, key: dict, frames: int, n: int) -> np.ndarray | None:
    """Stored coordinates for exactly this key and shape, else None (recomputed)."""
    if not path.is_file():
        return None
    try:
        z = files.load_npz(path, max_bytes=8 * frames * n * 2 + 2**20)
    except RunError:
        return None
    if "key" not in z or str(z["key"]) != json.dumps(key, sort_keys=True):
        return None
    coords = z.get("coords")
    ok = (
        coords is not None
        and coords.shape == (frames, n, 2)
        and coords.dtype == np.float32
        and "checksum" in z
        and str(z["checksum"]) == files.seal(key, coords)  # sealed as written
    )
    return coords if ok else None
