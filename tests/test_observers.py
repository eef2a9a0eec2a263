"""The training loop's observers: each is called at its moments in the documented order,
keeps its own part of the checkpoint, and a run's observers are the ones its config asks
for. A new observer (the every-layer recorder) joins by the same interface."""

from __future__ import annotations

import torch

from nnlab.config.config import build
from nnlab.helpers.console import stderr_console
from nnlab.store import folders
from nnlab.store.meta import Meta
from nnlab.training.observers import (
    LiveTensorBoard,
    Observer,
    PermutedTasks,
    Plasticity,
    PruningReports,
    Publishing,
    Recording,
    UnitHealth,
)
from nnlab.training.pruning import Reports
from nnlab.training.trainer import Trainer, load_splits


def _trainer(runs, reports=None, **overrides):
    cfg = build(
        "classifier",
        overrides={
            "dataset": "mnist-sample",
            "sizes": "784,12,10",
            "epochs": "2",
            "batch_size": "600",
            "snapshot_every": "3",
            "probe_size": "50",
            **overrides,
        },
    )
    run = folders.create_run(runs, "classifier")
    run.write_meta(Meta(1, id=run.id, model="classifier"))
    splits = load_splits(cfg, torch.device("cpu"), stderr_console())
    trainer = Trainer(run, cfg, splits, torch.device("cpu"), reports=reports)
    trainer.recorder.write_probe(trainer.probe_labels, trainer.probe_split_index, "test")
    run.checkpoints.mkdir()  # as a new run is set up (nnlab.commands.train)
    return trainer


class Tape(Observer):
    """Writes down every call, with the loop's position."""

    def __init__(self):
        self.calls = []

    def _note(self, name, trainer, *extra):
        self.calls.append((name, trainer.epoch, trainer.step, *extra))

    def fit_start(self, trainer):
        self._note("fit_start", trainer, trainer.fresh)

    def ready(self, trainer):
        self._note("ready", trainer)

    def step_end(self, trainer, values):
        self._note("step_end", trainer)

    def epoch_line(self, trainer, line):
        line["tape"] = 1.0
        self._note("epoch_line", trainer)

    def epoch_end(self, trainer, line, done):
        self._note("epoch_end", trainer, done)

    def epoch_saved(self, trainer, line, done):
        self._note("epoch_saved", trainer, done)

    def before_flush(self, trainer, final):
        self._note("before_flush", trainer, final)

    def fit_end(self, trainer):
        self._note("fit_end", trainer)

    def state_dict(self):
        return {"tape": len(self.calls)}

    def load_state_dict(self, ck):
        self.loaded = ck["tape"]


def test_the_moments_come_in_order_and_state_rides_in_the_checkpoint(runs):
    trainer = _trainer(runs)
    tape = Tape()
    trainer.observers.append(tape)
    line = trainer.fit()
    names = [c[0] for c in tape.calls]
    spe = trainer.steps_per_epoch  # 6 steps of 600 images
    assert tape.calls[0] == ("fit_start", 0, 0, True)  # a new run
    assert tape.calls[1] == ("before_flush", 0, 0, False)  # its first checkpoint
    assert tape.calls[2] == ("ready", 0, 0)
    assert names.count("step_end") == 2 * spe and names[-1] == "fit_end"
    epoch_one = names.index("epoch_line")
    assert names[epoch_one : epoch_one + 4] == [
        "epoch_line",
        "epoch_end",
        "before_flush",
        "epoch_saved",
    ]
    assert ("epoch_end", 2, 2 * spe, True) in tape.calls and line["tape"] == 1.0
    ck = torch.load(trainer.run.checkpoint_file("final"), weights_only=True)
    final_flush = tape.calls.index(("before_flush", 2, 2 * spe, True))
    assert ck["tape"] == final_flush + 1  # its state as the final checkpoint took it
    trainer.load_state_dict(ck)
    assert tape.loaded == ck["tape"]
    # the recording's state is its own: the newest snapshot, the chunks on disk
    assert ck["last_snapshot_step"] == 2 * spe and ck["latent_chunks"] >= 1
    trainer.run.release()


def test_a_runs_observers_are_what_its_config_asks_for(runs):
    plain = _trainer(runs)
    assert [type(o) for o in plain.observers] == [UnitHealth, Recording, Publishing]
    plain.run.release()
    reports = Reports("test_acc", 0, lambda *_: False)
    every = _trainer(runs, reports, cbp_rate="1e-3", permute_every="1", tensorboard="false")
    kinds = [type(o) for o in every.observers]
    assert kinds == [UnitHealth, Plasticity, PermutedTasks, Recording, PruningReports, Publishing]
    assert every.observers[2] is every.tasks and every.observers[3] is every.recording
    every.run.release()


def test_permuted_tasks_show_each_task_its_own_pixels(runs):
    cfg = build("classifier", overrides={"permute_every": "1", "epochs": "3"})
    tasks = PermutedTasks(cfg, torch.device("cpu"))
    x = torch.arange(2 * 784).reshape(2, 784)
    assert tasks.images(x, 0) is x and tasks.order(0) is None  # task 0: as they are
    one = tasks.images(x, 1)
    assert not torch.equal(one, x) and torch.equal(one.sort(1).values, x)
    assert torch.equal(tasks.images(x, 1), one)  # the same order each time


