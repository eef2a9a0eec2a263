"""Reopening a run: checkpoints by name or path, the model rebuilt from the saved config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError, RunError
from nnlab.store import folders
from nnlab.training.loading import checkpoint_path, load_model

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-format1"
LINEAR = "classifier-20261129-022729-format1"


@pytest.fixture
def run(runs):
    shutil.copytree(FIXTURE, runs)
    return folders.open_run(LINEAR, runs)


def test_checkpoint_names_and_paths(run):
    assert checkpoint_path(run, None) == run.checkpoints / "latest.pt"
    assert checkpoint_path(run, "final") == run.checkpoints / "final.pt"
    own = run.checkpoints / "final.pt"
    assert checkpoint_path(run, str(own)) == own
    with pytest.raises(RunError, match=r"no .epoch-3. checkpoint .*\(it has: final, latest\)"):
        checkpoint_path(run, "epoch-3")
    with pytest.raises(NnlabError, match="no such file"):
        checkpoint_path(run, "/nonexistent.pt")


def test_model_rebuilt_from_the_saved_config(run):
    cfg, model, ck = load_model(run, "final")
    assert cfg.sizes == [784, 10] and not model.training and ck["step"] == 360
    assert torch.equal(model.layers[0].weight, ck["model"]["layers.0.weight"])


def test_checkpoint_of_another_shape_is_refused(run, tmp_path):
    ck = files.load_checkpoint(run.checkpoints / "final.pt")
    ck["model"]["layers.0.weight"] = torch.zeros(3, 784)
    other = tmp_path / "other.pt"
    files.save_checkpoint(other, ck)
    with pytest.raises(RunError, match="does not match the run's config"):
        load_model(run, str(other))
