"""2-D views of a wide layer over training (nnlab.analysis.projection, nnlab project):
coherent frames that stay faithful, kept in the run until the recording changes, and bad
input refused in one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nnlab.analysis import projection as P
from nnlab.helpers import files
from nnlab.store import folders, record

HAVE = {
    m: importlib.util.find_spec(s) is not None for m, s in (("tsne", "openTSNE"), ("umap", "umap"))
}
needs = {
    m: pytest.mark.skipif(not ok, reason=f"{m}: pip install 'nnlab[projections]'")
    for m, ok in HAVE.items()
}


def moving_clusters(frames=8, n=300, dims=10, seed=0) -> list[np.ndarray]:
    """Ten clusters in `dims` dimensions drifting slowly; each point keeps its offset."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    centres, drift = rng.normal(size=(10, dims)) * 4, rng.normal(size=(10, dims))
    offsets = rng.normal(size=(n, dims))
    return [
        centres[labels] + 0.05 * t * drift[labels] + offsets + 0.05 * rng.normal(size=(n, dims))
        for t in range(frames)
    ]


def test_coherence_and_neighbours_measure_what_they_say():
    still = np.zeros((3, 4, 2)) + np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    assert P.coherence(still) == 0
    moved = still.copy()
    moved[1:] += 0.5  # every point moves 0.5 from frame 0 to frame 1, then stays
    assert P.coherence(moved) == pytest.approx(np.median([0.5 * 2**0.5 / (0.5 * 2**0.5), 0]))
    x = np.random.default_rng(0).normal(size=(50, 5))
    assert P.neighbour_preservation(x, x) == 1.0
    assert P.neighbour_preservation(x, x[::-1]) < 0.5  # a shuffled layout loses them


def test_pca_frames_share_one_basis_fitted_on_the_last():
    frames = moving_clusters(frames=3)
    coords = P.embed_frames(frames, "pca")
    from nnlab.analysis.density import pca_basis

    centre, basis, _ = pca_basis(frames[-1], 2)
    np.testing.assert_allclose(coords[0], (frames[0] - centre) @ basis.T, rtol=1e-5, atol=1e-5)


def _check_coherent_and_faithful(method: str, frames: list[np.ndarray]) -> None:
    continued = P.embed_frames(frames, method, seed=0)
    alone = np.stack([P.embed_alone(f, method, seed=i + 1) for i, f in enumerate(frames)])
    assert P.coherence(continued) * 5 <= P.coherence(alone)
    kept = P.neighbour_preservation(frames[-1], continued[-1])
    assert kept >= 0.9 * P.neighbour_preservation(frames[-1], alone[-1])


@needs["tsne"]
def test_tsne_frames_continue_from_the_last_and_stay_faithful():
    _check_coherent_and_faithful("tsne", moving_clusters())


@pytest.mark.slow
@needs["umap"]
def test_umap_frames_continue_from_the_last_and_stay_faithful():
    _check_coherent_and_faithful("umap", moving_clusters(frames=6))


def _recording(runs: Path, frames: list[np.ndarray]) -> folders.Run:
    """A run folder holding only a recording of `frames` (what project reads)."""
    run = folders.Run(runs, "rec")
    rec = record.Recorder(run.latents, ("act",), "float32")
    rec.write_probe(np.arange(len(frames[0])) % 10, np.arange(len(frames[0])), "test")
    for i, f in enumerate(frames):
        rec.add(i, float(i), f)
    rec.flush()
    return run


def test_coordinates_are_kept_until_the_recording_changes(tmp_path):
    run = _recording(tmp_path, moving_clusters(frames=4))
    rec = record.load_recording(run.latents, ("act",))
    first = P.project(run, rec, "pca", 100, 1, 0)
    assert first.coords.shape == (4, 100, 2) and first.path.is_file()
    mtime = first.path.stat().st_mtime_ns
    again = P.project(run, rec, "pca", 100, 1, 0)
    assert again.path.stat().st_mtime_ns == mtime  # read back, not recomputed
    np.testing.assert_array_equal(again.coords, first.coords)
    assert P.stored(run) is None  # PCA is not a kept t-SNE or UMAP
    recorder = record.Recorder(run.latents, ("act",), "float32")
    recorder.add(9, 9.0, moving_clusters(frames=5)[-1])
    recorder.flush()  # a new chunk: the signature changes
    rec = record.load_recording(run.latents, ("act",))
    fresh = P.project(run, rec, "pca", 100, 1, 0)
    assert fresh.coords.shape == (5, 100, 2)
    np.save(tmp_path / "x.npy", 0)  # a damaged file is recomputed, never trusted
    first.path.write_bytes(b"not an npz")
    assert P.project(run, rec, "pca", 100, 1, 0).coords.shape == (5, 100, 2)


