"""The metrics plot's panels: what each kind of run gets, in order (the image itself is
checked in tests/test_summary.py)."""

from __future__ import annotations

import numpy as np

from nnlab.config.config import build
from nnlab.render.metrics import panel_list


def test_a_classifier_gets_accuracy_and_a_permuted_run_its_tasks():
    cfg = build("classifier", overrides={"permute_every": "1"})
    lines = [
        {"kind": "epoch", "step": 10, "epoch": 1, "h1_dead": 0.0, "test_acc": 0.5},
        {"kind": "task", "task": 0, "step": 10, "train_acc": 0.4, "test_acc": 0.5},
    ]
    titles = [t for t, _ in panel_list(cfg, lines, {})]
    assert titles[:3] == ["loss", "accuracy", "accuracy at the end of each task"]
    assert any(t.startswith("unit health") for t in titles)


def test_a_vae_gets_no_accuracy_and_one_panel_per_latent_metric_group():
    series = {"step": np.array([0, 4]), "ncm_accuracy": np.array([0.1, 0.2])}
    titles = [t for t, _ in panel_list(build("vae"), [], series)]
    assert titles == ["loss", "nearest-class-mean accuracy"]


def test_a_one_epoch_run_draws_its_numbers_as_points():
    """One epoch line gives one value a curve: drawn as a point, not as an invisible line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlab.render.metrics import _draw_panel

    line = {"kind": "epoch", "step": 113, "epoch": 1, "train_acc": 0.8, "h1_dead": 0.1}
    for title, keys in (("accuracy", None), ("unit health: share of dead units", ("h1_dead",))):
        fig, ax = plt.subplots()
        _draw_panel(ax, title, keys, {"step": [], "epoch": [line], "task": []}, {})
        drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1]
        assert drawn and all(ln.get_marker() == "o" for ln in drawn), title
        plt.close(fig)


def test_the_readme_metrics_picture_shows_todays_panels(trained):
    """docs/metrics-vae-beta10.png was drawn with the panels summary --plot draws today
    for a 2-D VAE (docs/make_figures.sh vae remakes both)."""
    from pathlib import Path

    from nnlab.render.metrics import panel_titles

    root, runs = trained
    kept = Path(__file__).resolve().parent.parent / "docs" / "metrics-vae-beta10.panels.txt"
    assert kept.read_text().splitlines() == panel_titles(runs["vae"], root)
