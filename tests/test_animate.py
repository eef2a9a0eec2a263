"""nnlab animate: GIFs of the recorded latent space, frame alignment, errors."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from nnlab import record, store
from nnlab.render import animate as anim
from tests.conftest import FAST


def gif_frames(path):
    return iio.imread(path, index=None)


def test_vae_density_gif_one_frame_per_snapshot(nnlab, trained):
    root, runs = trained
    r = nnlab("animate", runs["vae"], f"--runs_dir={root}")
    assert r.code == 0, r.err
    gif, png = r.out.split()
    frames = gif_frames(gif)
    assert frames.shape[0] == 7  # steps 0, 20, ..., 100, 113
    assert frames.shape[1:] == (650, 560, 3)
    assert not np.array_equal(frames[0], frames[-1])
    assert iio.imread(png).shape[:2] == (650, 560)
    assert gif.endswith("media/latents-density.gif")
    # the page stays white (the palette keeps pure white)
    assert (frames[-1][5, 5] == 255).all()


def test_compare_two_runs_side_by_side(nnlab, trained):
    root, runs = trained
    r = nnlab(
        "animate", runs["vae"], f"--compare={runs['vae10']}", f"--runs_dir={root}", "--every=2"
    )
    assert r.code == 0, r.err
    frames = gif_frames(r.out.split()[0])
    assert frames.shape[0] == 4 and frames.shape[2] == 1120  # two panels; frames 0,2,4,6
    store_run = store.open_run(runs["vae"], root)
    cfgs = [store_run.config(), store.open_run(runs["vae10"], root).config()]
    assert anim.differing_labels(cfgs) == ["β = 1", "β = 10"]


def test_latent3_rotating_cube_and_pca(nnlab, trained, tmp_path):
    root, runs = trained
    out = tmp_path / "cube.gif"
    r = nnlab("animate", runs["l3"], f"--runs_dir={root}", f"--out={out}", "--fps=5")
    assert r.code == 0, r.err
    assert r.out.split() == [str(out), str(tmp_path / "cube.png")]
    src = anim.load_source(runs["l3"], root, "auto")
    assert src.kind == "scatter3d"
    frames = gif_frames(out)
    assert frames.shape[0] == len(src.rec) and not np.array_equal(frames[1], frames[2])
    wide = anim.load_source(runs["wide"], root, "auto")
    assert wide.kind == "scatter" and wide.points.shape[2] == 2 and "PC1" in wide.axis_labels[0]
    assert nnlab("animate", runs["wide"], f"--runs_dir={root}", "--classes=0,4,9").code == 0


@pytest.mark.parametrize(
    "key,args,needle",
    [
        ("off", [], "no latent recording"),
        ("l3", ["--kind=density"], "needs a VAE with a 2-D latent"),
        ("vae", ["--classes=12"], "class numbers run from 0 to 9"),
        ("vae", ["--kind=contour"], "choose from auto, density, scatter"),
        ("vae", ["--every=0"], "--every"),
        ("vae", ["--out=x.mp4"], "ending in .gif"),
        ("vae", ["--compare=nope-1"], "no run 'nope-1'"),
    ],
)
def test_animate_errors(nnlab, trained, key, args, needle):
    root, runs = trained
    r = nnlab("animate", runs[key], f"--runs_dir={root}", *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_align_by_fraction_when_lengths_differ():
    def src(steps):
        r = record.Recording(
            "vae", np.array(steps), np.zeros(len(steps)), np.zeros(1, int), np.zeros(1, int), "test"
        )
        return anim.Source(None, None, r, "density")

    rows = anim.align([src([0, 10, 20, 30, 40]), src([0, 100, 200])], every=1)
    assert rows == [[0, 0], [1, 0], [2, 1], [3, 2], [4, 2]] or rows[0] == [0, 0]
    assert rows[-1] == [4, 2] and len(rows) == 5
    same = anim.align([src([0, 4, 8]), src([0, 4, 8])], every=2)
    assert same == [[0, 0], [2, 2]]


def test_compare_of_runs_drawn_differently_is_refused(nnlab, trained):
    root, runs = trained
    r = nnlab("animate", runs["vae"], f"--compare={runs['l3']}", f"--runs_dir={root}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "drawn as class densities" in r.err and "a 3-D cube" in r.err


def test_each_panel_names_its_own_runs_classes():
    """A Fashion-MNIST run beside a digits run: each panel's legend has its own classes."""
    import matplotlib

    matplotlib.use("Agg")
    from nnlab.config import build

    def source(dataset):
        rec = record.Recording(
            "vae",
            np.array([0]),
            np.array([0.0]),
            np.arange(10),
            np.arange(10),
            "test",
            mu=np.random.default_rng(0).normal(size=(1, 10, 2)),
            sd=np.full((1, 10, 2), 0.5),
        )
        cfg = build("vae", overrides={"dataset": dataset})
        return anim.Source(None, cfg, rec, "density")

    fig, _, _ = anim._figure([source("fashion-mnist"), source("mnist")], list(range(10)), 1, 40)
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert "Trouser" in legends[0] and "1" in legends[1] and "Trouser" not in legends[1]


