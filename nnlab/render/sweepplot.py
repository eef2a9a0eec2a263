"""`nnlab summary SWEEP_ID --plot`: each metric against each swept field, one line per
value of the other swept fields, error bars over seeds."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from nnlab.helpers.options import text_of

# metric key -> (panel title, scale): the sweep table's columns as plot panels
TITLES = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "test_elbo": "test ELBO (nats)",
    "test_acc": "test accuracy",
    "overlap_max": "top class overlap (Bhattacharyya)",
    "ncm_accuracy": "nearest-class-mean accuracy",
    "aggregate_kl_to_prior": "aggregate posterior KL to N(0, I)",
    "active_units": "active units",
}


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def curves(d: dict, field: str, metric: str) -> list[tuple[str, list, list[float], list[float]]]:
    """(label, x values, means, sds) of each line of one panel: `metric` against `field`,
    one line per combination of the other non-seed fields, pooled over seeds."""
    grid = d["grid"]
    others = [k for k in grid if k not in (field, "seed")]
    out = []
    for combo in itertools.product(*(grid[k] for k in others)):
        fixed = dict(zip(others, combo, strict=True))
        xs, means, sds = [], [], []
        for x in grid[field]:
            ys = [
                p["metrics"][metric]
                for p in d["points"]
                if p["status"] == "finished"
                and p["values"][field] == x
                and all(p["values"][k] == v for k, v in fixed.items())
                and p["metrics"].get(metric) is not None
            ]
            if ys:
                mean = sum(ys) / len(ys)
                var = sum((y - mean) ** 2 for y in ys) / (len(ys) - 1) if len(ys) > 1 else 0.0
                xs.append(x)
                means.append(mean)
                sds.append(math.sqrt(var))
        label = ", ".join(f"{k}={text_of(v)}" for k, v in fixed.items()) or "all"
        if xs:
            out.append((label, xs, means, sds))
    return out


def plot_sweep(d: dict, runs_dir=None) -> Path:
    """Write <sweep>/media/sweep-metrics.png and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_png

    fields = [k for k in d["grid"] if k != "seed"] or ["seed"]
    metrics = [m for m in d["columns"] if any(p["metrics"].get(m) is not None for p in d["points"])]
    if not metrics:
        from nnlab.helpers.errors import NnlabError

        raise NnlabError(f"sweep {d['id']}: no point has finished yet; nothing to plot")
    panels = [(m, f) for m in metrics for f in fields]
    # one swept field: the metrics wrap into rows of three; several: a row per metric
    cols = len(fields) if len(fields) > 1 else min(3, len(metrics))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 2.8 * rows + 0.5), dpi=100, squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    seeds = len(d["grid"].get("seed", [None]))
    for k, (ax, (metric, field)) in enumerate(zip(axes.flat, panels, strict=False)):
        values = d["grid"][field]
        numeric = _numeric(values)
        for label, xs, means, sds in curves(d, field, metric):
            pos = xs if numeric else [values.index(x) for x in xs]
            yerr = sds if seeds > 1 and field != "seed" else None
            ax.errorbar(pos, means, yerr=yerr, marker="o", ms=3, capsize=3, lw=1, label=label)
        if numeric and min(values) > 0 and max(values) / min(values) >= 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(values)), [text_of(v) for v in values])
        ax.set_title(TITLES.get(metric, metric), fontsize=9)
        ax.set_xlabel(field, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if k < cols and len(ax.get_legend_handles_labels()[1]) > 1:
            ax.legend(fontsize=7)
    bars = f" · mean ± sd over {seeds} seeds" if seeds > 1 else ""
    fig.suptitle(f"{d['id']} · {d['model']}{bars}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    folder = Path(d["path"]) / "media"
    folder.mkdir(exist_ok=True)
    path = write_png(folder / "sweep-metrics.png", figure_to_array(fig))
    plt.close(fig)
    return path
