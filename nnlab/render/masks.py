"""`nnlab masks`: the first layer's weights, one image per unit at the input's size (RGB
for colour inputs: mid-grey is 0), or a CNN's first-layer filters.

For a network without a hidden layer each output unit's weights are a "mask" of the class
it detects; otherwise each hidden unit's weights show what it responds to. A deep network
without a non-linearity (activation=identity) is one linear map, W_L ... W_2 W_1: its masks
are the rows of that product, one per class, as for a network without a hidden layer.
"""

from __future__ import annotations

import numpy as np

from nnlab import families
from nnlab.helpers.console import subscript
from nnlab.helpers.errors import RunError
from nnlab.helpers.options import parse_units
from nnlab.store import folders

SCALE_PERCENTILE = 99.0  # the colour scale ends at this percentile of |w|


def is_composed(cfg) -> bool:
    """Whether the masks are the composed map of a deep linear network."""
    return cfg.activation == "identity" and len(cfg.sizes) > 2


def composed_weights(model) -> np.ndarray:
    """W_L ... W_2 W_1 of a classifier's layers (float64): (classes, pixels)."""
    out = None
    for layer in model.layers:
        w = layer.weight.detach().cpu().double().numpy()
        out = w if out is None else w @ out
    return out


def mask_weights(cfg, model) -> tuple[np.ndarray, bool]:
    """(the masks as images (units, C, H, W), whether they are a composed linear map): the
    first layer's weights as images of the input, W_L ... W_1 for a deep network without a
    non-linearity, or a CNN's first convolution's filters (units, C, 3, 3)."""
    if cfg.arch == "conv":
        return model.convs[0].weight.detach().cpu().numpy(), False
    if is_composed(cfg):
        return composed_weights(model).reshape(-1, *cfg.image_shape), True
    return model.layers[0].weight.detach().cpu().numpy().reshape(-1, *cfg.image_shape), False


def weight_scale(weights: np.ndarray) -> float:
    """The masks' one symmetric colour scale: the SCALE_PERCENTILE-th percentile of |w|
    (not the few most extreme weights, which would wash every mask out), or 1 for zeros."""
    return float(np.percentile(np.abs(weights), SCALE_PERCENTILE)) or 1.0


def shown(images: np.ndarray, vmax: float) -> np.ndarray:
    """Mask images (N, C, H, W) as imshow takes them: grey weights (N, H, W) for the
    diverging colour map, colour ones as RGB (N, H, W, 3) in [0, 1], 0.5 + w / (2 vmax)
    per channel (mid-grey is 0)."""
    if images.shape[1] == 1:
        return images[:, 0]
    return np.clip(0.5 + images.transpose(0, 2, 3, 1) / (2 * vmax), 0, 1)


def unit_titles(cfg, units: list[int]) -> list[str]:
    """'Mask for digit 3' for an output layer (or a composed linear map), 'Hidden unit 7'
    otherwise."""
    if cfg.arch == "conv":
        return [f"Filter {u}" for u in units]
    if len(cfg.sizes) == 2 or is_composed(cfg):
        names = families.of(cfg).class_names(cfg)
        word = "digit" if cfg.dataset in ("mnist", "mnist-sample") else "class"
        return [f"Mask for {word} {names[u]}" for u in units]
    return [f"Hidden unit {u}" for u in units]


def masks(run_id, runs_dir=None, *, out=None, units=None, checkpoint=None) -> list[str]:
    """Write the masks GIF (one unit a second) and a PNG grid of all units; return paths."""
    import matplotlib

    matplotlib.use("Agg")

    from nnlab.render.gif import output_folder
    from nnlab.training.loading import load_model

    opened = folders.read_run(run_id, runs_dir)
    run, cfg = opened.run, opened.cfg
    opened.require_rebuildable("masks")
    if "masks" not in families.of(cfg).pictures:
        raise RunError(f"masks needs a classifier run; {run.id} is a {cfg.model}")
    cfg, model, ck = load_model(opened, checkpoint)
    weights, composed = mask_weights(cfg, model)
    chosen = parse_units(units, weights.shape[0])
    titles = unit_titles(cfg, chosen)
    images = weights[chosen]
    vmax = weight_scale(images)  # one scale for all units, so they are comparable
    colour = images.shape[1] == 3
    images = shown(images, vmax)
    label = f"weight (clipped at ±{vmax:.2g})"
    if colour:  # no colour bar: the three channels are the image's own colours
        label = f"R, G, B weights: mid-grey 0, full ±{vmax:.2g}"
    scale_note = f"colour scale: the {SCALE_PERCENTILE:g}th percentile of |w|"
    folder = output_folder(out, run, "masks")
    tag = f"step{int(ck['step'])}"
    if chosen != list(range(weights.shape[0])):  # a subset: say which, never overwrite all
        tag += "-units" + "-".join(map(str, chosen))

    layers = len(cfg.sizes) - 1
    gif = _masks_gif(
        folder / f"masks-{tag}.gif", images, titles, vmax, label, layers if composed else 0
    )
    what = (
        f"composed map W{subscript(layers)}···W₁ of a linear network (no non-linearity)"
        if composed
        else "first convolution's filters"
        if cfg.arch == "conv"
        else "first layer weights"
    )
    heading = f"{run.id} · {what} at step {int(ck['step'])}\n{scale_note}"
    grid = _masks_grid(folder / f"masks-{tag}.png", images, titles, vmax, label, heading)
    return [str(gif), str(grid)]


def _masks_gif(path, images, titles, vmax: float, label: str, composed: int):
    """One unit per frame, one second each (the artists reused frame to frame); composed:
    the number of linear layers whose product the masks are (0: the first layer's own)."""
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_gif

    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    im = ax.imshow(images[0], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if images.ndim == 3:
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, extend="both")
        bar.set_label(label, fontsize=8)
    else:
        ax.set_xlabel(label, fontsize=8)
    if composed:
        ax.set_xlabel(f"composed map of {composed} linear layers", fontsize=8)
    title = ax.set_title(titles[0], fontsize=11)
    fig.tight_layout()
    frames = []
    for img, text in zip(images, titles, strict=True):
        im.set_data(img)
        title.set_text(text)
        frames.append(figure_to_array(fig))
    plt.close(fig)
    return write_gif(path, frames, durations_ms=[1000] * len(frames))


def _masks_grid(path, images, titles, vmax: float, label: str, heading: str):
    """All chosen units in a grid with one colour bar."""
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_png

    small = images.shape[1] < 8  # a CNN's filters: more, smaller panels to a row
    cols = min(8 if small else 5, len(images))
    rows = -(-len(images) // cols)
    side, band = (1.2 if small else 2.0), (0.8 if images.ndim == 4 else 0.6)
    fig, axes = plt.subplots(
        rows, cols, figsize=(side * cols + 1.6, (side + 0.1) * rows + band), dpi=100, squeeze=False
    )
    # a band at the top for the figure's title, above the panels' own titles
    fig.subplots_adjust(top=1 - band / ((side + 0.1) * rows + band), bottom=0.03, left=0.02)
    for a in axes.flat:
        a.set_axis_off()
    for a, img, text in zip(axes.flat, images, titles, strict=False):
        drawn = a.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        a.set_title(text, fontsize=8)
    if images.ndim == 3:
        bar = fig.colorbar(drawn, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, extend="both")
        bar.set_label(label, fontsize=8)
    else:
        heading += f"\n{label}"
    fig.suptitle(heading, fontsize=9)
    path = write_png(path, figure_to_array(fig))
    plt.close(fig)
    return path
