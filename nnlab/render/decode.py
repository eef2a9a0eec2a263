"""`nnlab decode`: what a VAE's decoder makes of its latent space.

Four figures: the latent manifold (a grid of latent points decoded into one image of
tiles at the images' own size, grey or colour), reconstructions of one test image per
class, samples from the prior, and an interpolation between two test images (strip and
GIF). `--over_training` adds the manifold at every saved checkpoint as a GIF.
"""

from __future__ import annotations

import numpy as np

from nnlab import families
from nnlab.helpers import files
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError, RunError
from nnlab.helpers.options import parse_pair
from nnlab.helpers.progress import CountProgress
from nnlab.store import folders, record, schema

GRID = 15  # manifold tiles per side
SPAN = 3.0  # the manifold covers [-SPAN, SPAN]^2 (in standard deviations of the prior)


def tiles(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Images in [0, 1], (N, H, W) or (N, C, H, W), as one uint8 mosaic row by row: grey
    (H', W') for one channel, RGB (H', W', 3) for three."""
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    h, w = images.shape[1:3]
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *images.shape[3:]))
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
    from nnlab.analysis.density import pca_basis

    centre, basis, _ = pca_basis(means, 2)
    scale = np.sqrt(((means - centre) @ basis.T).var(0))  # SPAN standard deviations along each
    return (
        centre
        + gx.ravel()[:, None] * scale[0] * basis[0]
        + gy.ravel()[:, None] * scale[1] * basis[1]
    )


def manifold_mosaic(cfg, ck: dict, points: np.ndarray) -> np.ndarray:
    """The decoded manifold grid of a VAE checkpoint as one uint8 mosaic."""
    import torch

    from nnlab.training.models import build_model

    model = build_model(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    with torch.inference_mode():
        img = torch.sigmoid(model.decode(torch.as_tensor(points, dtype=torch.float32))).numpy()
    return tiles(img.reshape(-1, *cfg.image_shape), GRID, GRID)


def _mosaic_figure(mosaic: np.ndarray, inches: tuple[float, float], title: str):
    """A figure showing one mosaic at a readable size: (figure, axes, image artist)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=inches, dpi=100)
    image = ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    return fig, ax, image


def _tile_centres(n: int, pad: int = 1, size: int = 28) -> np.ndarray:
    """Pixel centres of n tiles along one side of a mosaic made by tiles()."""
    return pad + np.arange(n) * (size + pad) + (size - 1) / 2


def manifold_axes(ax, latent_dim: int, size: int = 28) -> None:
    """Ticks and labels of the manifold: whole latent values, placed where they fall
    between the first and last tile centres (the grid runs from -SPAN to SPAN)."""
    first, last = _tile_centres(GRID, size=size)[[0, -1]]
    values = np.arange(-int(SPAN), int(SPAN) + 1)
    at = first + (values + SPAN) / (2 * SPAN) * (last - first)
    ax.set_xticks(at, [f"{v:g}" for v in values])
    ax.set_yticks(at, [f"{v:g}" for v in values[::-1]])  # the top row is z2 high
    if latent_dim == 2:
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
    else:  # the grid spans the first two principal directions, in standard deviations
        ax.set_xlabel("PC1 of the test posterior means (standard deviations)")
        ax.set_ylabel("PC2 (standard deviations)")


class _Writer:
    """Decodes latent points with the loaded model and writes the figures to one folder."""

    def __init__(self, model, folder, written: list, shape, names: list[str]):
        self.model, self.folder, self.written, self.shape = model, folder, written, shape
        self.names = names  # the run's class names

    def decode(self, z) -> np.ndarray:
        """Images (N, C, H, W) in [0, 1] of latent points z."""
        import torch

        with torch.inference_mode():
            logits = self.model.decode(torch.as_tensor(z, dtype=torch.float32))
            return torch.sigmoid(logits).numpy().reshape(-1, *self.shape)

    def means(self, x) -> np.ndarray:
        """Posterior means of images x."""
        import torch

        with torch.inference_mode():
            return self.model.encode(x)[0].numpy()

    def save(self, fig, name: str) -> None:
        """Write a figure as PNG and close it."""
        import matplotlib.pyplot as plt

        from nnlab.render.gif import figure_to_array, write_png

        self.written.append(write_png(self.folder / name, figure_to_array(fig)))
        plt.close(fig)


