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
from nnlab.helpers import files, testhooks
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
    assert meta.status == "finished" and meta.steps_done == 113 == meta.steps_per_epoch
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
    assert meta.status == "interrupted" and meta.resumable_step == 47
    assert nnlab("train", "--resume", run_id).code == 0
    _assert_same_run(runs, straight.strip(), run_id)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(nnlab, runs, monkeypatch):
    monkeypatch.setenv(testhooks.NAN_AT_STEP, "33")
    r = nnlab("train", *L3, "--epochs=1")
    assert r.code == 1 and "diverged" in r.err and "step 33" in r.err
    run = _run(runs, r.out.strip())
    assert run.meta().status == "diverged"
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


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--standardise=true"], "computed"),
        (["--standardise=true", "--input_norm=[0.5,0.25]"], [0.5, 0.25]),
        ([], []),
    ],
)
def test_standardise_saves_the_training_splits_statistics(nnlab, runs, flags, expected):
    """#38 item 8: the statistics of the run's own training split (after its validation
    hold-out), saved in config.yaml, and the network rebuilt from it standardises by them."""
    from nnlab.training import data, loading

    r = nnlab("train", "classifier", "--dataset=mnist-sample", "--epochs=1", *flags)
    assert r.code == 0, r.err
    opened = folders.read_run(r.out.strip(), runs)
    if expected == "computed":
        splits = data.load_for(opened.cfg)
        means, sds = data.channel_statistics(splits.train_x, 1)
        expected = [*means, *sds]
        assert len(splits.train_x) == 3600  # the hold-out is not in the statistics
    assert opened.cfg.input_norm == expected
    _, model, _ = loading.load_model(opened)
    assert model.norm.on == bool(expected)


@pytest.mark.slow
def test_colour_folder_cnn_and_conv_vae_with_every_command(nnlab, runs, shapes):
    """#24's acceptance: cnn >= 90% test accuracy in 2 epochs on generated 32x32 colour
    shapes; conv-vae trains; every read command works on both runs."""
    dataset = f"--dataset=folder:{shapes}"
    r = nnlab("train", "classifier", "--preset=cnn", dataset, "--epochs=2", "--seed=0")
    assert r.code == 0, r.err
    cnn = r.out.strip()
    final = json.loads((runs / cnn / "meta.json").read_text())["final"]
    assert final["test_acc"] >= 0.9
    norm = folders.read_run(cnn, runs).cfg.input_norm  # the shapes' own, not MNIST's
    assert len(norm) == 6 and norm[:3] != [0.1307] * 3, norm
    r = nnlab("train", "vae", "--preset=conv-vae", dataset, "--epochs=2", "--snapshot_every=4")
    assert r.code == 0, r.err
    vae = r.out.strip()
    cfg = folders.read_run(vae, runs).cfg
    assert cfg.image_shape == [3, 32, 32] and cfg.num_classes == 3 and cfg.arch == "conv"
    assert record.probe_classes(runs / vae / "latents") == ["disc", "square", "triangle"]
    commands = {
        cnn: ["animate", "report", "masks", "embed", "summary", "export"],
        vae: ["animate", "report", "decode", "embed", "summary", "export"],
    }
    for run_id, names in commands.items():
        for name in names:
            r = nnlab(name, run_id)
            assert r.code == 0, (name, run_id, r.err)
            assert r.out.strip(), (name, run_id)
    from PIL import Image

    recon = next((runs / vae / "media").glob("decode-reconstructions-*.png"))
    assert Image.open(recon).mode == "RGB"
    masks = next((runs / cnn / "media").glob("masks-step*.png"))
    assert np.asarray(Image.open(masks).convert("RGB")).std(axis=2).max() > 0  # in colour
    embedded = np.load(next((runs / cnn / "embeddings").glob("*.npz")), allow_pickle=False)
    assert embedded["act"].shape[1] == 128  # fc1, the last hidden layer


def test_cnn_records_a_named_layer(nnlab, runs, shapes):
    dataset = f"--dataset=folder:{shapes}"
    r = nnlab(
        "train",
        "classifier",
        "--preset=cnn",
        dataset,
        "--epochs=1",
        "--record_layer=pool",
        "--probe_size=30",
        "--snapshot_every=4",
        "--channels=[4,8]",
    )
    assert r.code == 0, r.err
    rec = record.load_last(runs / r.out.strip() / "latents", ("act",))
    assert rec.points.shape[-1] == 8 * 14 * 14


def crafted_npz(path, shape):
    """An npz whose x.npy header claims `shape` and holds no data (a header is all
    describe() reads)."""
    import io
    import zipfile

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    labels = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        labels, {"descr": "<i8", "fortran_order": False, "shape": shape[:1]}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", head.getvalue())
        z.writestr("y.npy", labels.getvalue())


def _bad_dataset(tmp_path, kind):
    from PIL import Image

    from tests.conftest import write_shapes

    root = tmp_path / kind
    if kind == "one-class":
        write_shapes(root, per_class=2, size=8)
        for extra in ("disc", "triangle"):
            for f in (root / extra).iterdir():
                f.unlink()
            (root / extra).rmdir()
        return "folder", root, "at least two class folders"
    if kind == "mixed-sizes":
        write_shapes(root, per_class=2, size=8)
        Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "disc" / "big.png")
        return "folder", root, "images of different sizes .*--image_size"
    if kind == "corrupt":
        write_shapes(root, per_class=2, size=8)
        (root / "disc" / "0000.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
        return "folder", root, "cannot read image .*0000.png"
    path = tmp_path / f"{kind}.npz"
    if kind == "pickled":
        np.savez(path, x=np.array([None, 1], dtype=object), y=np.arange(2))
        return "npz", path, "holds Python objects"
    if kind == "lengths":
        np.savez(path, x=np.zeros((5, 8, 8), np.uint8), y=np.arange(4) % 2)
        return "npz", path, "holds 5 images but 'y' 4 labels"
    if kind == "labels":
        np.savez(
            path, x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4), classes=np.array(["a", "b"])
        )
        return "npz", path, "label 2, outside the 2 classes"
    crafted_npz(path, (10**9, 3, 64, 64))  # "too-big"
    return "npz", path, "need ~[0-9,.]+ GiB in memory"


