"""nnlab masks: first-layer weights as 28x28 masks."""

from __future__ import annotations

import imageio.v3 as iio
import pytest

from nnlab import store
from nnlab.render.masks import unit_titles


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


def test_a_subset_of_units_does_not_replace_the_full_grid(nnlab, trained):
    root, runs = trained
    full = nnlab("masks", runs["lin"], f"--runs_dir={root}").out.split()
    some = nnlab("masks", runs["lin"], f"--runs_dir={root}", "--units=0,3").out.split()
    assert some[1].endswith("-units0-3.png") and full[1] != some[1]
    assert gif_frames(full[0]).shape[0] == 10  # still all ten
