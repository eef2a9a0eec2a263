"""Reliability and security: kills, resume, crash consistency, hostile input, corruption."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlab import families
from nnlab.helpers import files, testhooks
from nnlab.store import folders, metrics, record
from tests.conftest import FAST
from tests.test_train import _assert_same_run

# 113 steps per epoch on the sample (452 in all); checkpoints every 20 steps, snapshots every 10
KILL_RUN = [
    "train",
    "vae",
    *FAST,
    "--epochs=4",
    "--checkpoint_every_steps=20",
    "--snapshot_every=10",
    "--seed=7",
]


def _spawn(args, runs, **env):
    e = dict(os.environ, NNLAB_RUNS=str(runs), PYTHONUNBUFFERED="1", **env)
    return subprocess.Popen(
        [sys.executable, "-m", "nnlab", *args],
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _only_run(runs, exclude=()):
    ids = [p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    (run_id,) = [i for i in ids if i not in exclude]
    return run_id


def _resume_until_done(nnlab, run_id):
    r = nnlab("train", "--resume", run_id)
    assert r.code == 0, r.err
    assert not list((folders.runs_root(None) / run_id).rglob(".tmp-*"))


@pytest.mark.slow
def test_sigkill_at_random_steps_then_resume_is_bit_exact(nnlab, runs):
    reference = nnlab(*KILL_RUN).out.strip()
    rng = random.Random()
    # one kill at a random moment of training, one inside a checkpoint write (temp file
    # written, not yet renamed: the old latest.pt must survive and be used)
    for env, delay in (({}, rng.uniform(0.1, 0.6)), ({testhooks.KILL_IN_WRITE: "4"}, None)):
        before = {p.name for p in runs.iterdir()}
        p = _spawn(KILL_RUN, runs, **env)
        if delay is None:
            p.wait(timeout=120)
        else:
            deadline = time.time() + 60
            while time.time() < deadline and not list(runs.glob("*/checkpoints/latest.pt"))[1:]:
                time.sleep(0.05)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=60)
        assert p.returncode == -signal.SIGKILL
        run_id = _only_run(runs, exclude=before)
        d = nnlab("summary", run_id, "--json").json()
        assert d["status"] == "interrupted" and isinstance(d["progress"]["resumable_step"], int)
        _resume_until_done(nnlab, run_id)
        _assert_same_run(runs, reference, run_id)


@pytest.mark.slow
def test_readers_see_consistent_state_while_training_writes(nnlab, runs):
    args = [
        "train",
        "classifier",
        "--preset=latent3",
        *FAST,
        "--epochs=6",
        "--snapshot_every=15",
        "--checkpoint_every_steps=30",
    ]
    p = _spawn(args, runs)
    reads = 0
    try:
        while p.poll() is None:
            if list(runs.glob("*/latents/chunk-*.npz")):
                run_id = _only_run(runs)
                for args in (
                    ("summary", run_id, "--json"),
                    ("summary",),
                    ("animate", run_id, "--every=50", "--dpi=30"),
                ):
                    r = nnlab(*args)
                    assert r.code == 0, (args, r.err)
                reads += 1
            time.sleep(0.05)
    finally:
        p.wait(timeout=120)
    assert p.returncode == 0 and reads >= 1


class _Sentinel:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("command", ["masks", "embed", "resume"])
def test_planted_pickle_checkpoint_is_refused(nnlab, runs, tmp_path, command):
    run_id = nnlab("train", "classifier", "--preset=linear-mse", *FAST, "--epochs=1").out.strip()
    sentinel = tmp_path / "pwned"
    for name in ("latest.pt", "final.pt"):
        torch.save(
            {"model": _Sentinel(str(sentinel))},
            runs / run_id / "checkpoints" / name,
            pickle_module=pickle,
        )
    # (a finished run's resume loads nothing: --epochs=2 makes it load the checkpoint)
    resume = ["train", "--resume", run_id, "--epochs=2"]
    r = nnlab(*(resume if command == "resume" else [command, run_id]))
    assert r.code != 0 and "cannot be loaded safely" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not sentinel.exists()


def _hostile_ids(n=60, seed=0):
    rng = random.Random(seed)
    fixed = [
        "../x",
        "/etc",
        "a/../../b",
        "%2e%2e",
        "a\x00b",
        "a\nb",
        "x" * 300,
        "..",
        ".",
        "../../../../tmp/evil",
        "~root",
        "a/b",
        "\\..\\x",
        " ",
        "-",
        "—",
        "é",
    ]
    alphabet = './\\%~\x00\n\t :*?"<>|a1-_'
    return fixed + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(n)
    ]


def test_hostile_run_ids_fuzz(nnlab, runs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (runs).mkdir()
    (runs / "link").symlink_to(outside, target_is_directory=True)
    snapshot = sorted(p.name for p in tmp_path.rglob("*"))
    for bad in [*_hostile_ids(), "link"]:
        if folders.ID_RE.match(bad) and not bad.isdigit() and bad != "link":
            continue  # a generated id that happens to be valid is simply unknown
        for args in (
            ("summary", bad),
            ("animate", bad),
            ("masks", bad),
            ("embed", bad),
            ("train", "--resume", bad),
        ):
            r = nnlab(*args)
            assert r.code == 2, (args, r)
            assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == snapshot  # nothing written anywhere
    assert not list(outside.iterdir())


@pytest.mark.slow
def test_same_name_twice_exactly_one_proceeds(runs):
    args = ["train", "classifier", "--preset=latent3", *FAST, "--epochs=3", "--name=twin"]
    a = _spawn(args, runs)
    deadline = time.time() + 60
    while time.time() < deadline and not list(runs.glob(".locks/*.lock")):
        time.sleep(0.02)
    t0 = time.time()
    b = _spawn(args, runs)
    out_b, err_b = b.communicate(timeout=60)
    elapsed = time.time() - t0
    out_a, err_a = a.communicate(timeout=120)
    assert a.returncode == 0, err_a
    assert b.returncode != 0 and "in use by another nnlab process" in err_b
    assert f"(pid {a.pid}, since " in err_b  # names the holder, in words
    assert elapsed < 1.5, elapsed  # fails fast, before loading torch and the data
    assert len([p for p in runs.iterdir() if not p.name.startswith(".")]) == 1


@pytest.mark.slow
def test_two_different_runs_in_parallel(runs):
    procs = [
        _spawn(["train", "vae", *FAST, f"--seed={s}", "--snapshot_every=20"], runs) for s in (1, 2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    ids = [p.name for p in runs.iterdir() if not p.name.startswith(".")]
    assert len(ids) == 2
    for i in ids:
        assert folders.open_run(i, runs).meta().status == "finished"


CORRUPTIONS = ["truncate", "bitflip", "empty", "delete"]


def _corrupt(path, how, rng):
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bitflip":
        b = bytearray(data)
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(b))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


@pytest.mark.slow
def test_corrupted_files_give_one_line_errors_or_visible_damage(nnlab, runs):
    import shutil

    run_id = nnlab(
        "train", "classifier", "--preset=linear-mse", *FAST, "--epochs=1", "--snapshot_every=100"
    ).out.strip()
    pristine = runs.parent / "pristine"
    shutil.copytree(runs / run_id, pristine)
    files = sorted(
        p.relative_to(pristine) for p in pristine.rglob("*") if p.is_file() and p.name != "lock"
    )
    rng = random.Random(0)
    commands = [
        ("summary",),
        ("summary", run_id, "--json"),
        ("animate", run_id, "--dpi=30"),
        ("masks", run_id),
        ("embed", run_id),
    ]
    for rel in files:
        for how in CORRUPTIONS:
            shutil.rmtree(runs / run_id)
            shutil.copytree(pristine, runs / run_id)
            _corrupt(runs / run_id / rel, how, rng)
            for args in commands:
                r = nnlab(*args)
                where = f"{rel} {how} {args}"
                assert "Traceback" not in r.err, where
                if r.code != 0:
                    assert r.code == 2, (where, r.err)
                    lines = r.err.strip().splitlines()
                    assert len(lines) == 1 and rel.name in lines[0], (where, r.err)
                elif args[0] == "summary" and len(args) == 3 and how != "bitflip":
                    d = r.json()
                    if rel.suffix in (".npz", ".pt", ".jsonl") and rel.name != "probe.npz":
                        assert d["problems"] and d["status"] == "damaged", where


def test_disk_full_keeps_previous_checkpoint(nnlab, runs, monkeypatch):
    import errno

    calls = {"n": 0}

    def disk_full_on_third_checkpoint(path):
        # runs inside files.write_bytes after the temp file is written, before the rename
        if path.name == "latest.pt":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")

    real = testhooks.kill_in_write
    monkeypatch.setattr(testhooks, "kill_in_write", disk_full_on_third_checkpoint)
    r = nnlab("train", "vae", *FAST, "--checkpoint_every_steps=20", "--snapshot_every=0")
    monkeypatch.setattr(testhooks, "kill_in_write", real)
    assert r.code == 1 and "No space left on device" in r.err and "latest.pt" in r.err
    assert len(r.err.strip().splitlines()) <= 2 and "Traceback" not in r.err
    run_id = r.out.strip()
    ck = files.load_checkpoint(runs / run_id / "checkpoints" / "latest.pt")
    assert ck["step"] == 20  # steps 0 and 20 were written; the third write failed
    assert not list((runs / run_id).rglob(".tmp-*"))
    assert nnlab("train", "--resume", run_id).code == 0


def test_newer_format_refused_by_every_reader(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=50").out.strip()
    meta = files.read_json(runs / run_id / "meta.json")
    files.write_json(runs / run_id / "meta.json", {**meta, "format": 99})
    for args in (
        ("summary", run_id),
        ("animate", run_id),
        ("embed", run_id),
        ("train", "--resume", run_id),
    ):
        r = nnlab(*args)
        assert r.code == 2 and "newer nnlab" in r.err, (args, r.err)


def test_recording_float16_storage_budget(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=4").out.strip()
    rec = record.load_recording(runs / run_id / "latents", ("mu", "sd"))
    raw = sum(
        np.load(p)["mu"].nbytes + np.load(p)["sd"].nbytes
        for p in record.chunk_files(runs / run_id / "latents")
    )
    assert raw == 8 * len(rec) * len(rec.labels)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault,missing",
    [
        # checkpoint writes: latest.pt at step 0 (1), latest.pt at the end (2), final.pt (3):
        # a kill between the last two left a run that resumed to 'finished' without final.pt
        ("3", "checkpoints/final.pt"),
        # after meta.json, before the probe set (a sweep's worker stopped as it began a
        # point): resume wrote its first snapshot into a latents folder that did not exist
        ("probe.npz", "latents/probe.npz"),
    ],
)
def test_kill_in_a_write_then_resume_writes_what_the_run_owes(nnlab, runs, fault, missing):
    args = ["train", "vae", *FAST, "--checkpoint_every_steps=0", "--snapshot_every=40"]
    reference = nnlab(*args, "--seed=2").out.strip()
    before = {p.name for p in runs.iterdir()}
    p = _spawn([*args, "--seed=2"], runs, **{testhooks.KILL_IN_WRITE: fault})
    p.wait(timeout=120)
    assert p.returncode == -signal.SIGKILL
    run_id = _only_run(runs, exclude=before)
    assert (runs / run_id / "meta.json").exists() and not (runs / run_id / missing).exists()
    _resume_until_done(nnlab, run_id)
    _assert_same_run(runs, reference, run_id)  # compares final.pt tensors, metrics, latents
    assert nnlab("summary", run_id, "--json").json()["status"] == "finished"


def test_run_killed_before_its_first_checkpoint_is_not_damaged(nnlab, runs):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=0").out.strip()
    (runs / run_id / "checkpoints" / "latest.pt").unlink()
    (runs / run_id / "checkpoints" / "final.pt").unlink()
    (runs / run_id / "metrics.jsonl").unlink()
    run = folders.Run(runs, run_id)
    meta = run.meta()
    changes = {"status": "running", "steps_done": 0, "epochs_done": 0, "metrics_bytes": 0}
    run.write_meta(
        {**meta.to_json(), **changes, "metrics_sha256": metrics.prefix_digest(run.metrics, 0)}
    )
    d = nnlab("summary", run_id, "--json").json()
    assert d["status"] == "interrupted (nothing to resume, start again)" and not d["problems"]
    assert nnlab("train", "--resume", run_id).code == 0  # starts again in the same run


def _tree_digest(folder):
    import hashlib

    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


LINK_TARGETS = [
    "metrics.jsonl",
    "lock",
    "config.yaml",
    "meta.json",
    "checkpoints",
    "latents",
    "media",
    "checkpoints/latest.pt",
    "latents/chunk-000000.npz",
]


@pytest.mark.parametrize("target", LINK_TARGETS)
def test_links_inside_a_run_are_refused_and_nothing_outside_changes(nnlab, runs, tmp_path, target):
    run_id = nnlab(
        "train", "classifier", "--preset=linear-mse", *FAST, "--epochs=1", "--snapshot_every=100"
    ).out.strip()
    (runs / run_id / "media").mkdir(exist_ok=True)
    decoy = tmp_path / "decoy"
    path = runs / run_id / target
    # the decoy holds what the link replaces (a copy), so readers would find plausible data
    if path.is_dir():
        shutil.copytree(path, decoy)
        shutil.rmtree(path)
    else:
        decoy.mkdir()
        if path.exists():
            shutil.copy(path, decoy / path.name)
        path.unlink(missing_ok=True)
    digest = _tree_digest(decoy)
    path.symlink_to(decoy if not (decoy / path.name).exists() else decoy / path.name)
    for args in (
        ("summary", run_id),
        ("animate", run_id, "--dpi=30"),
        ("masks", run_id),
        ("embed", run_id),
        ("train", "--resume", run_id, "--epochs=2"),
    ):
        r = nnlab(*args)
        assert r.code == 2, (args, r)
        assert len(r.err.strip().splitlines()) == 1 and "symbolic link" in r.err, r.err
    table = nnlab("summary", "--json").json()
    assert [row["status"] for row in table] == ["damaged"]
    assert _tree_digest(decoy) == digest


@pytest.mark.parametrize(
    "name", ["meta.json", "config.yaml", "metrics.jsonl", "checkpoints/latest.pt"]
)
@pytest.mark.slow
def test_special_files_are_refused_at_once(nnlab, runs, name):
    """A FIFO (or a link to /dev/zero) where a file should be: refused, never read."""
    env = dict(os.environ, NNLAB_RUNS=str(runs))
    # trained in this process (torch is loaded already); the readers run in their own
    run_id = nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=1").out.strip()
    path = runs / run_id / name
    path.unlink()
    os.mkfifo(path)
    for args in (["summary"], ["summary", run_id], ["masks", run_id]):
        t0 = time.time()
        r = subprocess.run(
            [sys.executable, "-m", "nnlab", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
        )
        assert time.time() - t0 < 10 and "Traceback" not in r.stderr
        if args == ["summary"]:
            assert r.returncode == 0 and "damaged" in r.stdout
        else:
            assert r.returncode == 2 and "not a regular file" in r.stderr
    path.unlink()
    path.symlink_to("/dev/zero")
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", "summary", run_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert r.returncode == 2 and "symbolic link" in r.stderr


@pytest.mark.parametrize(
    "flag",
    [
        "--seed=-1",
        "--seed=18446744073709551616",
        "--weight_decay=nan",
        "--lr=1e308",
        "--lr=inf",
        "--beta=nan",
        "--beta=-inf",
        "--val_fraction=nan",
        "--hidden_dims=[100000000]",
        "--latent_dim=100000000",
        "--momentum=nan",
    ],
)
def test_odd_numbers_are_refused_before_anything_exists(nnlab, runs, flag):
    r = nnlab("train", "vae", *FAST, flag)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err and flag.split("=")[0] in r.err
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs holding a copy of the frozen store, filled up (skipped where mounting
    is not permitted)."""
    mount = tmp_path / "full"
    mount.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        fixture = Path(__file__).resolve().parent / "fixtures" / "store-format1"
        shutil.copytree(fixture, mount / "runs")
        with open(mount / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        yield mount / "runs"
    finally:
        done = subprocess.run(["umount", str(mount)], capture_output=True)
        if done.returncode != 0:  # a file left open: detach it, and say so
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
            pytest.fail(f"a file on the full disk was left open: {done.stderr.decode()}")


@pytest.mark.slow
def test_a_full_disk_gives_one_line_for_every_writing_command(nnlab, full_disk, tmp_path):
    vae, lin = "vae-20261129-022720-format1", "classifier-20261129-022729-format1"
    for args in (
        ("animate", vae, "--dpi=30"),
        ("masks", lin),
        ("embed", lin),
        ("decode", vae),
        ("summary", vae, "--plot"),
        ("train", "--resume", vae, "--epochs=2"),
        ("train", "vae", *FAST, "--snapshot_every=0"),
    ):
        r = nnlab(*args, f"--runs_dir={full_disk}")
        assert r.code in (1, 2), (args, r)
        assert "Traceback" not in r.err and "No space left on device" in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) <= 2, (args, r.err)
        assert not list(full_disk.rglob(".tmp-*")), args
    ids = sorted(p.name for p in full_disk.iterdir() if not p.name.startswith("."))
    assert ids == sorted([vae, lin])  # no half-written new run


