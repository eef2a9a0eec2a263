from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from nnlab import record, store
from nnlab.render import animate as anim
from nnlab.render.gif import write_gif
from tests.conftest import FAST


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A few tiny runs shared by this module's tests: VAE beta 1 and 10, latent3, linear."""
    import contextlib
    import io

    from nnlab import cli

    root = tmp_path_factory.mktemp("store")

    def train(*args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("NNLAB_OFFLINE", "1")
                cli.main(["train", *args, *FAST, f"--runs_dir={root}"])
        return out.getvalue().strip()

    runs = {
        "vae": train("vae", "--snapshot_every=20", "--seed=3"),
        "vae10": train("vae", "--snapshot_every=20", "--seed=3", "--beta=10"),
        "l3": train("classifier", "--preset=latent3", "--epochs=2", "--snapshot_every=60"),
        "lin": train("classifier", "--preset=linear-mse", "--epochs=1"),
        "off": train("vae", "--snapshot_every=0"),
        "wide": train("classifier", "--preset=nielsen", "--epochs=1", "--snapshot_every=120"),
    }
    return root, runs


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


def test_density_panel_colours_each_class_where_it_lives():
    """Two classes far apart: their regions are coloured, the space between stays white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    mu = np.where(labels[:, None] == 0, [-2.0, 0.0], [2.0, 0.0]) + rng.normal(0, 0.1, (100, 2))
    rec = record.Recording(
        "vae",
        np.array([0]),
        np.array([0.0]),
        labels,
        np.arange(100),
        "test",
        mu=mu[None],
        sd=np.full((1, 100, 2), 0.3),
    )
    src = anim.Source(None, None, rec, "density")
    fig, ax = plt.subplots()
    colors = anim.class_colors()
    panel = anim.DensityPanel(ax, src, [0, 1], colors, ["a", "b"], (-4, 4, -4, 4))
    panel.update(0)
    img = np.asarray(panel.image.get_array(), dtype=np.float64) / 255
    xs = panel.xs

    def pixel(x, y):
        return img[np.abs(panel.ys - y).argmin(), np.abs(xs - x).argmin()]

    for c, x in ((0, -2.0), (1, 2.0)):
        p = pixel(x, 0.0)
        assert np.linalg.norm(p - colors[c]) < np.linalg.norm(p - colors[1 - c])
        assert not np.allclose(p, 1.0)
    assert np.allclose(pixel(0.0, 0.0), 1.0) and np.allclose(pixel(0.0, 3.5), 1.0)
    plt.close(fig)


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


def test_gif_hold_last_frame(tmp_path):
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 120, 255)]
    path = write_gif(tmp_path / "a.gif", frames, fps=10, hold_last_s=1.5)
    meta = [iio.immeta(path, index=i) for i in range(3)]
    assert [m["duration"] for m in meta] == [100, 100, 1500]
    np.testing.assert_array_equal(gif_frames(path)[:, 0, 0, 0], [0, 120, 255])


def test_masks_linear_run(nnlab, trained, tmp_path):
    root, runs = trained
    r = nnlab("masks", runs["lin"], f"--runs_dir={root}")
    assert r.code == 0, r.err
    gif, png = r.out.split()
    assert gif_frames(gif).shape[0] == 10
    assert iio.immeta(gif, index=0)["duration"] == 1000
    assert iio.imread(png).shape[1] > iio.imread(png).shape[0]
    r = nnlab(
        "masks",
        runs["l3"],
        f"--runs_dir={root}",
        "--units=0,3",
        f"--out={tmp_path}",
        "--checkpoint=final",
    )
    assert r.code == 0, r.err
    assert gif_frames(r.out.split()[0]).shape[0] == 2
    from nnlab.render.masks import unit_titles

    cfg = store.open_run(runs["lin"], root).config()
    assert unit_titles(cfg, [3]) == ["Mask for digit 3"]
    assert unit_titles(store.open_run(runs["l3"], root).config(), [7]) == ["Hidden unit 7"]


@pytest.mark.parametrize(
    "key,args,needle",
    [
        ("vae", [], "masks needs a classifier run"),
        ("lin", ["--units=10"], "units 0 to 9"),
        ("lin", ["--checkpoint=epoch-7"], "no 'epoch-7' checkpoint"),
        ("lin", ["--checkpoint=/nonexistent.pt"], "no such file"),
    ],
)
def test_masks_errors(nnlab, trained, key, args, needle):
    root, runs = trained
    r = nnlab("masks", runs[key], f"--runs_dir={root}", *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
