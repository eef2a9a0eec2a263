"""Frames to GIF and PNG."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np

from nnlab.render.gif import write_gif


def test_gif_hold_last_frame(tmp_path):
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 120, 255)]
    path = write_gif(tmp_path / "a.gif", frames, fps=10, hold_last_s=1.5)
    meta = [iio.immeta(path, index=i) for i in range(3)]
    assert [m["duration"] for m in meta] == [100, 100, 1500]
    np.testing.assert_array_equal(iio.imread(path, index=None)[:, 0, 0, 0], [0, 120, 255])