@pytest.mark.parametrize(
    "kind", ["one-class", "mixed-sizes", "corrupt", "pickled", "lengths", "labels", "too-big"]
)
def test_bad_datasets_are_one_line_and_write_nothing(nnlab, runs, tmp_path, kind):
    prefix, path, needle = _bad_dataset(tmp_path, kind)
    r = nnlab("train", "classifier", "--preset=cnn", f"--dataset={prefix}:{path}", "--epochs=1")
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    assert __import__("re").search(needle, lines[0]), lines[0]
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--record_layer=fc9"], "no layer 'fc9' in this network (its layers: conv1, conv2, pool"),
        (
            ["--channels=[2,2,2,2,2,2,2,2,2,2,2,2,2,2]"],
            "need images of at least 30x30",
        ),
    ],
)
def test_bad_conv_settings(nnlab, runs, args, needle):
    r = nnlab("train", "classifier", "--preset=cnn", "--dataset=mnist-sample", *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not runs.exists() or not any(runs.iterdir())


def test_conv_vae_too_small_for_its_strides(nnlab, runs, tmp_path):
    np.savez(tmp_path / "s.npz", x=np.zeros((20, 6, 6), np.uint8), y=np.arange(20) % 2)
    r = nnlab("train", "vae", "--preset=conv-vae", f"--dataset=npz:{tmp_path / 's.npz'}")
    assert r.code == 2 and "stride-2 convolutions need images of at least 8x8" in r.err, r.err
    assert "these are 6x6" in r.err and not (runs.exists() and any(runs.iterdir()))


def test_image_shape_is_the_datasets(nnlab, runs):
    r = nnlab("train", "vae", "--image_shape=[3,32,32]", "--dataset=mnist-sample")
    assert r.code == 2 and "--image_shape is read from the dataset" in r.err, r.err


def test_a_named_colour_set_is_drawn_from_its_files(nnlab, runs, tmp_path, monkeypatch):
    """CIFAR-10 (a fake of its python release): trained by conv-vae, its probe images come
    back from the data files in colour at 32x32, its class names from the catalog."""
    from nnlab.render import sources
    from tests.test_fileformats import cifar_arrays, write_cifar_python

    data_dir = tmp_path / "data" / "cifar-10-batches-py"
    data_dir.mkdir(parents=True)
    for i, b in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_python(data_dir / b, *cifar_arrays(12, seed=i))
    r = nnlab("train", "vae", "--preset=conv-vae", "--dataset=cifar10", "--snapshot_every=2")
    assert r.code == 0, r.err
    opened = folders.read_run(r.out.strip(), runs)
    rec = record.load_recording(opened.run.latents, ("mu", "sd"))
    images = sources.probe_images(opened.run, opened.cfg, rec.split, rec.indices, np.arange(3))
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.uint8
    assert record.run_class_names(opened.run.latents, opened.cfg)[0] == "airplane"
    r = nnlab("report", opened.run.id)
    assert r.code == 0, r.err


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "classifier", "--dataset=cifar10"], "dataset 'cifar10' not found"),
        (["embed", "nope", "--format=parquet"], "--format=parquet: choose from npz, csv"),
    ],
)
def test_what_can_be_checked_is_refused_before_torch_loads(args, needle, tmp_path):
    """#38: `embed --format=parquet` and an offline `--dataset=cifar10` were refused after
    10-17 s of loading; now before torch is imported (timed in the closing note)."""
    import subprocess
    import sys

    script = (
        "import sys, time; t = time.perf_counter()\n"
        "from nnlab.commands.cli import main\n"
        f"try: main({args!r})\n"
        "except SystemExit as e: print(e.code, 'torch' in sys.modules, time.perf_counter() - t)\n"
    )
    env = {
        **os.environ,
        "NNLAB_OFFLINE": "1",
        "NNLAB_DATA": str(tmp_path),
        "NNLAB_RUNS": str(tmp_path),
    }
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    code, torch_loaded, seconds = r.stdout.split()
    assert (code, torch_loaded) == ("2", "False") and needle in r.stderr, r.stderr
    assert float(seconds) < 1.0


def test_a_cadence_that_leaves_a_few_frames_is_warned_before_training(nnlab, runs):
    """#38 item 7: a preset's snapshot_every longer than a small run said so at once."""
    sparse = nnlab("train", "vae", "--dataset=mnist-sample", "--snapshot_every=1000")
    assert sparse.code == 0
    assert "snapshot_every=1000 over this run's 113 steps records 2 snapshots" in sparse.err
    assert "--snapshot_every=2 records about 57" in sparse.err
    assert sparse.err.index("warning: snapshot_every") < sparse.err.index("epoch 1/1")
    dense = nnlab("train", "vae", "--dataset=mnist-sample", "--snapshot_every=11")
    assert dense.code == 0 and "warning: snapshot_every" not in dense.err