def test_output_names_say_what_is_inside(nnlab, trained):
    root, runs = trained
    full = nnlab("animate", runs["vae"], f"--runs_dir={root}", "--dpi=30").out.split()[0]
    part = nnlab("animate", runs["vae"], f"--runs_dir={root}", "--dpi=30", "--classes=0,4")
    thin = nnlab("animate", runs["vae"], f"--runs_dir={root}", "--dpi=30", "--every=2")
    assert full.endswith("latents-density.gif")
    assert part.out.split()[0].endswith("latents-density-classes0-4.gif")
    assert thin.out.split()[0].endswith("latents-density-every2.gif")


def _outlier_source(frames=200, n=1000, seed=0):
    """Points that shrink from +-5.5 to +-4.1 over training, with a few far out (|mu| up to
    8.6) in the first 3% of frames: the shape of a beta = 1 run's early transient."""
    rng = np.random.default_rng(seed)
    reach = np.linspace(5.5, 4.1, frames)[:, None, None]
    mu = rng.uniform(-1, 1, (frames, n, 2)) * reach
    early = int(0.03 * frames)
    mu[:early, :20] = rng.uniform(6.0, 8.6, (early, 20, 2)) * rng.choice([-1, 1], (early, 20, 2))
    rec = record.Recording(
        "vae",
        np.arange(frames),
        np.linspace(0, 1, frames),
        rng.integers(0, 10, n),
        np.arange(n),
        "test",
        mu=mu.astype(np.float32),
        sd=np.full((frames, n, 2), 0.05, np.float32),
    )
    return anim.Source(None, None, rec, "density"), mu


def test_axes_follow_the_bulk_of_the_data_not_an_early_outlier():
    src, mu = _outlier_source()
    x0, x1, y0, y1 = anim._limits(src, list(range(10)))
    inside = (mu[..., 0] >= x0) & (mu[..., 0] <= x1) & (mu[..., 1] >= y0) & (mu[..., 1] <= y1)
    share = inside.mean(axis=1)
    assert (share >= 0.9).mean() >= 0.95  # >= 90% of the points in >= 95% of the frames
    last = mu[-1]
    used = np.ptp(last[:, 0]) * np.ptp(last[:, 1]) / ((x1 - x0) * (y1 - y0))
    assert used > 0.5, (x0, x1, used)  # less than half of the panel empty at the end
    outside = anim.outside_counts(src, list(range(10)), (x0, x1, y0, y1))
    assert outside[0] > 0 and outside[-1] == 0  # the frames say what they leave out


@pytest.mark.slow
def test_long_recordings_are_thinned_unless_asked(nnlab, runs):
    run_id = nnlab(
        "train", "vae", *FAST, "--epochs=2", "--snapshot_every=1", "--probe_size=50"
    ).out.strip()
    r = nnlab("animate", run_id, "--dpi=30")
    assert r.code == 0, r.err
    assert gif_frames(r.out.split()[0]).shape[0] == 114  # 227 snapshots, every 2nd
    r = nnlab("animate", run_id, "--dpi=30", "--every=1")
    assert gif_frames(r.out.split()[0]).shape[0] == 227
