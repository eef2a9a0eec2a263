"""nnlab masks: first-layer weights as 28x28 masks."""

from __future__ import annotations

import imageio.v3 as iio
import pytest

from nnlab.render.masks import unit_titles
from nnlab.store import folders


def gif_frames(path):
    return iio.imread(path, index=None)


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
    cfg = folders.open_run(runs["lin"], root).config()
    assert unit_titles(cfg, [3]) == ["Mask for digit 3"]
    assert unit_titles(folders.open_run(runs["l3"], root).config(), [7]) == ["Hidden unit 7"]


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


def test_a_subset_of_units_does_not_replace_the_full_grid(nnlab, trained):
    root, runs = trained
    full = nnlab("masks", runs["lin"], f"--runs_dir={root}").out.split()
    some = nnlab("masks", runs["lin"], f"--runs_dir={root}", "--units=0,3").out.split()
    assert some[1].endswith("-units0-3.png") and full[1] != some[1]
    assert gif_frames(full[0]).shape[0] == 10  # still all ten


def test_colour_scale_is_set_by_a_high_percentile_not_the_extremes(nnlab, trained, monkeypatch):
    """A few extreme weights must not wash the masks out: the scale is the 99th percentile."""
    import torch

    from nnlab.helpers import files

    root, runs = trained
    path = root / runs["lin"] / "checkpoints" / "final.pt"
    ck = files.load_checkpoint(path)
    w = ck["model"]["layers.0.weight"]
    typical = float(torch.quantile(w.abs().flatten(), 0.99))
    w[0, :3] = 40.0  # three extreme pixels
    files.save_checkpoint(root / "extreme.pt", ck)
    r = nnlab("masks", runs["lin"], f"--runs_dir={root}", f"--checkpoint={root / 'extreme.pt'}")
    assert r.code == 0, r.err
    png = iio.imread(r.out.split()[1])
    # a mask other than the first is still strongly coloured (red or blue pixels)
    sat = png[..., :3].max(-1).astype(int) - png[..., :3].min(-1)
    assert (sat > 120).mean() > 0.02 and typical < 5


def test_masks_of_a_deep_linear_net_are_the_composed_map(nnlab, runs):
    """784-20-10 with activation=identity is one linear map: its masks are W2 W1."""
    import numpy as np

    from nnlab.render.masks import mask_weights
    from nnlab.training.loading import load_model
    from tests.conftest import FAST

    r = nnlab(
        "train", "classifier", *FAST, "--sizes=[784,20,10]", "--activation=identity",
        "--loss=ce", "--lr=0.01", "--epochs=1", "--snapshot_every=0",
    )  # fmt: skip
    assert r.code == 0, r.err
    run = folders.open_run(r.out.strip(), runs)
    cfg, model, _ = load_model(run, "final")
    weights, composed = mask_weights(cfg, model)
    w1 = model.layers[0].weight.detach().double().numpy()
    w2 = model.layers[1].weight.detach().double().numpy()
    assert composed and weights.shape == (10, 1, 28, 28)
    weights = weights.reshape(10, 784)
    np.testing.assert_allclose(weights, w2 @ w1, rtol=1e-12)
    assert unit_titles(cfg, [3]) == ["Mask for digit 3"]
    m = nnlab("masks", run.id)
    assert m.code == 0, m.err
    gif, png = m.out.split()
    assert gif_frames(gif).shape[0] == 10  # one mask per class, not one per hidden unit
