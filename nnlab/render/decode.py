"""`nnlab decode`: what a VAE's decoder makes of its latent space.

Four figures: the latent manifold (a grid of latent points decoded into one image of
28x28 tiles), reconstructions of one test image per class, samples from the prior, and
an interpolation between two test images (strip and GIF). `--over_training` adds the
manifold at every saved checkpoint as a GIF.
"""

from __future__ import annotations

import numpy as np

from nnlab import files, store
from nnlab.console import stderr_console
from nnlab.errors import NnlabError, RunError
from nnlab.options import parse_pair

GRID = 15  # manifold tiles per side
SPAN = 3.0  # the manifold covers [-SPAN, SPAN]^2 (in standard deviations of the prior)


def tiles(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """(rows*cols, 28, 28) images in [0, 1] as one grey uint8 mosaic, row by row."""
    h, w = images.shape[1:]
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad))
    for k, img in enumerate(images[: rows * cols]):
        r, c = divmod(k, cols)
        out[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = img
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def manifold_points(latent_dim: int, means: np.ndarray | None):
    """Latent points of the manifold grid (GRID*GRID, D), top row first (z2 high)."""
    u = np.linspace(-SPAN, SPAN, GRID)
    gx, gy = np.meshgrid(u, u[::-1])
    if latent_dim == 2:
        return np.stack([gx.ravel(), gy.ravel()], 1)
    from nnlab.density import pca_basis

    centre, basis, _ = pca_basis(means, 2)
    scale = np.sqrt(((means - centre) @ basis.T).var(0))  # SPAN standard deviations along each
    return (
        centre
        + gx.ravel()[:, None] * scale[0] * basis[0]
        + gy.ravel()[:, None] * scale[1] * basis[1]
    )


def decode(
    run_id, runs_dir=None, *, checkpoint=None, out=None, between=None, over_training=False, seed=0
) -> list[str]:
    """Write the decoder figures for a VAE run; return the written paths."""
    import torch

    from nnlab import data
    from nnlab.render.gif import output_folder, write_gif, write_png
    from nnlab.runload import load_model

    run = store.open_run(run_id, runs_dir)
    run.meta()
    cfg = run.config()
    if cfg.model != "vae":
        raise RunError(f"decode needs a VAE run; {run.id} is a {cfg.model}")
    pair = parse_pair(between)
    cfg, model, ck = load_model(run, checkpoint)
    splits = data.load(cfg.dataset, cfg.data_dir or None, cfg.val_fraction, cfg.seed)
    test_x, test_y = splits.test_x, splits.test_y.numpy()
    if pair is None:  # default: the first 4 and the first 9 of the test split
        pair = (int(np.flatnonzero(test_y == 4)[0]), int(np.flatnonzero(test_y == 9)[0]))
    if not all(0 <= k < len(test_x) for k in pair):
        raise NnlabError(f"--between={between}: test indices run from 0 to {len(test_x) - 1}")
    folder = output_folder(out, run, "decode")
    step = int(ck["step"])
    written = []

    def dec(z) -> np.ndarray:
        with torch.inference_mode():
            return (
                torch.sigmoid(model.decode(torch.as_tensor(z, dtype=torch.float32)))
                .numpy()
                .reshape(-1, 28, 28)
            )

    with torch.inference_mode():
        means = model.encode(test_x)[0].numpy()
    points = manifold_points(cfg.latent_dim, means)
    written.append(
        write_png(folder / f"decode-manifold-step{step}.png", tiles(dec(points), GRID, GRID))
    )

    firsts = [int(np.flatnonzero(test_y == c)[0]) for c in range(10) if (test_y == c).any()]
    originals = test_x[firsts].numpy().reshape(-1, 28, 28)
    with torch.inference_mode():
        recon = dec(model.encode(test_x[firsts])[0])
    both = np.concatenate([originals, recon])
    written.append(
        write_png(folder / f"decode-reconstructions-step{step}.png", tiles(both, 2, len(firsts)))
    )

    z = torch.randn(64, cfg.latent_dim, generator=torch.Generator().manual_seed(seed)).numpy()
    written.append(write_png(folder / f"decode-samples-step{step}.png", tiles(dec(z), 8, 8)))

    with torch.inference_mode():
        ends = model.encode(test_x[list(pair)])[0].numpy()
    t = np.linspace(0, 1, 12)[:, None]
    strip = dec((1 - t) * ends[0] + t * ends[1])
    name = f"decode-interpolation-{pair[0]}-{pair[1]}-step{step}"
    written.append(write_png(folder / f"{name}.png", tiles(strip, 1, len(strip))))
    big = [np.kron(tiles(img[None], 1, 1, pad=0), np.ones((6, 6), np.uint8)) for img in strip]
    frames = [np.repeat(f[..., None], 3, axis=2) for f in big + big[-2:0:-1]]  # there and back
    written.append(write_gif(folder / f"{name}.gif", frames, fps=8, hold_last_s=0.125))

    if over_training:
        written.append(_manifold_over_training(run, cfg, points, folder))
    return [str(p) for p in written]


def _manifold_over_training(run, cfg, points, folder):
    """The manifold at every saved checkpoint, oldest first, as a GIF."""
    import torch

    from nnlab.models import build_model
    from nnlab.render.gif import write_gif

    cks = []
    for p in sorted(run.checkpoints.glob("*.pt")):
        ck = files.load_checkpoint(p)
        cks.append((int(ck["step"]), p.name, ck))
    if len({c[0] for c in cks}) < 2:
        stderr_console().print(
            "note: only one saved checkpoint step, so the GIF has one frame; train with "
            "--checkpoint_every=1 to keep one per epoch",
            soft_wrap=True,
        )
    seen, frames = set(), []
    for step, _, ck in sorted(cks, key=lambda x: x[0]):
        if step in seen:
            continue
        seen.add(step)
        model = build_model(cfg)
        model.load_state_dict(ck["model"])
        model.eval()
        with torch.inference_mode():
            img = torch.sigmoid(model.decode(torch.as_tensor(points, dtype=torch.float32))).numpy()
        mosaic = tiles(img.reshape(-1, 28, 28), GRID, GRID)
        frames.append(np.repeat(mosaic[..., None], 3, axis=2))
    return write_gif(folder / "decode-manifold-over-training.gif", frames, fps=2)
