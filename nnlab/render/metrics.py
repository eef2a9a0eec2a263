"""`nnlab summary RUN_ID --plot`: the run's loss curves and latent metrics against step."""

from __future__ import annotations

from nnlab import families
from nnlab.analysis import latent
from nnlab.analysis.layers import NC_KEYS
from nnlab.helpers.console import stderr_console, subscript
from nnlab.helpers.progress import CountProgress
from nnlab.store import folders, metrics, record, schema


def metric_panels(series: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(title, metric keys) of each latent-metric panel the series has, in METRICS order."""
    panels: dict[str, list[str]] = {}
    for m in latent.METRICS:
        if m.panel and m.key in series:
            panels.setdefault(m.panel, []).append(m.key)
    return [(title, tuple(keys)) for title, keys in panels.items()]


HEALTH_PANELS = (
    ("effective_rank", "unit health: effective rank of each hidden layer"),
    ("dead", "unit health: share of dead units"),
    ("saturated", "unit health: share of saturated units"),
    ("sparsity", "unit health: weight sparsity (|w| < 1% of the largest)"),
    ("weight_norm", "unit health: weight norm"),
)


def health_panels(epochs: list[dict]) -> list[tuple[str, tuple[str, ...]]]:
    """(title, keys) of a panel per unit-health number the epoch lines hold, one line per
    hidden layer (keys such as h1_dead, enc2_effective_rank)."""
    if not epochs:
        return []
    last = epochs[-1]
    out = []
    for number, title in HEALTH_PANELS:
        keys = tuple(k for k in last if (m := metrics.HEALTH_RE.match(k)) and m.group(2) == number)
        if keys:
            out.append((title, keys))
    return out


def plot_metrics(run_id, runs_dir=None):
    """Write <run>/media/metrics.png: one panel per metric against training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.render.gif import figure_to_array, write_png

    opened = folders.read_run(run_id, runs_dir)
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    schema.check_metrics(run.metrics, cfg, meta)
    lines = metrics.read(run.metrics)
    series = _latent_series(opened)
    kinds = {k: metrics.of_kind(lines, k) for k in ("step", "epoch", "task")}  # once
    panels = panel_list(cfg, lines, series)
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        _draw_panel(ax, title, keys, kinds, series)
    fig.suptitle(f"{run.id} · {meta.model} on {meta.dataset}", fontsize=10)
    fig.tight_layout()
    folder = run.media
    folder.mkdir(exist_ok=True)
    path = write_png(folder / "metrics.png", figure_to_array(fig))
    plt.close(fig)
    return path


def panel_titles(run_id, runs_dir=None) -> list[str]:
    """The titles of the panels `summary --plot` draws for a run, in order
    (docs/make_figures.sh keeps them beside the README's picture; a test compares)."""
    opened = folders.read_run(run_id, runs_dir)
    lines = metrics.read(opened.run.metrics)
    return [title for title, _ in panel_list(opened.cfg, lines, _latent_series(opened))]


def panel_list(cfg, lines: list[dict], series: dict) -> list[tuple[str, list | None]]:
    """(title, keys) of each panel of the metrics plot, in order: the loss, accuracy where
    the family logs it, the tasks of a permuted run, unit health, the latent metrics."""
    panels = [("loss", None)]
    if any(k.endswith("_acc") for m in metrics.of_kind(lines, "epoch") for k in m):
        panels.append(("accuracy", None))
    if metrics.of_kind(lines, "task"):
        panels.append(("accuracy at the end of each task", None))
    panels += health_panels(metrics.of_kind(lines, "epoch"))
    panels += metric_panels(series)
    if series.get("layers"):  # a run that recorded several layers (nnlab layers draws more)
        panels += [(title, None) for title in LAYER_PANELS]
        if not series["layers"].get("collapse"):
            panels.pop()
    return panels


LAYER_PANELS = (
    "layers: linear-probe accuracy (held-out half)",
    "layers: linear CKA to each layer's final state",
    "layers: neural collapse of the last hidden layer",
)


def _latent_series(opened: folders.Opened) -> dict:
    """The latent metrics over the recording (at most 200 snapshots; none unrecorded), and
    under "layers" the measures of a recording of several layers (analysis.cache)."""
    from nnlab.analysis import cache
    from nnlab.store import layers

    run, cfg = opened.run, opened.cfg
    if not record.chunk_files(run.latents):
        return {}
    arrays = families.of(cfg).arrays
    rec = record.load_recording(run.latents, arrays, schema.size_ceilings(cfg, opened.meta)[1])
    n = len(latent.series_indices(len(rec), 200))
    with CountProgress(stderr_console(), "latent metrics", n) as bar:
        series = latent.series(rec, 200, on_step=bar.advance)
    if layers.several(run.layers):
        series["layers"] = cache.layer_measures(run, cfg, opened.meta)
    return series


def _draw_layers(ax, title: str, m: dict) -> None:
    """One of the layer panels: a line per layer, or NC1-NC4 on a log scale."""
    if title == LAYER_PANELS[2]:
        for key in NC_KEYS:
            ax.plot(m["steps"], [max(v, 1e-6) for v in m["collapse"][key]], label=key.upper())
        ax.set_yscale("log")
        ax.set_title(f"{title} ({m['collapse_layer']})", fontsize=10)
    else:
        key = "probe" if title == LAYER_PANELS[0] else "cka_final"
        for name in m["names"]:
            ax.plot(m["steps"], m[key][name], label=name)
        ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, ncol=min(len(m["names"]), 4))


