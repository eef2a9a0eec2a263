"""nnlab's Python API (nnlab.library.writer): a user's own loop writes a run that every
read-side command reads; bad use is refused with nnlab.UsageError and leaves nothing
half-done; a killed process leaves an interrupted, readable run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nnlab
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders, metrics, record
from nnlab.training import tensorboard

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


class TinyVAE(nn.Module):
    """A 2-D Gaussian encoder on 6x6 colour images, with dropout (eval mode matters)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 16), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.mu = nn.Linear(16, 2)
        self.log_sd = nn.Linear(16, 2)

    def encode(self, x):
        h = self.drop(self.body(x))
        return self.mu(h), self.log_sd(h).exp()

    def forward(self, x):
        mu, sd = self.encode(x)
        return mu + sd * torch.randn_like(sd)


def probe(n=60, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 6, 6, generator=g)
    y = torch.arange(n) % classes
    x[:, 0] += y[:, None, None] * 0.3  # classes that differ, so their latents separate
    return x.clamp(0, 1), y


def write_run(runs, steps=30, every=5, epochs=2, **start):
    """A finished run of TinyVAE with a few snapshots, log lines and epoch lines."""
    torch.manual_seed(0)
    model = TinyVAE()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = probe()
    with nnlab.start("tiny", settings={"lr": 0.05, "dims": [16, 2]}, runs_dir=runs, **start) as run:
        run.watch(x, y, classes=["a", "b", "c"], module=model, encode=model.encode)
        step = 0
        run.snapshot(0)
        for epoch in range(1, epochs + 1):
            for _ in range(steps):
                loss = (model(x) - y[:, None].float()).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                run.log(step, loss=loss.item())
                if step % every == 0:
                    run.snapshot(step, epoch=step / steps)
            run.log_epoch(epoch, train_loss=loss.item(), test_acc=0.5 + 0.1 * epoch)
            run.checkpoint(step, model=model.state_dict(), optimizer=opt.state_dict())
    return run, model


