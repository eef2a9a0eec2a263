from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from nnlab.render.decode import GRID, manifold_points, tiles
from tests.conftest import FAST


def test_decode_writes_four_figures(nnlab, runs):
    run_id = nnlab(
        "train", "vae", *FAST, "--snapshot_every=0", "--checkpoint_every=1", "--epochs=2"
    ).out.strip()
    r = nnlab("decode", run_id, "--between=3,7", "--over_training")
    assert r.code == 0, r.err
    paths = r.out.split()
    names = [p.rsplit("/", 1)[1] for p in paths]
    assert names == [
        "decode-manifold-step226.png",
        "decode-reconstructions-step226.png",
        "decode-samples-step226.png",
        "decode-interpolation-3-7-step226.png",
        "decode-interpolation-3-7-step226.gif",
        "decode-manifold-over-training.gif",
    ]
    manifold = iio.imread(paths[0])
    # the mosaic of GRID x GRID tiles, drawn larger than its pixels, with axes around it
    assert manifold.shape[0] > GRID * 29 + 1 and manifold.shape[1] > GRID * 29 + 1
    assert manifold.std() > 10  # decoded digits, not a blank page
    recon = iio.imread(paths[1])
    assert recon.shape[1] >= 1000 and recon.shape[0] >= 250  # tiles big enough to read
    assert iio.imread(paths[3]).shape[1] >= 1000
    assert iio.imread(paths[4], index=None).shape[0] == 22  # 12 steps there, 10 back
    over = iio.imread(paths[5], index=None)
    assert over.shape[0] == 2 and not np.array_equal(over[0], over[-1])  # epochs 1 and 2
    # each frame's title fits: the top rows are background, no letters cut at the edge
    assert (over[:, :3] >= 250).all()


@pytest.mark.parametrize(
    "args,needle",
    [(["--between=1"], "give two test image indices"), (["--between=0,5000"], "run from 0 to 999")],
)
def test_decode_errors(nnlab, runs, args, needle):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=0").out.strip()
    r = nnlab("decode", run_id, *args)
    assert r.code == 2 and needle in r.err, r.err
    cls = nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=1").out.strip()
    r = nnlab("decode", cls)
    assert r.code == 2 and "decode needs a VAE run" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_tiles_and_manifold_grid():
    imgs = np.stack([np.full((28, 28), v) for v in (0.0, 1.0)])
    m = tiles(imgs, 1, 2)
    assert m.shape == (30, 59) and m[1, 1] == 0 and m[1, 30] == 255
    pts = manifold_points(2, None)
    assert pts.shape == (GRID * GRID, 2) and pts[0].tolist() == [-3.0, 3.0]
    rng = np.random.default_rng(0)
    means = rng.normal(size=(200, 4)) * [5, 1, 0.1, 0.1]
    p4 = manifold_points(4, means)
    assert p4.shape == (GRID * GRID, 4)
    assert np.ptp(p4[:, 0]) > 10 * np.ptp(p4[:, 2])  # spread along the main direction
