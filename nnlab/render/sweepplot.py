"""`nnlab summary SWEEP_ID --plot`: each metric against each swept field, one line per
value of the other swept fields, error bars over seeds."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from nnlab.helpers.options import text_of
from nnlab.store import folders
from nnlab.store.meta import Status

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
                if p["status"] == Status.FINISHED
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
    return _save(fig, d, "sweep-metrics.png")


def _save(fig, d: dict, name: str) -> Path:
    """Write the figure to <sweep>/media/name, close it, and return the path."""
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_png

    folder = Path(d["path"]) / folders.MEDIA
    folder.mkdir(exist_ok=True)
    path = write_png(folder / name, figure_to_array(fig))
    plt.close(fig)
    return path


def plot_search(d: dict) -> Path:
    """Write <sweep>/media/search.png: the optimisation history (each trial's metric, the
    best so far) and the metric against each searched field; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.config import space as spaces
    from nnlab.helpers.errors import NnlabError

    s = d["search"]
    plan, trials = s["plan"], s["trials"]
    done = [t for t in trials if t["status"] == Status.FINISHED and t["value"] is not None]
    pruned = [t for t in trials if t["status"] == Status.PRUNED and t["value"] is not None]
    if not done:
        raise NnlabError(f"search {d['id']}: no trial has finished yet; nothing to plot")
    params = spaces.from_record(plan["space"])
    n = 1 + len(params)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    label = TITLES.get(plan["metric"], plan["metric"])
    # the scale follows the finished trials: a diverging pruned trial would flatten them
    lo, hi = min(t["value"] for t in done), max(t["value"] for t in done)
    pad = (hi - lo) * 0.6 or abs(hi) * 0.05 or 1.0
    ylim = (lo - pad, hi + pad)
    sign = 1 if plan["direction"] == "max" else -1
    _history(axes.flat[0], trials, done, pruned, sign, ylim)
    axes.flat[0].set_title(f"optimisation history · {label}", fontsize=9)
    for ax, (field, p) in zip(axes.flat[1:], params.items(), strict=False):
        _against(ax, field, p, done, pruned, ylim)
        ax.set_title(f"{label} against {field}", fontsize=9)
    for ax in axes.flat[:n]:
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.suptitle(
        f"{d['id']} · {plan['method']} · {len(done)} finished, {len(pruned)} pruned", fontsize=10
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, d, "search.png")


def _pruned_points(ax, xs, pruned: list[dict], ylim, label=None) -> None:
    """Pruned trials at their last report, hollow, held at the panel's edge if beyond."""
    if pruned:
        ys = [min(max(t["value"], ylim[0]), ylim[1]) for t in pruned]
        ax.scatter(xs, ys, s=18, facecolors="none", edgecolors="tab:gray", label=label)


def _history(ax, trials: list[dict], done: list[dict], pruned: list[dict], sign, ylim) -> None:
    """Each trial's metric by its index, and the best so far as a step line."""
    from matplotlib.ticker import MaxNLocator

    ax.scatter([t["index"] for t in done], [t["value"] for t in done], s=18, label=Status.FINISHED)
    label = "pruned: last report (at the edge if beyond)"
    _pruned_points(ax, [t["index"] for t in pruned], pruned, ylim, label)
    best, xs, ys = None, [], []
    for t in sorted(done, key=lambda t: t["index"]):
        if best is None or sign * t["value"] > sign * best:
            best = t["value"]
        xs.append(t["index"])
        ys.append(best)
    xs.append(max(t["index"] for t in trials))
    ys.append(best)
    ax.step(xs, ys, where="post", color="tab:red", lw=1.2, label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial", fontsize=9)
    ax.legend(fontsize=7)


def _against(ax, field: str, p, done: list[dict], pruned: list[dict], ylim) -> None:
    """The metric against one searched field: over its whole range, or by choice."""
    from nnlab.config import space as spaces

    choices = None if isinstance(p, spaces.Range) else [text_of(c) for c in p]

    def pos(t):
        v = t["values"][field]
        return v if choices is None else choices.index(text_of(v))

    ax.scatter([pos(t) for t in done], [t["value"] for t in done], s=18)
    _pruned_points(ax, [pos(t) for t in pruned], pruned, ylim)
    if choices is None:
        _range_axis(ax, p)
    else:
        ax.set_xticks(range(len(choices)), choices)
    ax.set_xlabel(field, fontsize=9)


def _range_axis(ax, p) -> None:
    """The whole range searched on x, so that where the trials went shows."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if p.log:
        ax.set_xscale("log")
        ax.set_xlim(p.lo / (p.hi / p.lo) ** 0.03, p.hi * (p.hi / p.lo) ** 0.03)
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(p.lo - 0.03 * (p.hi - p.lo), p.hi + 0.03 * (p.hi - p.lo))
    if p.log and p.integer:  # whole numbers read better as 16, 32, 64 than 2×10¹
        ticks = [2**k for k in range(0, 31) if p.lo <= 2**k <= p.hi]
        if len(ticks) >= 2:
            ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
