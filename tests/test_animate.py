"""nnlab animate: GIFs of the recorded latent space, frame alignment, errors."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from nnlab.render import animate as anim
from nnlab.render import sources
from nnlab.store import folders, record
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
    store_run = folders.open_run(runs["vae"], root)
    cfgs = [store_run.config(), folders.open_run(runs["vae10"], root).config()]
    assert sources.differing_labels(cfgs) == ["β = 1", "β = 10"]


def test_latent3_rotating_cube_and_pca(nnlab, trained, tmp_path):
    root, runs = trained
    out = tmp_path / "cube.gif"
    r = nnlab("animate", runs["l3"], f"--runs_dir={root}", f"--out={out}", "--fps=5")
    assert r.code == 0, r.err
    assert r.out.split() == [str(out), str(tmp_path / "cube.png")]
    src = sources.load_source(runs["l3"], root, "auto")
    assert src.kind == "scatter3d"
    frames = gif_frames(out)
    assert frames.shape[0] == len(src.rec) and not np.array_equal(frames[1], frames[2])
    wide = sources.load_source(runs["wide"], root, "auto")
    assert wide.kind == "scatter" and wide.points.shape[2] == 2 and "PC1" in wide.axis_labels[0]
    assert nnlab("animate", runs["wide"], f"--runs_dir={root}", "--classes=0,4,9").code == 0


@pytest.mark.parametrize(
    "key,args,needle",
    [
        ("off", [], "no latent recording"),
        ("l3", ["--kind=density"], "needs a VAE with a 2-D latent"),
        ("vae", ["--classes=12"], "class numbers run from 0 to 9"),
        (
            "vae",
            ["--classes=Shirt"],
            "no class 'Shirt'; give class numbers (0 to 9) or names (0, 1,",
        ),
        ("vae", ["--kind=contour"], "choose from auto, density, scatter"),
        ("vae", ["--every=0"], "--every"),
        ("vae", ["--out=x.mp4"], "ending in .gif"),
        ("vae", ["--compare=nope-1"], "no run 'nope-1'"),
        ("vae", ["--compare="], "--compare: give the run ids"),
        ("vae", ["--compare=,"], "--compare: give the run ids"),
    ],
)
def test_animate_errors(nnlab, trained, key, args, needle):
    root, runs = trained
    r = nnlab("animate", runs[key], f"--runs_dir={root}", *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_compare_of_runs_drawn_differently_is_refused(nnlab, trained):
    root, runs = trained
    r = nnlab("animate", runs["vae"], f"--compare={runs['l3']}", f"--runs_dir={root}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "drawn as class densities" in r.err and "a 3-D cube" in r.err


def test_each_panel_names_its_own_runs_classes():
    """A Fashion-MNIST run beside a digits run: each panel's legend has its own classes."""
    import matplotlib

    matplotlib.use("Agg")
    from nnlab.config.config import build

    def source(dataset):
        rec = record.Recording(
            np.array([0]),
            np.array([0.0]),
            np.arange(10),
            np.arange(10),
            "test",
            points=np.random.default_rng(0).normal(size=(1, 10, 2)),
            sd=np.full((1, 10, 2), 0.5),
        )
        cfg = build("vae", overrides={"dataset": dataset})
        return sources.Source(None, cfg, rec, "density")

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


@pytest.mark.slow
def test_long_recordings_are_thinned_unless_asked(nnlab, runs, monkeypatch):
    from nnlab.render import animate as animate_mod

    run_id = nnlab(
        "train", "vae", *FAST[:1], "--epochs=1", "--snapshot_every=1", "--probe_size=50"
    ).out.strip()
    monkeypatch.setattr(animate_mod, "MAX_FRAMES", 57)  # 114 snapshots: every 2nd
    r = nnlab("animate", run_id, "--dpi=30")
    assert r.code == 0, r.err
    assert gif_frames(r.out.split()[0]).shape[0] == 58  # 0, 2, ..., 112, then the last: 113
    r = nnlab("animate", run_id, "--dpi=30", "--every=1")
    assert gif_frames(r.out.split()[0]).shape[0] == 114


@pytest.mark.parametrize("key", ["vae", "l3"])
def test_parallel_and_serial_rendering_write_the_same_gif(trained, tmp_path, monkeypatch, key):
    from nnlab.render import animate as animate_mod
    from nnlab.render.gif import write_gif
    from nnlab.render.sources import load_source

    root, ids = trained
    src = load_source(ids[key], root, "auto")
    monkeypatch.setattr(animate_mod, "PARALLEL_MIN_FRAMES", 2)
    monkeypatch.setattr(animate_mod, "CHUNK", 3)  # several chunks per worker
    serial = animate_mod.render_frames([src], list(range(10)), 1, 40, workers=1)
    parallel = animate_mod.render_frames([src], list(range(10)), 1, 40, workers=2)
    assert len(serial) == len(parallel) == len(src.rec) > 6
    a, b = write_gif(tmp_path / "a.gif", serial), write_gif(tmp_path / "b.gif", parallel)
    assert a.read_bytes() == b.read_bytes()


def test_a_long_class_name_leaves_room_for_the_others(runs):
    """#37 item 22: a 250-character class name (a legal folder name) is cut in the legend
    and the tags, every other name still shown; an epoch of 1e300 is no 300-digit title."""
    import torch

    import nnlab as api
    from nnlab.render.animate import epoch_text
    from nnlab.render.style import LEGEND_CHARS

    long = "x" * 250
    run = api.start("long", runs_dir=runs)
    x, y = torch.rand(9, 1, 4, 4), torch.arange(9) % 3
    run.watch(x, y, classes=[long, "b", "c"], encode=lambda b: b.flatten(1)[:, :2])
    run.snapshot(0, epoch=0.0)
    run.finish()
    fig = api.open(run.id, runs).figure()
    shown = [t.get_text() for t in fig.legends[0].get_texts()]
    assert shown[1:] == ["b", "c"] and len(shown[0]) == LEGEND_CHARS
    assert shown[0].endswith("…") and shown[0].startswith("xxx")
    assert epoch_text(1e300) == "1e+300" and epoch_text(2.25) == "2.25"


def test_only_the_classes_some_image_has_are_drawn(runs):
    """#37 item 8: names declared but used by no probe image get no legend entry."""
    import torch

    import nnlab as api

    run = api.start("declared", runs_dir=runs)
    names = [f"class {i}" for i in range(5000)]
    run.watch(
        torch.rand(6, 1, 4, 4),
        torch.tensor([0, 7, 0, 7, 0, 7]),
        classes=names,
        encode=lambda b: b.flatten(1)[:, :2],
    )
    run.snapshot(0)
    run.finish()
    fig = api.open(run.id, runs).figure()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["class 0", "class 7"]
