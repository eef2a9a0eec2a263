from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from nnlab import families
from nnlab.helpers import files
from nnlab.store import folders, record
from nnlab.store.metrics import read as read_metrics
from nnlab.training import data, trainer
from nnlab.training.models import build_model, encode_latents
from tests.conftest import FAST

L3 = [
    "classifier",
    "--preset=latent3",
    *FAST,
    "--batch_size=40",
    "--snapshot_every=30",
    "--checkpoint_every_steps=25",
]  # 90 steps per epoch


def _run(runs, run_id):
    return folders.Run(runs, run_id)


def test_vae_trains_records_and_logs(nnlab, runs):
    r = nnlab("train", "vae", *FAST, "--snapshot_every=20", "--beta=10")
    assert r.code == 0, r.err
    run_id = r.out.strip()
    assert r.out == run_id + "\n" and run_id.startswith("vae-")  # stdout: the id alone
    run = _run(runs, run_id)
    meta = run.meta()
    assert meta["status"] == "finished" and meta["steps_done"] == 113 == meta["steps_per_epoch"]
    rec = record.load_recording(run.latents, ("mu", "sd"))
    assert rec.steps.tolist() == [0, 20, 40, 60, 80, 100, 113]  # step 0, cadence, final
    assert rec.points.shape == rec.sd.shape == (7, 200, 2) and np.all(rec.sd > 0)
    assert np.bincount(rec.labels).tolist() == [20] * 10
    lines = read_metrics(run.file("metrics.jsonl"))
    steps = [m for m in lines if m["kind"] == "step"]
    assert [m["step"] for m in steps] == list(range(10, 113, 10))
    assert steps[-1]["loss"] < steps[0]["loss"]
    (epoch,) = [m for m in lines if m["kind"] == "epoch"]
    assert epoch["test_elbo"] == pytest.approx(-(epoch["test_bce"] + epoch["test_kl"]))
    assert epoch["test_loss"] == pytest.approx(epoch["test_bce"] + 10 * epoch["test_kl"])
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["final.pt", "latest.pt"]
    assert run.config().beta == 10.0


def test_snapshot_matches_model_at_that_step(nnlab, runs):
    run_id = nnlab("train", *L3, "--epochs=1", "--record_dtype=float32").out.strip()
    run = _run(runs, run_id)
    cfg = run.config()
    ck = files.load_checkpoint(run.checkpoints / "final.pt")
    model = build_model(cfg)
    model.load_state_dict(ck["model"])
    rec = record.load_recording(run.latents, ("act",))
    splits = data.load(cfg.dataset, None, cfg.val_fraction, cfg.seed)
    a, _ = encode_latents(model, cfg, splits.test_x[torch.from_numpy(rec.indices)])
    assert rec.steps[-1] == ck["step"] == 90
    np.testing.assert_allclose(rec.points[-1], a.numpy(), atol=1e-6)


def _tensors(path):
    ck = files.load_checkpoint(path)
    flat = {f"model.{k}": v for k, v in ck["model"].items()}
    for pid, st in ck["optimizer"]["state"].items():
        flat.update({f"opt.{pid}.{k}": v for k, v in st.items() if torch.is_tensor(v)})
    return ck, flat


def _assert_same_run(runs, a, b):
    ca, ta = _tensors(runs / a / "checkpoints" / "final.pt")
    cb, tb = _tensors(runs / b / "checkpoints" / "final.pt")
    assert ca["step"] == cb["step"] and ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert (runs / a / "metrics.jsonl").read_bytes() == (runs / b / "metrics.jsonl").read_bytes()
    for kind in ("classifier", "vae"):
        try:
            ra, rb = record.load_recording(runs / a / "latents", families.get(kind).arrays), None
        except Exception:
            continue
        rb = record.load_recording(runs / b / "latents", families.get(kind).arrays)
        assert np.array_equal(ra.steps, rb.steps) and np.array_equal(ra.points, rb.points)


def test_resume_more_epochs_is_bit_exact(nnlab, runs):
    straight = nnlab("train", *L3, "--epochs=2", "--seed=5").out.strip()
    part = nnlab("train", *L3, "--epochs=1", "--seed=5").out.strip()
    r = nnlab("train", "--resume", part, "--epochs=2")
    assert r.code == 0 and r.out.strip() == part, r.err
    assert "resuming" in r.err
    _assert_same_run(runs, straight, part)
    assert _run(runs, part).config().epochs == 2