def decode(
    run_id, runs_dir=None, *, checkpoint=None, out=None, between=None, over_training=False, seed=0
) -> list[str]:
    """Write the decoder figures for a VAE run; return the written paths."""
    import matplotlib

    matplotlib.use("Agg")

    from nnlab.render.gif import output_folder
    from nnlab.training import data
    from nnlab.training.loading import load_model

    opened = folders.read_run(run_id, runs_dir)
    run, cfg = opened.run, opened.cfg
    opened.require_rebuildable("decode")
    if "decode" not in families.of(cfg).pictures:
        raise RunError(f"decode needs a VAE run; {run.id} is a {cfg.model}")
    pair = parse_pair(between)
    console = stderr_console()
    with console.status(f"loading the model and {cfg.dataset}…"):
        cfg, model, ck = load_model(opened, checkpoint)
        splits = data.load_for(cfg)
    test_x, test_y = splits.test_x, splits.test_y.numpy()
    if pair is None:  # default: the first 4 and 9 of the test split (or first and last class)
        a, b = (4, 9) if cfg.num_classes >= 10 else (0, cfg.num_classes - 1)
        a, b = (c if (test_y == c).any() else int(test_y[0]) for c in (a, b))
        pair = (int(np.flatnonzero(test_y == a)[0]), int(np.flatnonzero(test_y == b)[0]))
    if not all(0 <= k < len(test_x) for k in pair):
        raise NnlabError(f"--between={between}: test indices run from 0 to {len(test_x) - 1}")
    step, written = int(ck["step"]), []
    names = record.run_class_names(run.latents, cfg)
    w = _Writer(model, output_folder(out, run, "decode"), written, cfg.image_shape, names)
    with CountProgress(console, "decode", 5 if over_training else 4) as bar:
        points = manifold_points(cfg.latent_dim, w.means(test_x))
        _manifold(w, run.id, cfg, points, step)
        bar.advance()
        _reconstructions(w, cfg, test_x, test_y, step)
        bar.advance()
        _samples(w, cfg, seed, step)
        bar.advance()
        _interpolation(w, cfg, test_x, test_y, pair, step)
        bar.advance()
        if over_training:
            written.append(_manifold_over_training(opened, points, w.folder))
            bar.advance()
    return [str(p) for p in written]


def _manifold(w: _Writer, run_id: str, cfg, points, step: int) -> None:
    """The decoded latent grid."""
    fig, ax, _ = _mosaic_figure(
        tiles(w.decode(points), GRID, GRID), (6.6, 6.6), f"{run_id}: the decoded latent grid"
    )
    manifold_axes(ax, cfg.latent_dim, cfg.image_shape[2])
    fig.tight_layout()
    w.save(fig, f"decode-manifold-step{step}.png")


def _reconstructions(w: _Writer, cfg, test_x, test_y, step: int) -> None:
    """The first test image of each class (of the first ten) above its reconstruction."""
    names = w.names
    present = [c for c in range(cfg.num_classes) if (test_y == c).any()][:10]
    firsts = [int(np.flatnonzero(test_y == c)[0]) for c in present]
    originals = test_x[firsts].numpy().reshape(-1, *cfg.image_shape)
    recon = w.decode(w.means(test_x[firsts]))
    both = tiles(np.concatenate([originals, recon]), 2, len(firsts))
    fig, ax, _ = _mosaic_figure(
        both, (0.95 * len(firsts) + 1.4, 2.9), "test images and their reconstructions"
    )
    _, h, width = cfg.image_shape
    ax.set_xticks(_tile_centres(len(firsts), size=width), [names[int(test_y[i])] for i in firsts])
    ax.set_yticks(_tile_centres(2, size=h), ["original", "reconstruction"])
    ax.tick_params(length=0, labelsize=8)
    fig.tight_layout()
    w.save(fig, f"decode-reconstructions-step{step}.png")