def _limited(args, runs, seconds=10, memory_mb=None):
    """`nnlab ARGS` in a subprocess with a time limit (and an address-space limit)."""
    import resource

    def limit():
        if memory_mb:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))

    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-m", "nnlab", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, NNLAB_RUNS=str(runs)),
        timeout=seconds * 3,
        preexec_fn=limit,
    )
    return r, time.time() - t0


def test_a_chunk_declaring_a_huge_array_is_refused_without_reading_it(runs):
    import io
    import zipfile

    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    run_id = "vae-20261129-022720-format1"
    chunk = runs / run_id / "latents" / "chunk-000000.npz"
    arrays = files.load_npz(chunk)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (250_000_000,)}
    )
    with zipfile.ZipFile(chunk, "w") as z:  # 'steps' claims 2 GB in a file of a few KB
        z.writestr("steps.npy", header.getvalue() + b"\0" * 64)
        for k in ("epochs", "mu", "sd"):
            buf = io.BytesIO()
            np.save(buf, arrays[k])
            z.writestr(f"{k}.npy", buf.getvalue())
    for args in (["summary", run_id, "--json"], ["animate", run_id, "--dpi=30"]):
        r, seconds = _limited(args, runs, memory_mb=None if args[0] == "animate" else 1500)
        assert seconds < 10 and "Traceback" not in r.stderr, r.stderr
        if args[0] == "summary":
            assert r.returncode == 0 and json.loads(r.stdout)["status"] == "damaged"
        else:
            assert r.returncode == 2 and "chunk-000000.npz: damaged" in r.stderr


