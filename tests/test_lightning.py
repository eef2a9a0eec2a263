"""nnlab's Lightning callback (nnlab.library.lightning) with a real Trainer.fit on the
bundled sample, and the examples/ scripts run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlab.store import folders, metrics, record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

if os.environ.get("CI"):  # CI installs the extra: a missing Lightning fails there
    import lightning as L
else:
    L = pytest.importorskip("lightning")


def sample(n_probe=100):
    """The bundled digits as (train x, train y, probe x, probe y), 1x28x28 in [0, 1]."""
    with np.load(resources.files("nnlab") / "assets/mnist-5k.npz") as z:
        x = torch.from_numpy(z["images"]).float().div(255).unsqueeze(1)
        y = torch.from_numpy(z["labels"].astype(np.int64))
    held = torch.arange(len(x)) % 50 == 0  # 10 of each digit
    return x[~held], y[~held], x[held], y[held]


class Small(L.LightningModule):
    def __init__(self, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.body = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU()
        )
        self.code = torch.nn.Linear(32, 3)
        self.head = torch.nn.Linear(3, 10)

    def forward(self, x):
        return self.head(torch.sigmoid(self.code(self.body(x))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def fit(callback, epochs=1, module=None, *, batches=1.0, validate=True):
    """A real Trainer.fit on the bundled sample (batches: Lightning's limit_train_batches;
    validate: with the probe as validation set, for a module with a validation_step)."""
    from torch.utils.data import DataLoader, TensorDataset

    tx, ty, px, py = sample()
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    val = DataLoader(TensorDataset(px, py), batch_size=500) if validate else None
    trainer.fit(
        module or Small(), DataLoader(TensorDataset(tx, ty), batch_size=128, shuffle=True), val
    )
    return trainer


def test_a_real_fit_is_recorded(runs, nnlab):
    import nnlab as api

    _, _, px, py = sample()
    cb = api.LatentCallback(px, py, layer="code", every_n_steps=10, name="pl", runs_dir=runs)
    fit(cb)
    opened = folders.read_run(cb.run_id, runs)
    assert opened.meta.status == "finished"
    assert opened.cfg.settings == {"lr": 0.01}  # the module's hparams
    rec = record.load_recording(runs / cb.run_id / "latents", ("mu", "sd?"))
    steps_per_epoch = 39  # 4,900 images in batches of 128
    assert rec.steps.tolist() == [0, 10, 20, 30, steps_per_epoch]
    assert rec.points.shape == (5, 100, 3) and rec.sd is None
    lines = metrics.read(runs / cb.run_id / "metrics.jsonl")
    epoch = metrics.of_kind(lines, "epoch")
    assert len(epoch) == 1 and {"train_loss", "val_acc"} <= set(epoch[0])
    assert [m["step"] for m in metrics.of_kind(lines, "step")] == [10, 20, 30]
    assert api.load_checkpoint(cb.run_id, runs_dir=runs)["step"] == steps_per_epoch
    r = nnlab("animate", cb.run_id)
    assert r.code == 0 and "scatter3d" in r.out, r.err


def test_an_exception_in_the_fit_marks_the_run_failed(runs):
    import nnlab as api

    class Broken(Small):
        def training_step(self, batch, batch_idx):
            if batch_idx == 3:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    _, _, px, py = sample()
    cb = api.LatentCallback(px, py, encode=lambda x: torch.zeros(len(x), 2), runs_dir=runs)
    with pytest.raises(RuntimeError, match="boom"):
        fit(cb, module=Broken())
    assert folders.open_run(cb.run_id, runs).meta().status == "failed"
    with pytest.raises(api.UsageError, match="has no such method"):
        fit(api.LatentCallback(px, py, encode="encdoe", runs_dir=runs))


@pytest.mark.slow
@pytest.mark.parametrize("script", ["own_loop.py", "lightning_loop.py"])
def test_the_examples_run(script, runs, nnlab):
    env = dict(os.environ, NNLAB_RUNS=str(runs), NNLAB_EXAMPLE_EPOCHS="1")
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run_id = r.stdout.strip().splitlines()[-1]
    d = nnlab("summary", run_id, "--json").json()
    assert d["status"] == "finished" and d["latent_metrics"], d["problems"]
    assert nnlab("animate", run_id).code == 0


def test_a_recording_problem_never_stops_the_fit(runs, capsys):
    """#37 item 12: a module that logs 'epoch' and 'step', and latents that turn NaN as the
    model diverges: the fit runs to its end, each skipped write is said once on stderr and
    noted in the run, and the run is finished with what could be recorded."""
    import nnlab as api

    class Logs(Small):
        def training_step(self, batch, batch_idx):
            self.log("step", float(self.global_step), on_epoch=True, on_step=False)
            self.log("epoch", float(self.current_epoch), on_epoch=True, on_step=False)
            return super().training_step(batch, batch_idx)

    _, _, px, py = sample()
    calls = {"n": 0}

    def encode(x):  # finite for the first two snapshots, NaN after (a diverging model)
        calls["n"] += 1
        return torch.full((len(x), 2), float("nan") if calls["n"] > 2 else 0.5)

    cb = api.LatentCallback(px, py, encode=encode, every_n_steps=10, runs_dir=runs)
    trainer = fit(cb, epochs=2, module=Logs())
    assert trainer.state.finished and trainer.global_step == 78
    run = api.open(cb.run_id, runs)
    assert run.status == "finished" and run.steps.tolist() == [0, 10]
    skipped = run.metrics()["skipped"]
    assert {s["what"] for s in skipped} == {"a snapshot", "logged metric(s)"}
    assert any("NaN or infinite" in s["why"] for s in skipped)
    assert any("epoch, step" in s["why"] or "step, epoch" in s["why"] for s in skipped)
    assert len(run.metrics()["epoch"]) == 2  # the epoch lines, without the clashing keys
    err = capsys.readouterr().err
    assert err.count("a snapshot at step") == 1 and "training goes on" in err


class LitAutoEncoder(L.LightningModule):
    """Lightning's own README's autoencoder: Linear(28 * 28, ...) first, the images
    flattened in training_step, and no forward() at all."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(28 * 28, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 28 * 28)
        )

    def training_step(self, batch, batch_idx):
        x, _ = batch
        x = x.view(x.size(0), -1)
        z = self.encoder(x)
        return torch.nn.functional.mse_loss(self.decoder(z), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_the_readme_autoencoder_is_recorded_through_its_encoder(runs):
    """#38 item 1: layer="encoder" on a module without forward(), images 1x28x28 that its
    first Linear takes flat: one fit, no hand-written encode."""
    import nnlab

    _, _, px, py = sample()
    callback = nnlab.LatentCallback(px, py, layer="encoder", every_n_steps=2, runs_dir=runs)
    fit(callback, module=LitAutoEncoder(), batches=6, validate=False)
    run = nnlab.open(callback.run_id, runs_dir=runs)
    assert run.status == "finished" and run.steps[0] == 0 and len(run.steps) >= 3
    assert run.latents().arrays["mu"].shape == (len(px), 3)
    flat = nnlab.LatentCallback(
        px.flatten(1), py, layer="encoder", image_shape=(28, 28), prepare=lambda x: x,
        every_n_steps=3, runs_dir=runs,
    )  # fmt: skip
    fit(flat, module=LitAutoEncoder(), batches=6, validate=False)
    assert nnlab.open(flat.run_id, runs_dir=runs).latents().arrays["mu"].shape[1] == 3


def test_a_shape_mismatch_is_one_line_naming_shapes(runs):
    import nnlab

    _, _, px, py = sample()
    wrong = torch.nn.functional.interpolate(px, size=(14, 14))  # 196 values, not 784
    callback = nnlab.LatentCallback(wrong, py, layer="encoder", runs_dir=runs)
    with pytest.raises(nnlab.UsageError) as e:
        fit(callback, module=LitAutoEncoder(), batches=6, validate=False)
    text = str(e.value)
    assert "\n" not in text and "(100, 1, 14, 14)" in text
    assert "Linear(in_features=784" in text and "takes 784 features" in text
    assert "prepare=" in text


def test_the_callback_records_several_layers(runs, nnlab):
    """#39: LatentCallback(layers=[...]) as RunWriter.watch takes them."""
    import nnlab as api

    _, _, px, py = sample()
    layers = ["body.1", "code", "head"]
    cb = api.LatentCallback(px, py, layer="code", layers=layers, every_n_steps=20, runs_dir=runs)
    fit(cb, validate=False)
    m = nnlab("layers", cb.run_id, "--json", f"--runs_dir={runs}").json()
    assert m["names"] == layers and m["steps"] == [0, 20, 39]  # the epoch: 39 steps
    assert [m["cka_final"][n][-1] for n in layers] == pytest.approx([1, 1, 1])
    assert np.array(m["cka"]).shape == (3, 3, 3) and m["collapse"] is None
