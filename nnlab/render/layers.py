"""`nnlab layers RUN_ID`: how every recorded layer's representation forms over training.

One PNG of four panels (a layer x step heatmap of the chosen measure, each layer's linear
CKA to its own final state, the CKA matrix between layers at the end, and a classifier's
neural collapse NC1-NC4), and a GIF of the CKA matrix over training."""

from __future__ import annotations

import numpy as np

from nnlab.analysis import cache
from nnlab.analysis.layers import COLLAPSE, MEASURES
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders

CHOICES = tuple(m.key for m in MEASURES)
GIF_FRAMES = 60  # the CKA matrix's animation: at most this many snapshots, evenly spread


def measures_of(run_id: str, runs_dir=None) -> tuple[folders.Opened, dict]:
    """The opened run and its per-layer measures (cached); refused, in one line, for a run
    that recorded one layer."""
    opened = folders.read_run(run_id, runs_dir)
    return opened, cache.layer_measures(opened.run, opened.cfg, opened.meta)


def draw(run_id: str, runs_dir=None, *, measure: str = "probe", out=None) -> list[str]:
    """Write layers-<measure>.png and layers-cka.gif; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, output_folder, write_png

    if measure not in CHOICES:
        raise NnlabError(f"--measure={measure}: choose from {', '.join(CHOICES)}")
    opened, m = measures_of(run_id, runs_dir)
    folder = output_folder(out, opened.run, "layers")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.4), dpi=100)
    _heatmap(fig, axes[0, 0], m, measure)
    _curves(axes[0, 1], m, m["cka_final"], "linear CKA to the layer's final state")
    _matrix(fig, axes[1, 0], m, len(m["steps"]) - 1)
    _collapse(axes[1, 1], m)
    fig.suptitle(f"{opened.run.id} · every recorded layer over training", fontsize=11)
    fig.tight_layout()
    png = write_png(folder / f"layers-{measure}.png", figure_to_array(fig))
    plt.close(fig)
    return [str(png), str(_cka_gif(m, folder, opened.run.id))]


def _heatmap(fig, ax, m: dict, key: str) -> None:
    """Layers (rows, inputs at the bottom) against snapshots, coloured by the measure."""
    label = next(x.label for x in MEASURES if x.key == key)
    grid = np.array([m[key][name] for name in m["names"]])
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(m["names"])), m["names"])
    ticks = np.unique(np.linspace(0, len(m["steps"]) - 1, min(6, len(m["steps"]))).astype(int))
    ax.set_xticks(ticks, [str(m["steps"][t]) for t in ticks])
    ax.set_xlabel("step")
    ax.set_title(label, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)


def _curves(ax, m: dict, values: dict, title: str) -> None:
    """One line per layer against step."""
    for name in m["names"]:
        ax.plot(m["steps"], values[name], label=name, marker="." if len(m["steps"]) <= 40 else "")
    ax.axhline(0.9, color="0.6", lw=0.8, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _matrix(fig, ax, m: dict, s: int) -> None:
    """The CKA matrix between layers at snapshot s, each cell written."""
    grid = np.array(m["cka"][s])
    image = ax.imshow(grid, cmap="magma", vmin=0, vmax=1, origin="lower")
    n = len(m["names"])
    ax.set_xticks(range(n), m["names"], rotation=45, ha="right")
    ax.set_yticks(range(n), m["names"])
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if grid[i, j] < 0.6 else "black",
                )
    ax.set_title(f"linear CKA between layers · step {m['steps'][s]}", fontsize=10)
    if fig is not None:
        fig.colorbar(image, ax=ax, fraction=0.046)


def _collapse(ax, m: dict) -> None:
    """NC1-NC4 of the last hidden layer against step (log scale), or why there are none."""
    nc = m.get("collapse")
    if not nc:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "neural collapse: a classifier's last hidden layer\n"
            "(record it with --record_layers=all)",
            ha="center",
            va="center",
            fontsize=9,
        )
        return
    for x in COLLAPSE:
        values = np.array([np.nan if v is None else v for v in nc[x.key]], float)
        ax.plot(m["steps"], np.maximum(values, 1e-6), label=x.label.split(":")[0])
    ax.set_yscale("log")
    ax.set_xlabel("step")
    error = np.array([np.nan if v is None else v for v in nc.get("error", [])], float)
    if error.size:  # the terminal phase: from the first snapshot the network errs on none
        zero = np.flatnonzero(error == 0)
        if zero.size:
            ax.axvline(m["steps"][zero[0]], color="0.5", ls="--", lw=0.8)
            ax.text(
                m["steps"][zero[0]],
                ax.get_ylim()[1],
                " no probe errors",
                fontsize=7,
                va="top",
                color="0.4",
            )
    ax.set_title(f"neural collapse of {m['collapse_layer']} (lower: more collapsed)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _cka_gif(m: dict, folder, run_id: str):
    """The CKA matrix between layers, one frame per snapshot (at most GIF_FRAMES)."""
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_gif

    picks = np.unique(
        np.linspace(0, len(m["steps"]) - 1, min(GIF_FRAMES, len(m["steps"]))).astype(int)
    )
    fig, ax = plt.subplots(figsize=(5.6, 5.0), dpi=80)
    frames = []
    for s in picks:
        ax.clear()
        _matrix(None, ax, m, int(s))
        fig.suptitle(run_id, fontsize=9)
        fig.tight_layout()
        frames.append(figure_to_array(fig))
    plt.close(fig)
    return write_gif(folder / "layers-cka.gif", frames, fps=8)