@needs["tsne"]
def test_the_commands_draw_a_kept_projection(trained, nnlab, tmp_path):
    import shutil

    root, ids = trained
    runs = tmp_path / "runs"
    shutil.copytree(root / ids["wide"], runs / ids["wide"])  # nielsen: a 30-unit layer
    run_id = ids["wide"]
    r = nnlab("project", run_id, "--method=tsne", "--points=200")
    assert r.code == 0, r.err
    kept = Path(r.out.strip())
    assert kept.is_file() and kept.parent.name == "projections"
    mtime = kept.stat().st_mtime_ns
    again = nnlab("project", run_id, "--method=tsne", "--points=200")  # found, not redone
    assert again.out == r.out and kept.stat().st_mtime_ns == mtime
    r = nnlab("animate", run_id, "--projection=tsne")
    assert r.code == 0 and r.out.split()[0].endswith("-scatter-tsne.gif"), r.err
    r = nnlab("report", run_id)  # the kept t-SNE is drawn
    page = Path(r.out.strip()).read_text()
    assert '"axis_labels":["t-SNE1","t-SNE2"]' in page.replace(" ", "")
    r = nnlab("report", run_id, "--projection=pca")
    assert '"axis_labels":["PCA1","PCA2"]' in Path(r.out.strip()).read_text().replace(" ", "")


def test_bad_input_is_one_line_and_exit_2(trained, nnlab, tmp_path, monkeypatch):
    import shutil

    root, ids = trained
    runs = tmp_path / "runs"
    for key in ("wide", "vae"):
        shutil.copytree(root / ids[key], runs / ids[key])
    for args, why in (
        (("--method=tnse",), "--method=tnse: choose from pca, tsne, umap (did you mean 'tsne'?)"),
        (("--method=pca", "--points=5"), "--points=5: choose 10 to 20,000"),
        (("--method=pca", "--points=30000"), "--points=30000: choose 10 to 20,000"),
        (("--method=pca", "--every=0"), "--every=0"),
    ):
        r = nnlab("project", ids["wide"], *args)
        assert r.code == 2 and why in r.err and r.err.count("\n") == 1, (args, r.err)
    real = importlib.util.find_spec
    with monkeypatch.context() as m:  # openTSNE not installed
        m.setattr(
            importlib.util, "find_spec", lambda n, *a: None if n == "openTSNE" else real(n, *a)
        )
        r = nnlab("project", ids["wide"], "--method=tsne")
        assert r.code == 2 and "pip install 'nnlab[projections]'" in r.err
        r = nnlab("animate", ids["wide"], "--projection=tsne")
        assert r.code == 2 and "openTSNE" in r.err
    if HAVE["tsne"]:  # a 2-D VAE may be embedded, with a warning that it is 2-D already
        r = nnlab("project", ids["vae"], "--method=tsne", "--points=50", "--every=10")
        assert r.code == 0 and "2-D already" in r.err, r.err


def test_forged_coordinates_are_never_drawn(tmp_path):
    """#37 item 15: kept coordinates are sealed as the latent-metrics cache is (files.seal);
    a file whose coordinates were changed under its key is computed again."""
    run = _recording(tmp_path, moving_clusters(frames=3))
    rec = record.load_recording(run.latents, ("act",))
    first = P.project(run, rec, "pca", 100, 1, 0)
    with np.load(first.path, allow_pickle=False) as z:
        kept = {k: z[k] for k in z.files}
    lattice = np.zeros_like(kept["coords"]) + 3e38  # a forged picture, under the same key
    files.save_npz(first.path, **{**kept, "coords": lattice})
    again = P.project(run, rec, "pca", 100, 1, 0)
    np.testing.assert_array_equal(again.coords, first.coords)
    with np.load(first.path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["coords"], first.coords)  # written again, whole