def test_a_run_written_by_a_loop_reads_back_whole(runs):
    run, model = write_run(runs)
    opened = folders.read_run(run.id, runs)
    assert opened.meta.status == "finished" and opened.meta.model == "own"
    assert opened.cfg.settings == {"lr": 0.05, "dims": [16, 2]}
    assert set(opened.meta.final) == {"train_loss", "test_acc"}
    assert opened.meta.final["test_acc"] == pytest.approx(0.7)
    assert opened.meta.parameter_count == sum(p.numel() for p in model.parameters())
    rec = record.load_recording(run.path / "latents", ("mu", "sd?"))
    assert rec.steps.tolist() == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]
    assert rec.points.shape == (13, 60, 2) and rec.sd.shape == (13, 60, 2)
    assert rec.classes == ["a", "b", "c"] and rec.split == "probe"
    # the last snapshot is the model's posterior mean at the end, in eval mode (float16)
    model.eval()
    with torch.no_grad():
        mu, sd = model.encode(probe()[0])
    np.testing.assert_allclose(rec.points[-1], mu.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(rec.sd[-1], sd.numpy(), rtol=2e-3, atol=2e-3)
    images = record.load_images(run.path / "latents", np.arange(60))
    assert images.shape == (60, 3, 6, 6) and images.dtype == np.uint8
    lines = metrics.read(run.path / "metrics.jsonl")
    assert [m["kind"] for m in lines].count("epoch") == 2
    assert [m["step"] for m in metrics.of_kind(lines, "step")] == list(range(1, 61))
    ck = nnlab.load_checkpoint(run.id, runs_dir=runs)
    assert ck["step"] == 60 and set(ck) == {"step", "model", "optimizer"}
    with pytest.raises(nnlab.UsageError, match="use latest or step-N"):  # never a path
        nnlab.load_checkpoint(run.id, "../../../etc/x", runs_dir=runs)
    assert torch.equal(ck["model"]["mu.weight"], model.mu.weight)


def test_every_read_side_command_works_on_it(runs, nnlab, trained):
    run, _ = write_run(runs)
    r = nnlab("summary", run.id, "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["status"] == "finished" and not d["problems"]
    assert d["config"]["settings"] == {"lr": 0.05, "dims": [16, 2]}
    assert d["latent_metrics"]["end"]["ncm_accuracy"] > 0
    assert "top_mixture_overlaps" in d["latent_metrics"]["end"]  # sd recorded in 2-D
    assert d["class_names"] == ["a", "b", "c"]
    text = nnlab("summary", run.id)
    assert text.code == 0 and 'settings={"lr": 0.05' in text.out
    assert "most-overlapping classes at the end" in text.out and "a–" in text.out
    table = nnlab("summary")
    assert run.id in table.out and "test acc 0.7" in table.out
    for args in (
        ("summary", run.id, "--plot"),
        ("animate", run.id),
        ("report", run.id),
        ("export", run.id, "--to=tensorboard"),
    ):
        r = nnlab(*args, f"--runs_dir={runs}")
        if args[0] == "export" and not tensorboard.available():  # the extra's one line
            assert r.code == 2 and 'pip install -e ".[tensorboard]"' in r.err, r.err
            continue
        assert r.code == 0, (args, r.err)
        for path in r.out.split():
            assert Path(path).exists()
    assert "density" in nnlab("animate", run.id).out  # sd in 2-D: class densities
    # with an nnlab-trained VAE side by side (different stores: the other by path)
    root, ids = trained
    import shutil

    shutil.copytree(root / ids["vae"], runs / ids["vae"])
    r = nnlab("animate", run.id, f"--compare={ids['vae']}")
    assert r.code == 0, r.err
    assert Path(r.out.split()[0]).exists()


def test_what_rebuilds_the_network_says_why_not(runs, nnlab):
    run, _ = write_run(runs, steps=5, epochs=1)
    for args in (
        ("embed", run.id),
        ("decode", run.id),
        ("masks", run.id),
        ("train", "--resume", run.id),
    ):
        r = nnlab(*args)
        assert r.code == 2, args
        assert r.err.count("\n") == 1 and "written by your own code" in r.err, r.err
    r = nnlab("train", "own")
    assert r.code == 2 and "Python API" in r.err


def test_colour_probe_images_reach_the_report_and_projector(runs, nnlab):
    run, _ = write_run(runs, steps=5, epochs=1)
    r = nnlab("report", run.id)
    page = Path(r.out.strip()).read_text()
    assert '"shape":[3,6,6]' in page.replace(" ", "")
    if not tensorboard.available():
        pytest.skip("the projector's half needs the tensorboard extra")
    r = nnlab("export", run.id, "--to=tensorboard")
    assert r.code == 0, r.err
    sprites = list(Path(r.out.strip()).rglob("sprite.png"))
    assert sprites
    import imageio.v3 as iio

    sprite = iio.imread(sprites[0])
    assert sprite.shape[2] in (3, 4) and sprite.shape[0] % 6 == 0  # colour, 6-pixel cells


def test_a_hooked_layer_is_recorded_and_the_mode_restored(runs):
    model = TinyVAE().train()
    x, y = probe()
    run = nnlab.start(runs_dir=runs)
    run.watch(x, y, module=model, layer="body")
    run.snapshot(0)
    assert model.training  # back in train mode
    assert all(p.grad is None for p in model.parameters())  # no graph, no gradients
    run.finish()
    rec = record.load_recording(run.path / "latents", ("mu", "sd?"))
    with torch.no_grad():
        expected = model.body(x)
    assert rec.sd is None and rec.points.shape == (1, 60, 16)
    np.testing.assert_allclose(rec.points[0], expected.numpy(), rtol=2e-3, atol=2e-3)
    assert rec.classes == ["0", "1", "2"]  # no names given: the labels' numbers


def test_the_context_manager_marks_failures_and_raises_on(runs):
    with pytest.raises(ZeroDivisionError):
        with nnlab.start("boom", runs_dir=runs) as run:
            run.log(1, loss=1.0)
            1 / 0  # noqa: B018
    meta = folders.open_run(run.id, runs).meta()
    assert meta.status == "failed" and meta.ended
    assert metrics.read(run.path / "metrics.jsonl")[0]["loss"] == 1.0
    with pytest.raises(KeyboardInterrupt):
        with nnlab.start("stop", runs_dir=runs) as run2:
            raise KeyboardInterrupt
    assert folders.open_run(run2.id, runs).meta().status == "interrupted"
    assert not folders.open_run(run2.id, runs).is_running()


def _probe_file(run):
    return run.path / "latents" / "probe.npz"


def test_bad_use_is_refused_and_writes_nothing(runs):
    model = TinyVAE()
    x, y = probe()
    run = nnlab.start(runs_dir=runs)
    bad = nnlab.UsageError
    assert issubclass(bad, ValueError)
    with pytest.raises(bad, match=r"labels: expected one label per image \(60\)"):
        run.watch(x, y[:50], module=model, encode=model.encode)
    with pytest.raises(bad, match="label 2 but only 2 class names"):
        run.watch(x, y, classes=["a", "b"], module=model, encode=model.encode)
    with pytest.raises(bad, match="no module 'bdy'.*did you mean 'body'"):
        run.watch(x, y, module=model, layer="bdy")
    with pytest.raises(bad, match="C 1 or 3"):
        run.watch(torch.rand(60, 5, 6, 6), y, encode=model.encode)
    assert not _probe_file(run).exists()  # nothing written by a refused watch
    with pytest.raises(bad, match="call watch"):
        run.snapshot(0)
    shape = {"width": 2}

    def encode(batch):  # latents as wide as shape["width"] says
        return torch.zeros(len(batch), shape["width"])

    run.watch(x, y, encode=encode)
    run.snapshot(0)
    shape["width"] = 3
    with pytest.raises(bad, match="latents of 3 dimensions, earlier snapshots 2 dimensions"):
        run.snapshot(1)
    with pytest.raises(bad, match="step 0 goes backwards"):
        run.snapshot(0)
    shape["width"] = 2
    run.encoder.encode = lambda b: torch.full((len(b), 2), float("nan"))
    with pytest.raises(bad, match="NaN or infinite; refused, nothing recorded"):
        run.snapshot(2)
    assert len(run.recorder.pending) == 1  # only step 0's
    run.log(5, loss=1.0)
    with pytest.raises(bad, match="log: step 4 goes backwards"):
        run.log(4, loss=1.0)
    with pytest.raises(bad, match="not finite"):
        run.log(6, loss=float("inf"))
    with pytest.raises(bad, match="'kind' is a position"):
        run.log(6, kind=3)
    with pytest.raises(bad, match="checkpoint: model is a module; save model.state_dict"):
        run.checkpoint(6, model=model)
    with pytest.raises(bad, match="settings: not JSON-able"):
        nnlab.start(settings={"f": print}, runs_dir=runs)
    with pytest.raises(bad, match="name='a b'"):
        nnlab.start("a b", runs_dir=runs)
    run.finish()
    with pytest.raises(bad, match="is finished already"):
        run.log(7, loss=1.0)
    with pytest.raises(bad, match="is finished already"):
        run.snapshot(7)
    assert len(folders.list_run_ids(runs)) == 1  # refused starts left no run behind
    rec = record.load_recording(run.path / "latents", ("mu", "sd?"))
    assert rec.steps.tolist() == [0]


KILLED = """
import os, signal, torch, nnlab
x = torch.rand(40, 1, 5, 5); y = torch.arange(40) % 4
lin = torch.nn.Linear(25, 3)
run = nnlab.start("killed", settings={"a": 1})
run.watch(x, y, module=lin, encode=lambda b: lin(b.flatten(1)))
for step in range(1, 51):
    run.log(step, loss=1.0 / step)
    if step % 5 == 0:
        run.snapshot(step)
    if step == 30:
        run.flush()
print(run.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_killed_loop_leaves_an_interrupted_readable_run(runs, nnlab, tmp_path):
    env = dict(os.environ, NNLAB_RUNS=str(runs), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", KILLED], capture_output=True, text=True, env=env)
    assert r.returncode == -signal.SIGKILL, r.stderr
    run_id = r.stdout.strip()
    d = nnlab("summary", run_id, "--json").json()
    assert d["status"] == "interrupted" and not d["problems"], d
    lines = metrics.read(runs / run_id / "metrics.jsonl")
    assert [m["step"] for m in lines] == list(range(1, 31))  # up to the last flush
    rec = record.load_recording(runs / run_id / "latents", ("mu", "sd?"))
    assert rec.steps.tolist() == [5, 10, 15, 20, 25, 30]
    assert not list((runs / run_id).rglob(".tmp*"))
    assert nnlab("animate", run_id).code == 0


def _readme_example() -> str:
    section = API_PAGE.read_text()
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


@pytest.mark.slow
def test_the_readme_example_runs_and_the_commands_draw_it(runs, nnlab, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_readme_example())
    env = dict(os.environ, NNLAB_RUNS=str(runs), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    d = nnlab("summary", "latest", "--json").json()
    assert d["model"] == "own" and d["status"] == "finished"
    assert d["latent_metrics"]["end"]["ncm_accuracy"] > 0
    for args in (("animate", "latest"), ("report", "latest")):
        r = nnlab(*args)
        assert r.code == 0 and Path(r.out.split()[0]).exists(), r.err


def test_the_example_in_the_package_docstring_is_the_api(runs):
    """nnlab's docstring names the API as it is."""
    doc = nnlab.__doc__
    for name in ("start", "watch", "snapshot", "log_epoch", "checkpoint", "LatentCallback"):
        assert name in doc
    for name in nnlab.__all__:
        if name != "LatentCallback":  # needs the lightning extra (tests/test_lightning.py)
            assert getattr(nnlab, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'strat'"):
        nnlab.strat  # noqa: B018


def test_bfloat16_snapshots_beside_training_equal_synchronous_ones(runs):
    """On two cores or more, precision="bfloat16" encodes on a thread from a copy of the
    weights at each step: the recording is the one taken in line, and torch gets its
    threads back at finish."""
    from nnlab.library.probe import Encoder

    threads = torch.get_num_threads()
    torch.manual_seed(0)
    model = TinyVAE()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = probe()
    run = nnlab.start(runs_dir=runs)
    run.watch(x, y, module=model, encode=model.encode, precision="bfloat16")
    assert (run.thread is not None) == ((os.cpu_count() or 1) >= 2)
    inline = Encoder(x, module=model, encode=model.encode, precision="bfloat16")
    expected = []
    for step in range(1, 13):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 3 == 0:
            run.snapshot(step)
            expected.append(inline().points.astype(np.float16))
    run.finish()
    assert torch.get_num_threads() == threads
    rec = record.load_recording(run.path / "latents", ("mu", "sd?"))
    assert rec.steps.tolist() == [3, 6, 9, 12]
    np.testing.assert_array_equal(rec.points, np.stack(expected).astype(np.float32))
    if run.thread is not None or (os.cpu_count() or 1) >= 2:  # a copy is needed
        with pytest.raises(nnlab.UsageError, match="method of module"):
            nnlab.start(runs_dir=runs).watch(
                x, y, module=model, encode=lambda b: model.encode(b), precision="bfloat16"
            )


def test_odd_numbers_and_names_are_refused_in_one_line(runs):
    """#37: a step of 2**53 (meta.json could not hold it), an int beyond any float, an sd of
    0, latents beyond float16's range, a label implying a billion classes, a name ending
    in a newline: each a UsageError naming it, nothing recorded or created."""
    bad = nnlab.UsageError
    with pytest.raises(bad, match="name='ok\\\\n'"):
        nnlab.start("ok\n", runs_dir=runs)
    assert not folders.list_run_ids(runs)
    run = nnlab.start(runs_dir=runs)
    with pytest.raises(bad, match="step 9007199254740992 is too large"):
        run.log(2**53, loss=1.0)
    with pytest.raises(bad, match="step .* is too large"):
        run.log(np.uint64(2**64 - 1), loss=1.0)
    with pytest.raises(bad, match="loss=an integer beyond any float: not finite"):
        run.log(1, loss=10**400)
    x, y = torch.rand(4, 1, 3, 3), torch.arange(4) % 2
    with pytest.raises(bad, match="implies 1,000,000,001 classes; nnlab draws at most 10,000"):
        run.watch(x, torch.tensor([0, 1, 0, 10**9]), encode=lambda b: b.flatten(1))
    spread = {"sd": torch.ones(4, 2)}
    run.watch(x, y, encode=lambda b: (torch.zeros(len(b), 2), spread["sd"]))
    run.snapshot(0)
    spread["sd"] = torch.zeros(4, 2)
    with pytest.raises(bad, match="values of 0 or below"):
        run.snapshot(1)
    spread["sd"] = torch.full((4, 2), 1e5)
    with pytest.raises(bad, match=r"8 latent values .* beyond what the recording stores"):
        run.snapshot(2)
    run.log(3, loss=1.0)
    run.finish()
    assert record.load_recording(run.path / "latents", ("mu", "sd")).steps.tolist() == [0]
    assert folders.open_run(run.id, runs).meta().status == "finished"  # the run is whole


def test_a_recording_refuses_what_its_dtype_cannot_store(tmp_path):
    rec = record.Recorder(tmp_path, ("mu", "sd?"), "float16")
    rec.add(0, 0.0, np.full((3, 2), 6e4, np.float32))  # float16 holds up to 65,504
    with pytest.raises(NnlabError, match="2 latent values beyond what float16 stores"):
        rec.add(1, 0.1, np.array([[7e4, 0], [0, -7e4], [1, 1]], np.float32))
    assert len(rec.pending) == 1
    wide = record.Recorder(tmp_path, ("mu",), "float32")
    wide.add(1, 0.1, np.full((3, 2), 7e4, np.float32))  # float32 stores it


def test_more_bad_use_is_a_usage_error(runs, tmp_path):
    """#37 item 13: an empty probe, a negative image_shape, settings nested 500 deep and a
    runs_dir that is a file are each a one-line UsageError, as promised."""
    bad = nnlab.UsageError
    run = nnlab.start(runs_dir=runs)
    with pytest.raises(bad, match="the probe set is empty"):
        run.watch(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long), encode=lambda b: b)
    with pytest.raises(bad, match=r"image_shape=\(-8, -8\): sizes are whole numbers from 1"):
        run.watch(torch.rand(4, 16), torch.arange(4) % 2, encode=lambda b: b, image_shape=(-8, -8))
    deep: dict = {}
    cur = deep
    for _ in range(500):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(bad, match="nested deeper than 20 levels"):
        nnlab.start(settings=deep, runs_dir=runs)
    (tmp_path / "store").write_text("a file")
    with pytest.raises(bad, match="not a folder"):
        nnlab.start(runs_dir=tmp_path / "store")
    run.finish()


def test_a_snapshot_without_an_epoch_gets_its_own_and_summary_says_who_resumes(runs, nnlab):
    """#38 item 3: an own run's frame said the epoch of the last log_epoch, and summary
    offered a resume that nnlab train refuses."""
    import nnlab as api  # `nnlab` is the command line here

    model = TinyVAE()
    x, y = probe()
    with api.start("tiny", runs_dir=runs) as run:
        run.watch(x, y, module=model, encode=model.encode)
        run.snapshot(5)  # in the first epoch: no steps per epoch known yet
        run.log_epoch(1, step=100, loss=1.0)
        run.snapshot(150)  # half-way through the second epoch
        run.log_epoch(2, step=200, loss=0.5)
        run.snapshot(260)
        run.checkpoint(260, model=model.state_dict())
    read = api.open(run.id, runs_dir=runs)
    assert list(read.epochs) == [0.0, 1.5, 2.6]
    text = nnlab("summary", run.id, f"--runs_dir={runs}").out
    assert "a checkpoint at step 260, for your own code to resume from" in text
    assert "can resume" not in text


class Conv(nn.Module):
    """Colour 6x6 images through a convolution, two linear layers and a head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc1 = nn.Linear(4 * 4 * 4, 8)
        self.fc2 = nn.Linear(8, 3)
        self.pair = nn.LSTM(2, 2, batch_first=True)  # returns a tuple: not recordable

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


def test_watch_records_several_layers_in_the_same_pass(runs, nnlab):
    """#39: watch(layers=[...]): one pass, each layer kept (a feature map as its channels'
    means), every snapshot; nnlab layers measures them (no collapse: nnlab has no head)."""
    import nnlab as api

    torch.manual_seed(0)
    model = Conv()
    x, y = probe()
    calls = []
    model.register_forward_pre_hook(lambda m, i: calls.append(1))
    with api.start(runs_dir=runs) as run:
        run.watch(x, y, module=model, layer="fc2", layers=["conv", "fc1", "fc2"], batch_size=25)
        for step in range(0, 50, 10):
            run.snapshot(step)
    assert len(calls) == 5 * 3  # one pass (three batches of 25) a snapshot
    from nnlab.store import layers

    rec = layers.load_layers(run.path / "layers", run.path / "latents")
    assert rec.names == ["conv", "fc1", "fc2"] and rec.head_weight is None
    assert [a.shape[2] for a in rec.layers.values()] == [4, 8, 3]
    with torch.no_grad():
        maps = model.conv(x)  # the module's own output (the ReLU is outside it)
    np.testing.assert_allclose(rec.layers["conv"][-1], maps.mean(dim=(2, 3)), atol=2e-3)
    latent = record.load_recording(run.path / "latents", ("mu", "sd?")).points
    np.testing.assert_allclose(rec.layers["fc2"], latent, atol=2e-3)
    m = nnlab("layers", run.id, "--json").json()
    assert m["names"] == ["conv", "fc1", "fc2"] and m["collapse"] is None
    assert nnlab("layers", run.id).code == 0


@pytest.mark.parametrize(
    "layers, needle",
    [
        (["fc1", "fc9"], "no module 'fc9' in Conv"),
        (["fc1", "pair"], "module 'pair' did not run in forward()"),
        (["fc1"], "name two or more"),
        ("fc1,fc2", "takes a list of module names"),
    ],
)
def test_bad_watched_layers_are_one_line(runs, layers, needle):
    x, y = probe()
    with pytest.raises(nnlab.UsageError, match=needle) as e:
        with nnlab.start(runs_dir=runs) as run:
            run.watch(x, y, module=Conv(), layer="fc2", layers=layers)
            run.snapshot(0)
    assert "\n" not in str(e.value)


def test_a_layer_returning_a_tuple_is_refused_in_one_line(runs):
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(6, 4, batch_first=True)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            out, _ = self.rnn(x.mean(1))
            return self.head(out[:, -1])

    x, y = probe()
    with pytest.raises(nnlab.UsageError, match="module 'rnn' returns a tuple, not a tensor"):
        with nnlab.start(runs_dir=runs) as run:
            run.watch(x, y, module=Recurrent(), layer="head", layers=["rnn", "head"])
            run.snapshot(0)
