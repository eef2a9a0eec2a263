"""`nnlab summary RUN_ID --plot`: the run's loss curves and latent metrics against step."""

from __future__ import annotations

from nnlab import store


def plot_metrics(run_id, runs_dir=None):
    """Write <run>/media/metrics.png: one panel per metric against training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab import analysis, record
    from nnlab.render.gif import figure_to_array, write_png
    from nnlab.summary import read_metrics

    run = store.open_run(run_id, runs_dir)
    meta = run.meta()
    cfg = run.config()
    lines = read_metrics(run.file("metrics.jsonl"))
    steps = [m for m in lines if m.get("kind") == "step"]
    epochs = [m for m in lines if m.get("kind") == "epoch"]
    series = {}
    if record.chunk_files(run.latents):
        series = analysis.series(record.load_recording(run.latents, cfg.model))

    panels = [("loss", None)]
    if cfg.model == "classifier":
        panels.append(("accuracy", None))
    keyed = [
        ("overlap: Bhattacharyya coefficient", ("overlap_max", "overlap_mean")),
        ("nearest-class-mean accuracy", ("ncm_accuracy",)),
        ("between / within class spread", ("between_within",)),
        ("shape spread of class covariances", ("shape_logdet_spread", "shape_elongation_spread")),
        ("KL to prior per dimension", ("kl_per_dim",)),
        ("mean distance to nearest cube corner", ("corner_distance_mean",)),
    ]
    panels += [(title, keys) for title, keys in keyed if series and keys[0] in series]
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if title == "loss":
            if steps:
                ax.plot(
                    [m["step"] for m in steps],
                    [m["loss"] for m in steps],
                    lw=0.8,
                    color="0.5",
                    label="train (per log step)",
                )
            for key, style in (("val_loss", "o-"), ("test_loss", "s--")):
                pts = [(m["step"], m[key]) for m in epochs if key in m]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, ms=3, label=key.replace("_", " "))
            ax.legend(fontsize=8)
        elif title == "accuracy":
            for key, style in (("train_acc", "-"), ("val_acc", "o-"), ("test_acc", "s--")):
                pts = [(m["step"], m[key]) for m in epochs if key in m]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, ms=3, label=key.replace("_", " "))
            ax.legend(fontsize=8)
        elif keys == ("kl_per_dim",):
            kl = series["kl_per_dim"]
            for d in range(kl.shape[1]):
                ax.plot(series["step"], kl[:, d], label=f"z{d}")
            ax.legend(fontsize=8, ncol=min(kl.shape[1], 4))
        else:
            for key in keys:
                ax.plot(series["step"], series[key], label=key.replace("_", " "))
            if len(keys) > 1:
                ax.legend(fontsize=8)
    fig.suptitle(f"{run.id} · {meta.get('model')} on {meta.get('dataset')}", fontsize=10)
    fig.tight_layout()
    folder = run.file("media")
    folder.mkdir(exist_ok=True)
    path = write_png(folder / "metrics.png", figure_to_array(fig))
    plt.close(fig)
    return path