def test_interrupt_mid_epoch_then_resume_is_bit_exact(nnlab, runs, monkeypatch):
    straight = nnlab("train", "vae", *FAST, "--epochs=1", "--checkpoint_every_steps=30").out
    original = trainer.Trainer.train_step

    def interrupt_at_47(self, idx, *rest):
        out = original(self, idx, *rest)
        if self.step + 1 == 47:
            os.kill(os.getpid(), signal.SIGINT)  # caught by the trainer, acted on after the step
        return out

    monkeypatch.setattr(trainer.Trainer, "train_step", interrupt_at_47)
    r = nnlab("train", "vae", *FAST, "--epochs=1", "--checkpoint_every_steps=30")
    monkeypatch.setattr(trainer.Trainer, "train_step", original)
    assert r.code == 130 and "Resume with: nnlab train --resume" in r.err
    run_id = r.out.strip()
    meta = _run(runs, run_id).meta()
    assert meta["status"] == "interrupted" and meta["resumable_step"] == 47
    assert nnlab("train", "--resume", run_id).code == 0
    _assert_same_run(runs, straight.strip(), run_id)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(nnlab, runs, monkeypatch):
    monkeypatch.setenv(trainer.FAULT_NAN_ENV, "33")
    r = nnlab("train", *L3, "--epochs=1")
    assert r.code == 1 and "diverged" in r.err and "step 33" in r.err
    run = _run(runs, r.out.strip())
    assert run.meta()["status"] == "diverged"
    ck = files.load_checkpoint(run.checkpoints / "latest.pt")
    assert ck["step"] == 25 and all(torch.isfinite(v).all() for v in ck["model"].values())


@pytest.mark.slow
def test_sigint_from_the_shell_then_resume(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "nnlab",
        "train",
        "classifier",
        *FAST,
        "--epochs=40",
        "--snapshot_every=100",
    ]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "runs"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training is under way
        metas = list(runs.glob("*/checkpoints/latest.pt"))
        if metas:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    run_id = out.strip()
    done = json.loads((runs / run_id / "meta.json").read_text())["epochs_done"]
    epochs = f"--epochs={done + 1}"  # finish the epoch it was in (never fewer than done)
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", "train", "--resume", run_id, epochs],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (runs / run_id / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in lines if m["kind"] == "step"]
    assert steps == list(range(10, steps[-1] + 1, 10))  # none duplicated, none missing
    epochs = [m["epoch"] for m in lines if m["kind"] == "epoch"]
    assert epochs == sorted(set(epochs))


def test_bfloat16_recording_stays_close_to_float32(nnlab, runs):
    exact = nnlab("train", "vae", *FAST, "--snapshot_every=40", "--record_dtype=float32").out
    fast = nnlab(
        "train",
        "vae",
        *FAST,
        "--snapshot_every=40",
        "--record_dtype=float32",
        "--record_precision=bfloat16",
    ).out
    a = record.load_recording(runs / exact.strip() / "latents", ("mu", "sd"))
    b = record.load_recording(runs / fast.strip() / "latents", ("mu", "sd"))
    assert np.array_equal(a.steps, b.steps)
    np.testing.assert_allclose(b.points, a.points, atol=0.05, rtol=0.03)
    np.testing.assert_allclose(b.sd, a.sd, atol=0.02, rtol=0.03)
    # training itself is unchanged (bf16 snapshots run beside a single-threaded trainer, so
    # only the float rounding of the training maths may differ)
    la = [m["loss"] for m in read_metrics(runs / exact.strip() / "metrics.jsonl") if "loss" in m]
    lb = [m["loss"] for m in read_metrics(runs / fast.strip() / "metrics.jsonl") if "loss" in m]
    np.testing.assert_allclose(lb, la, rtol=1e-3)


def test_training_matches_a_plain_loop(nnlab, runs):
    """nnlab's loop (in-memory batches, seeded permutation and noise, fused AdamW, the
    machinery around it) gives the loss curve of a plain PyTorch loop with the same seed."""
    from nnlab.config.config import build
    from nnlab.families.networks import VAE, vae_loss

    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=0", "--seed=4").out.strip()
    logged = [m for m in read_metrics(runs / run_id / "metrics.jsonl") if m["kind"] == "step"]
    cfg = build("vae", overrides={"dataset": "mnist-sample", "seed": "4"})
    x = data.load("mnist-sample", None, cfg.val_fraction, cfg.seed).train_x
    torch.manual_seed(4)
    model = VAE([256, 128], 2, "silu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(4))
    noise = torch.Generator().manual_seed(5)
    losses = []
    for b in range(0, len(x), 32):
        xb = x[perm[b : b + 32]]
        logits, mu, sd = model(xb, noise)
        loss = vae_loss(xb, logits, mu, sd, 1.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    expected = [np.mean(losses[i - 10 : i]) for i in range(10, len(losses) + 1, 10)]
    np.testing.assert_allclose([m["loss"] for m in logged], expected, rtol=1e-4)