def test_a_checkpoint_claiming_more_than_its_model_holds_is_refused_before_inflating(runs):
    import zipfile

    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    run_id = "classifier-20261129-022729-format1"
    ck = runs / run_id / "checkpoints" / "final.pt"
    with zipfile.ZipFile(ck, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("final/data/bomb", b"\0" * (64 * 2**20))  # 64 MB that deflate to ~64 KB
    assert ck.stat().st_size < 2**20
    r, seconds = _limited(["masks", run_id, "--checkpoint=final"], runs)
    assert r.returncode == 2 and seconds < 15, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "final.pt: damaged" in r.stderr


DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "1" + "0" * 5000
ODD_META = (
    [
        (k, v)
        for k in ("steps_done", "train_size", "epochs_done", "snapshots")
        for v in ('"x"', "-1", "1e999", "null", "[1]", HUGE, DEEP, "true")
    ]
    + [(k, v) for k in ("created", "id", "dataset") for v in ("12345", "null", "[1]", DEEP)]
    + [("status", v) for v in ('"exploded"', "12", DEEP)]
    + [("final", v) for v in ("[1]", '"x"', '{"test_acc": 1e999}')]
    + [("parameters", v) for v in ('"x"', "[1]", '[{"name": 1}]')]
    + [("probe", v) for v in ("[1]", '{"size": "big"}')]
    + [("train_seconds", v) for v in ('"x"', "1e999", "-5")]
)


@pytest.mark.parametrize("key,raw", ODD_META)
def test_odd_values_in_meta_are_damage_and_the_table_lists_the_rest(nnlab, runs, key, raw):
    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    run_id = "vae-20261129-022720-format1"
    meta = files.read_json(runs / run_id / "meta.json")
    meta[key] = "@@VALUE@@"
    text = json.dumps(meta).replace('"@@VALUE@@"', raw)
    (runs / run_id / "meta.json").write_text(text)
    table = nnlab("summary", "--json")
    assert table.code == 0 and "Traceback" not in table.err, table.err
    rows = {r["id"]: r["status"] for r in table.json()}
    assert rows[run_id] == "damaged" and rows["classifier-20261129-022729-format1"] == "finished"
    r = nnlab("summary", run_id)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "meta.json: damaged" in r.err


@pytest.mark.parametrize(
    "key,value,command",
    [
        ("step", "abc", "masks"),
        ("metrics_bytes", -1, "resume"),
        ("perm", "short", "resume"),
        ("batch", 10**9, "resume"),
        ("latent_chunks", 99, "resume"),
    ],
)
def test_odd_values_in_a_checkpoint_are_refused_in_one_line(nnlab, runs, key, value, command):
    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    run_id = "classifier-20261129-022729-format1"
    for name in ("latest.pt", "final.pt"):
        path = runs / run_id / "checkpoints" / name
        ck = files.load_checkpoint(path)
        ck[key] = torch.arange(10) if value == "short" else value
        files.save_checkpoint(path, ck)
    args = ["train", "--resume", run_id, "--epochs=2"] if command == "resume" else [command, run_id]
    r = nnlab(*args)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err and "latest.pt" in r.err


def test_config_checksum_is_written_when_the_run_is_created(nnlab, runs):
    run_id = nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=1").out.strip()
    path = runs / run_id / "config.yaml"
    path.write_text(path.read_text().replace("lr: 0.25", "lr: 0.35"))  # a one-digit change
    r = nnlab("summary", run_id)
    assert r.code == 2 and "damaged or edited" in r.err and len(r.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_one_bit_flips_are_harmless_or_reported_never_silent(nnlab, runs):
    """A flipped bit anywhere in a run's files (a few hundred seeded places per file kind)
    either changes nothing summary shows, or is reported as damage: never a traceback and
    never a silently different summary."""
    run_id = nnlab(
        "train", "classifier", "--preset=linear-mse", *FAST, "--epochs=1", "--snapshot_every=120"
    ).out.strip()
    folder = runs / run_id
    pristine = nnlab("summary", run_id, "--json").json()
    rng = random.Random(1)
    kinds = [
        "meta.json",
        "config.yaml",
        "metrics.jsonl",
        "latents/chunk-000000.npz",
        "checkpoints/latest.pt",
    ]
    for rel in kinds:
        path = folder / rel
        original = path.read_bytes()
        for _ in range(200):
            i, bit = rng.randrange(len(original)), rng.randrange(8)
            flipped = bytearray(original)
            flipped[i] ^= 1 << bit
            path.write_bytes(bytes(flipped))
            r = nnlab("summary", run_id, "--json")
            where = f"{rel} byte {i} bit {bit}"
            assert "Traceback" not in r.err, where
            if r.code != 0:
                assert r.code == 2 and len(r.err.strip().splitlines()) == 1, (where, r.err)
                continue
            d = r.json()
            if d["status"] != "damaged":
                for key in ("config", "metrics", "parameters", "progress", "latent_metrics"):
                    assert d[key] == pristine[key], (where, key)
        path.write_bytes(original)


def _odd_values(typ, choices):
    import typing

    if choices:
        return ["nope", "nan"]
    if typ is float:
        return ["nan", "inf", "-inf", "abc", "1e999"]
    if typ is bool:
        return ["maybe", "2"]
    if typing.get_origin(typ) is list and typing.get_args(typ)[0] is float:
        return ["abc", "-1", "1.5", "nan", "inf", "1e999"]  # probabilities
    if typing.get_origin(typ) is list:
        return ["abc", "-1", "0", "9" * 40, "1.5"]
    return ["-1", "abc", "1.5", "nan", "9" * 40]  # int and int | None


def _flag_cases():
    import dataclasses
    import typing

    from nnlab.config import config

    cases = []
    for model in families.TRAINED:  # flags of the families nnlab trains
        family = families.get(model)
        cls = family.config_class
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("model", "name", "data_dir"):
                continue
            if f.name == "device":
                values = ["nope", "cuda:x"]
            else:
                values = _odd_values(hints[f.name], config.field_info(cls, f.name).get("choices"))
            cases += [(model, f.name, v) for v in values]
    return cases


@pytest.mark.parametrize("model,key,value", _flag_cases())
def test_every_config_flag_refuses_odd_values(nnlab, runs, model, key, value):
    fast = [a for a in FAST if not a.startswith(f"--{key}=")]  # each flag typed once
    r = nnlab("train", model, *fast, f"--{key}={value}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, (key, value, r.err)
    assert "given twice" not in r.err
    assert f"--{key}" in r.err and "Traceback" not in r.err
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]


COMMAND_FLAGS = [
    ("animate", "vae", ["--fps=nan", "--fps=inf", "--fps=-1", "--fps=0", "--fps=abc"]),
    ("animate", "vae", ["--every=0", "--every=-1", "--every=abc", "--dpi=0", "--dpi=100000"]),
    ("animate", "vae", ["--classes=10", "--classes=-1", "--classes=abc", "--kind=nope"]),
    ("masks", "lin", ["--units=10", "--units=abc", "--units=-1", "--checkpoint=epoch-x"]),
    ("embed", "lin", ["--split=nope", "--layer=abc", "--layer=99", "--layer=-1"]),
    ("embed", "lin", ["--format=nope"]),
    ("decode", "vae", ["--between=1", "--between=abc", "--between=1,2,3", "--between=0,99999"]),
    ("summary", "vae", ["--json=maybe", "--plot=maybe"]),
]


@pytest.mark.parametrize("command,which,flags", COMMAND_FLAGS)
def test_every_command_flag_refuses_odd_values(nnlab, runs, command, which, flags):
    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    run_id = {"vae": "vae-20261129-022720-format1", "lin": "classifier-20261129-022729-format1"}
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    for flag in flags:
        r = nnlab(command, run_id[which], flag)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, (flag, r.err)
        assert "Traceback" not in r.err, flag
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("case", ["dims", "steps", "big-metrics", "big-meta"])
def test_inconsistent_or_oversized_files_are_damage(nnlab, runs, case):
    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    run_id = "vae-20261129-022720-format1"
    folder = runs / run_id
    name = ""
    if case in ("dims", "steps"):
        chunk = folder / "latents" / "chunk-000001.npz"
        arrays = files.load_npz(chunk)
        if case == "dims":  # a chunk whose latent has another width than the first
            arrays["mu"] = np.concatenate([arrays["mu"], arrays["mu"][..., :1]], axis=2)
        else:
            arrays["steps"] = arrays["steps"].astype(np.float64) + 0.5
        files.save_npz(chunk, **arrays)
        commands = [("animate", run_id, "--dpi=30"), ("summary", run_id, "--plot")]
    else:  # sparse files: huge on paper, nothing on disk
        name = "metrics.jsonl" if case == "big-metrics" else "meta.json"
        with open(folder / name, "r+b") as f:
            f.truncate(200 * 2**20)
        commands = [("summary", run_id, "--plot"), ("summary", run_id)]
    for args in commands:
        r = nnlab(*args)
        assert "Traceback" not in r.err, (args, r.err)
        if r.code == 0:  # summary shows the run as damaged, naming the file
            assert args == ("summary", run_id) and "damaged" in r.out and name in r.out
        else:
            assert r.code == 2 and len(r.err.strip().splitlines()) == 1, (args, r.err)
            assert "damaged" in r.err


def test_bombs_are_refused_in_time_and_memory_in_process(nnlab, runs):
    """The refusals themselves, without interpreter start-up: under 2 s and 200 MB of
    Python (numpy included) allocations each, for a chunk declaring a 2 GB array and a
    checkpoint hiding a 64 MB deflate bomb."""
    import io
    import tracemalloc
    import zipfile

    shutil.copytree(Path(__file__).parent / "fixtures" / "store-format1", runs)
    vae, lin = "vae-20261129-022720-format1", "classifier-20261129-022729-format1"
    chunk = runs / vae / "latents" / "chunk-000000.npz"
    arrays = files.load_npz(chunk)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (250_000_000, 2)}
    )
    with zipfile.ZipFile(chunk, "w") as z:
        z.writestr("mu.npy", header.getvalue() + b"\0" * 64)
        for k in ("steps", "epochs", "sd"):
            buf = io.BytesIO()
            np.save(buf, arrays[k])
            z.writestr(f"{k}.npy", buf.getvalue())
    ck = runs / lin / "checkpoints" / "latest.pt"
    with zipfile.ZipFile(ck, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("latest/data/bomb", b"\0" * (64 * 2**20))
    import importlib

    for module in ("nnlab.render.animate", "nnlab.render.masks", "nnlab.training.loading"):
        importlib.import_module(module)  # imports are start-up, not the refusal

    for args in (("animate", vae, "--dpi=30"), ("masks", lin)):
        t0 = time.perf_counter()
        r = nnlab(*args)
        seconds = time.perf_counter() - t0
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "damaged" in r.err
        tracemalloc.start()
        nnlab(*args)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seconds < 2 and peak < 200 * 2**20, (args, seconds, peak)
