"""Frames (RGB arrays) to GIF and PNG files, written atomically.

All frames are quantised to one shared palette before encoding: much faster than letting
the encoder build a palette per frame, and colours do not flicker between frames.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from nnlab.helpers import files


def canvas_array(fig) -> np.ndarray:
    """The figure's canvas as drawn so far, as an (H, W, 3) uint8 array (a copy)."""
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def figure_to_array(fig) -> np.ndarray:
    """Draw a matplotlib figure (Agg) and return its pixels as an (H, W, 3) uint8 array."""
    fig.canvas.draw()
    return canvas_array(fig)


def output_folder(out, run, command: str) -> Path:
    """--out=DIR, or the run's media folder, for a command that writes several files."""
    from nnlab.helpers.errors import NnlabError

    folder = Path(str(out)).expanduser() if out else run.media
    if folder.exists() and not folder.is_dir():
        raise NnlabError(f"--out={out}: {command} writes several files; give a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shared_palette(frames: list[np.ndarray]):
    """A PIL palette image built from up to 16 frames spread over the animation.

    Median cut averages colours within a box, so pure white and black (the background and
    the text) get entries of their own: a page must not turn beige.
    """
    from PIL import Image

    picks = np.linspace(0, len(frames) - 1, min(16, len(frames))).round().astype(int)
    mosaic = np.concatenate([frames[i][::2, ::2] for i in picks], axis=0)
    pal = Image.fromarray(mosaic).quantize(colors=254, method=Image.Quantize.MEDIANCUT)
    entries = (pal.getpalette() or [])[: 254 * 3]
    entries += [0] * (254 * 3 - len(entries))
    pal.putpalette(entries + [255, 255, 255, 0, 0, 0])
    return pal


WHITE, BLACK = 254, 255  # palette entries reserved by shared_palette


def _to_palette(frame: np.ndarray, palette):
    """One frame as a palette image. Pillow's lookup is approximate (a coarse colour
    cache), so exact white and black pixels are set to their reserved entries."""
    from PIL import Image

    q = frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)
    indices = np.array(Image.fromarray(q).quantize(palette=palette, dither=Image.Dither.NONE))
    indices[(frame == 255).all(axis=-1)] = WHITE
    indices[(frame == 0).all(axis=-1)] = BLACK
    img = Image.fromarray(indices, mode="P")
    img.putpalette(palette.getpalette())
    return img


def write_gif(
    path: str | Path,
    frames: list[np.ndarray],
    fps: float = 10.0,
    hold_last_s: float = 1.5,
    durations_ms: list[int] | None = None,
) -> Path:
    """Write frames as a looping GIF; the last frame stays `hold_last_s` seconds."""

    if not frames:
        raise ValueError("no frames to write")
    palette = shared_palette(frames)
    images = [_to_palette(f, palette) for f in frames]
    if durations_ms is None:
        step = max(20, int(round(1000 / fps)))
        durations_ms = [step] * len(frames)
        durations_ms[-1] = max(step, int(hold_last_s * 1000))
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations_ms,
        loop=0,
        optimize=False,
        disposal=1,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes(path, buf.getvalue())
    return path


def write_png(path: str | Path, frame: np.ndarray) -> Path:
    """Write one frame as a PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", optimize=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes(path, buf.getvalue())
    return path
