"""A search's point reporting to its pruner: when reports are due (labels in training images
seen), what is measured, and a pruned run stopped at a checkpoint, marked pruned, usable."""

from __future__ import annotations

import json

import pytest
import torch

from nnlab.commands import train
from nnlab.config.config import build
from nnlab.helpers import files
from nnlab.helpers.console import stderr_console
from nnlab.store import folders, metrics, record
from nnlab.training.pruning import Pruned, Reports


def _labels(every: float, batch_size: int, n: int = 1000, epochs: int = 2) -> list[int]:
    spe = -(-n // batch_size)
    r = Reports("test_loss", every, lambda *a: False)
    out = []
    for epoch in range(epochs):
        for batch in range(1, spe + 1):  # after each step, as the trainer asks
            at = (epoch, batch) if batch < spe else (epoch + 1, 0)  # an epoch's end
            label = r.label(*at, batch_size, n, spe)
            if label is not None:
                out.append(label)
    return out


def test_epoch_ends_only_by_default():
    assert _labels(0, 64) == [1000, 2000]


def test_every_n_steps_and_each_epoch_end():
    assert _labels(5, 64) == [320, 640, 960, 1000, 1320, 1640, 1960, 2000]


def test_fractions_of_an_epoch_give_the_same_labels_for_any_batch_size():
    expected = [250, 500, 750, 1000, 1250, 1500, 1750, 2000]
    for bs in (16, 25, 64, 100, 200):
        assert _labels(0.25, bs) == expected, bs
    # a batch of more than a quarter: the quarters its steps cross, each labelled once
    assert _labels(0.25, 300) == expected
    assert _labels(0.25, 600) == [500, 1000, 1500, 2000]
    assert _labels(0.25, 1000) == [1000, 2000]


def _cfg(**kw):
    base = {
        "dataset": "mnist-sample",
        "hidden_dims": "32",
        "batch_size": "100",
        "probe_size": "200",
        "snapshot_every": "9",
        "record_dtype": "float32",
        "epochs": "2",
    }
    return build("vae", overrides={**base, **{k: str(v) for k, v in kw.items()}})


@pytest.mark.parametrize("metric", ["test_elbo", "train_loss"])
def test_epoch_end_reports_are_the_logged_epoch_line(tmp_path, metric):
    seen = []

    def decide(label, value, stopping):
        seen.append((label, value))
        return False

    train.start(_cfg(), tmp_path, stderr_console(), reports=Reports(metric, 0, decide))
    (run_id,) = folders.list_run_ids(tmp_path)
    run = folders.open_run(run_id, tmp_path)
    epochs = metrics.of_kind(metrics.read(run.metrics), "epoch")
    assert seen == [(3600, epochs[0][metric])]  # epoch 1's end; none after the last epoch
    assert run.meta().status == "finished"


def test_a_pruned_run_is_checkpointed_evaluated_right_and_resumable(tmp_path):
    seen = []

    def decide(label, value, stopping):
        seen.append((label, value))
        return len(seen) == 2

    with pytest.raises(Pruned):
        train.start(_cfg(), tmp_path, stderr_console(), reports=Reports("test_elbo", 0.5, decide))
    assert [label for label, _ in seen] == [1800, 3600]  # mid-epoch 1, then its end
    (run_id,) = folders.list_run_ids(tmp_path)
    run = folders.open_run(run_id, tmp_path)
    meta = run.meta()
    assert meta.status == "pruned" and meta.resumable_step == meta.steps_done == 36
    # an independent evaluation of the checkpointed weights gives the value reported
    from nnlab.training.models import build_model
    from nnlab.training.trainer import evaluate, load_splits

    cfg = run.config(meta)
    ck = files.load_checkpoint(run.checkpoints / "latest.pt")
    net = build_model(cfg)
    net.load_state_dict(ck["model"])
    splits = load_splits(cfg, torch.device("cpu"), stderr_console())
    x, y, _ = splits.split("test")
    assert evaluate(net, cfg, x, y)["elbo"] == pytest.approx(seen[-1][1], rel=1e-6)
    # its recording is usable; `train --resume` trains it on to the end
    assert len(record.load_recording(run.latents, ("mu", "sd")).steps) >= 4
    train.resume(run_id, tmp_path, console=stderr_console())
    assert run.meta().status == "finished" and run.meta().epochs_done == 2


def test_a_latent_metric_is_measured_on_the_probe_as_the_recording_would(tmp_path):
    seen = []

    def decide(label, value, stopping):
        seen.append((label, value))
        return True

    with pytest.raises(Pruned):
        train.start(
            _cfg(snapshot_every=36),
            tmp_path,
            stderr_console(),
            reports=Reports("ncm_accuracy", 0, decide),
        )
    (run_id,) = folders.list_run_ids(tmp_path)
    run = folders.open_run(run_id, tmp_path)
    rec = record.load_recording(run.latents, ("mu", "sd"))
    assert int(rec.steps[-1]) == 36  # the snapshot at epoch 1's end
    from nnlab.analysis import latent

    assert seen[0][1] == pytest.approx(latent.snapshot_metrics(rec, len(rec) - 1)["ncm_accuracy"])


def test_a_point_stopped_while_waiting_for_an_answer_is_interrupted_not_pruned(tmp_path):
    from nnlab.helpers.errors import TrainingStopped

    def decide(label, value, stopping):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C during the wait
        assert stopping()
        return False

    with pytest.raises(TrainingStopped) as e:
        train.start(_cfg(), tmp_path, stderr_console(), reports=Reports("test_elbo", 0.5, decide))
    assert e.value.exit_code == 130 and not isinstance(e.value, Pruned)
    (run_id,) = folders.list_run_ids(tmp_path)
    assert folders.open_run(run_id, tmp_path).meta().status == "interrupted"
    assert json.loads((tmp_path / run_id / "meta.json").read_text())["resumable_step"] == 18