def _draw_panel(ax, title: str, keys, kinds: dict[str, list[dict]], series: dict) -> None:
    """One panel of the metrics plot: its curves and legend."""
    epochs = kinds["epoch"]
    if title.startswith("layers:"):
        _draw_layers(ax, title, series["layers"])
    elif title == "loss":
        steps = kinds["step"]
        if steps:
            x, y = [m["step"] for m in steps], [m["loss"] for m in steps]
            ax.plot(x, y, lw=0.8, color="0.5", label="train (per log step)")
        _epoch_curves(ax, epochs, (("val_loss", "o-"), ("test_loss", "s--")))
    elif title == "accuracy":
        _epoch_curves(ax, epochs, (("train_acc", "-"), ("val_acc", "o-"), ("test_acc", "s--")))
    elif title.startswith("accuracy at the end"):
        ax.set_xlabel("task")
        task_lines = kinds["task"]
        for key, style in (("train_acc", "-"), ("test_acc", "-")):
            pts = [(t["task"], t[key]) for t in task_lines if key in t]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, lw=1, label=key.replace("_", " "))
        ax.legend(fontsize=8)
    elif title.startswith("unit health"):
        for key in keys:
            pts = [(m["step"], m[key]) for m in epochs if key in m]
            style = "o-" if len(pts) == 1 else "-"  # one epoch: a point, not an empty line
            ax.plot(*zip(*pts, strict=True), style, ms=3, label=key.split("_")[0])
        ax.legend(fontsize=8, ncol=min(len(keys), 4))
    elif keys[0] in {m.key for m in latent.METRICS if m.vector}:  # one line per dimension
        values = series[keys[0]]
        for d in range(values.shape[1]):
            ax.plot(series["step"], values[:, d], label=f"z{subscript(d + 1)}")
        ax.legend(fontsize=8, ncol=min(values.shape[1], 4))
    else:
        for key in keys:
            ax.plot(series["step"], series[key], label=key.replace("_", " "))
        if len(keys) > 1:
            ax.legend(fontsize=8)


def _epoch_curves(ax, epochs: list[dict], keys) -> None:
    """Per-epoch values of each key (with its line style) against step, and a legend."""
    for key, style in keys:
        pts = [(m["step"], m[key]) for m in epochs if key in m]
        if len(pts) == 1 and not any(c in style for c in "os"):
            style = "o" + style  # one epoch: a point, not an empty line
        if pts:
            ax.plot(*zip(*pts, strict=True), style, ms=3, label=key.replace("_", " "))
    ax.legend(fontsize=8)