def _samples(w: _Writer, cfg, seed: int, step: int) -> None:
    """64 images decoded from seeded draws of the prior."""
    import torch

    z = torch.randn(64, cfg.latent_dim, generator=torch.Generator().manual_seed(seed)).numpy()
    fig, ax, _ = _mosaic_figure(tiles(w.decode(z), 8, 8), (5.6, 5.9), "64 samples from N(0, I)")
    ax.set_axis_off()
    fig.tight_layout()
    w.save(fig, f"decode-samples-step{step}.png")


def _interpolation(w: _Writer, cfg, test_x, test_y, pair, step: int) -> None:
    """From one test image's posterior mean to another's: a strip (PNG) and a GIF."""
    from nnlab.render.gif import write_gif

    names = w.names
    ends = w.means(test_x[list(pair)])
    t = np.linspace(0, 1, 12)[:, None]
    strip = w.decode((1 - t) * ends[0] + t * ends[1])
    name = f"decode-interpolation-{pair[0]}-{pair[1]}-step{step}"
    fig, ax, _ = _mosaic_figure(
        tiles(strip, 1, len(strip)),
        (11.5, 1.9),
        "from one test image's posterior mean to another's, in 12 steps",
    )
    ends_at = _tile_centres(len(strip), size=cfg.image_shape[2])[[0, -1]]
    ax.set_xticks(ends_at, [f"test #{k} ({names[int(test_y[k])]})" for k in pair])
    ax.set_yticks([])
    ax.tick_params(length=0, labelsize=8)
    fig.tight_layout()
    w.save(fig, f"{name}.png")
    big = [tiles(img[None], 1, 1, pad=0).repeat(6, axis=0).repeat(6, axis=1) for img in strip]
    big = [f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=2) for f in big]
    frames = big + big[-2:0:-1]  # and back
    w.written.append(write_gif(w.folder / f"{name}.gif", frames, fps=8, hold_last_s=0.125))


def _manifold_over_training(opened: folders.Opened, points, folder):
    """The manifold at every saved checkpoint, oldest first, as a GIF with axes."""
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_gif

    run, cfg = opened.run, opened.cfg
    cks = []
    ceiling = schema.size_ceilings(cfg, opened.meta)[0]
    for p in sorted(run.checkpoints.glob("*.pt")):
        ck = files.load_checkpoint(p, max_bytes=ceiling)
        cks.append((int(ck["step"]), p.name, ck))
    if len({c[0] for c in cks}) < 2:
        stderr_console().print(
            "note: only one saved checkpoint step, so the GIF has one frame; train with "
            "--checkpoint_every=1 to keep one per epoch",
            soft_wrap=True,
        )
    c, h, width = cfg.image_shape
    blank = np.zeros((GRID * (h + 1) + 1, GRID * (width + 1) + 1, *((3,) if c == 3 else ())))
    fig, ax, image = _mosaic_figure(blank.astype(np.uint8), (6.6, 6.6), "")
    manifold_axes(ax, cfg.latent_dim, width)
    # laid out with the longest title the frames will have, so none is cut at the top
    last = max((c[0] for c in cks), default=0)
    ax.set_title(f"{run.id}: the decoded latent grid at step {last}", fontsize=10)
    fig.tight_layout()
    seen, frames = set(), []
    for step, _, ck in sorted(cks, key=lambda x: x[0]):
        if step in seen:
            continue
        seen.add(step)
        image.set_data(manifold_mosaic(cfg, ck, points))
        ax.set_title(f"{run.id}: the decoded latent grid at step {step}", fontsize=10)
        frames.append(figure_to_array(fig))
    plt.close(fig)
    return write_gif(folder / "decode-manifold-over-training.gif", frames, fps=2)