def test_tensorboard_observer_is_off_until_asked():
    board = LiveTensorBoard()
    board.before_flush(None, final=False)  # no board yet: nothing to write
    board.fit_end(None)
    assert board.board is None


def test_publishing_writes_lines_and_snapshots_between_checkpoints(runs):
    from nnlab.store import metrics, record

    trainer = _trainer(runs, checkpoint_every_steps="0", log_every="1")
    trainer.observers[-1].seconds = 0.0  # publish after every step
    seen = []

    class Reader(Observer):  # what a reader of the run's files sees after each step
        def step_end(self, trainer, values):
            if trainer.batch < trainer.steps_per_epoch:  # not yet at the epoch's checkpoint
                steps = [line["step"] for line in metrics.read(trainer.run.metrics)]
                seen.append((trainer.step, max(steps), record.load_steps(trainer.run.latents)[-1]))

    trainer.observers.append(Reader())
    trainer.fit()
    assert seen and all(s == m for s, m, _ in seen)  # each step's line is on disk at once
    assert all(last == (s // 3) * 3 for s, _, last in seen)  # and its latest snapshot
    trainer.run.release()


def test_the_layer_recording_resumes_exactly(nnlab, tmp_path, monkeypatch):
    """Interrupted mid-epoch after its first checkpoint and resumed: the recording of
    several layers is the one an uninterrupted run writes (chunks written after the
    checkpoint are dropped, the snapshots taken again)."""
    import os
    import signal

    import numpy as np

    from nnlab.store import layers
    from nnlab.training import trainer as loop

    args = [
        "train", "classifier", "--dataset=mnist-sample", "--sizes=[784,16,8,10]", "--epochs=1",
        "--snapshot_every=20", "--probe_size=100", "--record_layers=all",
        "--checkpoint_every_steps=50",
    ]  # fmt: skip
    straight = nnlab(*args, f"--runs_dir={tmp_path / 'a'}").out.strip()
    original = loop.Trainer.train_step

    def interrupt_at_77(self, idx, *rest):
        out = original(self, idx, *rest)
        if self.step + 1 == 77:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop.Trainer, "train_step", interrupt_at_77)
    r = nnlab(*args, f"--runs_dir={tmp_path / 'b'}")
    monkeypatch.setattr(loop.Trainer, "train_step", original)
    assert r.code == 130, r.err
    resumed = r.out.strip()
    assert nnlab("train", "--resume", resumed, f"--runs_dir={tmp_path / 'b'}").code == 0
    a = folders.read_run(straight, tmp_path / "a").run
    b = folders.read_run(resumed, tmp_path / "b").run
    ra = layers.load_layers(a.layers, a.latents)
    rb = layers.load_layers(b.layers, b.latents)
    assert ra.steps.tolist() == rb.steps.tolist() and len(ra) > 10
    for name in ra.names:
        np.testing.assert_array_equal(ra.layers[name], rb.layers[name])
    np.testing.assert_array_equal(ra.head_weight, rb.head_weight)


def test_one_pass_records_both_and_changes_nothing_else(nnlab, tmp_path, monkeypatch):
    """With --record_layers the latent recording comes from the layers' forward pass (one
    pass, not two); it holds what a run without them records, and training is the same."""
    import numpy as np

    from nnlab.store import metrics
    from nnlab.training import observers

    base = [
        "train", "classifier", "--dataset=mnist-sample", "--sizes=[784,16,8,10]", "--epochs=1",
        "--snapshot_every=40", "--probe_size=100", "--loss=ce", "--activation=relu",
    ]  # fmt: skip
    encoded = []
    original = observers.encode_probe
    monkeypatch.setattr(observers, "encode_probe", lambda *a: encoded.append(1) or original(*a))
    for layer in ("2", "3"):  # a hidden layer, and the outputs (softmax of the logits)
        ids = []
        for extra in ([], ["--record_layers=h1,out"]):
            encoded.clear()
            r = nnlab(*base, f"--latent_layer={layer}", *extra, f"--runs_dir={tmp_path}")
            assert r.code == 0, r.err
            assert bool(encoded) == (not extra)  # joined: no pass of the latent's own
            ids.append(folders.read_run(r.out.strip(), tmp_path).run)
        plain, joined = ids

        def chunks(run):
            return np.concatenate([np.load(p)["act"] for p in sorted(run.latents.glob("chunk-*"))])

        np.testing.assert_allclose(chunks(plain), chunks(joined), atol=2e-3)
        assert chunks(plain).shape == chunks(joined).shape
        drop = ("time", "wall")  # timings differ; every number of training is the same
        lines = [
            [
                {k: v for k, v in line.items() if not k.startswith(drop)}
                for line in metrics.read(r.metrics)
            ]
            for r in (plain, joined)
        ]
        assert lines[0] == lines[1]


def test_no_publishing_leaves_a_training_without_its_publishing_observer(tmp_path, monkeypatch):
    """What benchmarks/run.py's publishing row measures against (NNLAB_NO_PUBLISHING): the
    same training, only its writes between checkpoints gone."""
    from nnlab.helpers import testhooks

    kinds = {}
    for off in ("", "1"):
        monkeypatch.setenv(testhooks.NO_PUBLISHING, off)
        kinds[off] = [type(o) for o in _trainer(tmp_path / f"runs{off}").observers]
    assert kinds[""][-1] is Publishing and Publishing not in kinds["1"]
    assert kinds[""][:-1] == kinds["1"]
