from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import FAST


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "vea"], "unknown model 'vea' (did you mean 'vae'?)"),
        (["train", "vae", "--preset=vae-beta1"], "did you mean 'vae-beta10'"),
        (["train", "vae", "--bta=10"], "unknown config key 'bta'"),
        (["train", "vae", "--lr=-1"], "--lr"),
        (["train", "vae", "--batch_size=0"], "--batch_size"),
        (["train", "vae", "--latent_dim=0"], "--latent_dim"),
        (["train", "vae", "--beta=-2"], "--beta"),
        (["train", "vae", "--dataset=kmnist"], "dataset 'kmnist' not found"),
        (["train", "classifier", "--sizes=[784,30,9]"], "end at 10"),
        (["train", "classifier", "--sizes=100,10"], "start at 784"),
        (["train", "--resume", "../etc"], "invalid run id"),
        (["train", "--resume", "nope-1"], "no run 'nope-1'"),
        (["train", "--resume", "nope-1", "--beta=3"], "--resume takes only --epochs"),
        (["summary", "nope-1"], "no run 'nope-1'"),
        (["summary", "a/../../b"], "invalid run id"),
        (["summary", "12"], "invalid run id '12'"),  # digits stay the text typed
        (["animate", "007"], "invalid run id '007'"),
        (["trian"], "unknown command 'trian' (did you mean 'train'?)"),
        (["train", "vae", "--val_fraction=0", "--probe_split=val"], "no validation split"),
        (["animate"], "give a run id: nnlab animate RUN_ID"),
        (["masks"], "give a run id: nnlab masks RUN_ID"),
        (["embed"], "give a run id: nnlab embed RUN_ID"),
        (["decode"], "give a run id: nnlab decode RUN_ID"),
        (["summary", "--jsn"], "unknown option --jsn for 'summary' (did you mean 'json'?)"),
        (["animate", "x-1", "--fsp=3"], "unknown option --fsp for 'animate' (did you mean 'fps'?)"),
        (["masks", "x-1", "--unit=3"], "did you mean 'units'"),
        (["embed", "x-1", "--splt=val"], "did you mean 'split'"),
        (["train", "vae", *FAST, "x"], "unexpected argument 'x'"),
        (["train", "vae", "--epochs", "1", "2"], "unexpected argument '2'"),
        (["animate", "a-1", "b-1"], "unexpected argument 'b-1'"),
        (["train", "--resume"], "--resume needs a run id"),
        (["summary", "a-1", "--", "--help"], "unexpected argument '--'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(nnlab, runs, args, needle):
    r = nnlab(*args)
    assert r.code == 2, r
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.err
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]


def test_resume_with_fewer_epochs_than_done_is_refused(nnlab, runs):
    run_id = nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=2").out.strip()
    before = (runs / run_id / "config.yaml").read_bytes()
    meta = (runs / run_id / "meta.json").read_bytes()
    r = nnlab("train", "--resume", run_id, "--epochs=1")
    assert r.code == 2 and "has done 2 epoch(s) already; give --epochs=2 or more" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert (runs / run_id / "config.yaml").read_bytes() == before
    assert (runs / run_id / "meta.json").read_bytes() == meta


def test_piped_runs_table_is_tab_separated_and_whole(nnlab, runs):
    a = nnlab("train", "vae", *FAST, "--snapshot_every=0", "--name=a-rather-long-name").out
    nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=1")
    lines = nnlab("summary").out.splitlines()  # stdout is not a terminal here
    assert lines[0].split("\t") == [
        "id",
        "model",
        "dataset",
        "epochs",
        "steps",
        "headline",
        "status",
        "created",
        "settings",
    ]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows][0] == a.strip() and all(len(r) == 9 for r in rows)
    assert rows[0][8] == "log_every=10 snapshot_every=0 probe_size=200"  # what it changed
    assert [r[2] for r in rows] == ["mnist-sample"] * 2 and [r[6] for r in rows] == ["finished"] * 2
    detail = nnlab("summary", a.strip()).out
    assert "…" not in detail


def test_no_validation_split(nnlab, runs):
    r = nnlab("train", "classifier", "--preset=linear-ce", *FAST, "--epochs=1", "--val_fraction=0")
    assert r.code == 0, r.err
    d = nnlab("summary", r.out.strip(), "--json").json()
    assert "val_acc" not in d["metrics"]["final"] and "test_acc" in d["metrics"]["final"]


def test_fire_type_pitfalls_reach_the_config(nnlab, runs):
    r = nnlab(
        "train",
        "vae",
        *FAST,
        "--name=007",
        "--lr=1e-3",
        "--beta=10",
        "--epochs",
        "1",
        "--deterministic=false",
        "--hidden_dims=64,32",
        "--snapshot_every=0",
    )
    assert r.code == 0, r.err
    cfg = nnlab("summary", r.out.strip(), "--json").json()["config"]
    assert cfg["name"] == "007" and r.out.strip().endswith("-007")
    assert cfg["lr"] == 1e-3 and cfg["beta"] == 10.0 and cfg["deterministic"] is False
    assert cfg["hidden_dims"] == [64, 32]


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path):
    """The real `python -m nnlab` process: run id alone on stdout, progress on stderr."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnlab",
            "train",
            "classifier",
            "--preset=latent3",
            *FAST,
            "--epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.strip()
    assert r.stdout.count("\n") == 1 and run_id.startswith("classifier-")
    assert "finished" in r.stderr and "test accuracy" in r.stderr
    s = subprocess.run([sys.executable, "-m", "nnlab", "summary"], capture_output=True, text=True)
    assert s.returncode == 0 and run_id in s.stdout
    h = subprocess.run(
        [sys.executable, "-m", "nnlab", "--help"],
        capture_output=True,
        text=True,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    )
    assert h.returncode == 0 and "train" in h.stdout and "summary" in h.stdout


def test_small_things_a_new_user_met(nnlab, runs, trained, tmp_path, monkeypatch):
    """A finished run's resume says it is finished; --compare names each run once; a
    relative --out is printed absolute; a VAE's KL per dimension is named z₁, z₂."""
    import shutil

    root, ids = trained
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root / ids["vae"], runs / ids["vae"])
    run_id = ids["vae"]
    r = nnlab("train", "--resume", run_id)
    assert r.code == 0 and r.out.strip() == run_id and "is finished already" in r.err
    assert "resuming" not in r.err
    r = nnlab("animate", run_id, f"--compare={run_id}")
    assert r.code == 2 and f"--compare: {run_id} is drawn already" in r.err
    monkeypatch.chdir(tmp_path)
    r = nnlab("report", run_id, "--out=page.html")
    assert r.code == 0 and r.out.strip() == str(tmp_path / "page.html")
    r = nnlab("embed", run_id)
    assert r.code == 0 and "z₁:" in r.err and "z₂:" in r.err


@pytest.mark.slow
def test_the_readme_first_command_ends_with_classes_apart(nnlab, runs):
    """The README's first command, after installing: its training separates the digits
    (nearest-class-mean accuracy at the last snapshot ≥ 0.45) and animate draws it."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    first = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    train = re.search(r"id=\$\(nnlab (train [^)]*)\)", first).group(1)
    assert 'nnlab animate "$id"' in first
    r = nnlab(*shlex.split(train))
    assert r.code == 0, r.err
    run_id = r.out.strip()
    assert f"next: nnlab animate {run_id}" in r.err
    d = nnlab("summary", run_id, "--json").json()
    assert d["latent_metrics"]["end"]["ncm_accuracy"] >= 0.45
    r = nnlab("animate", run_id)
    assert r.code == 0 and r.out.split()[0].endswith(".gif")


def test_a_flag_typed_twice_is_refused_not_the_last_taken(nnlab, runs):
    """#38 item 9: train refuses a repeated key, as sweep does, before anything runs."""
    r = nnlab("train", "vae", "--lr=0.001", "--lr=0.01")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "--lr is given twice: a run takes one value of each (nnlab sweep" in r.err
    r = nnlab("train", "vae", "--runs_dir=a", f"--runs_dir={runs}")
    assert r.code == 2 and "--runs_dir is given twice" in r.err
    assert not runs.exists() or not list(runs.iterdir())


def test_train_suggests_the_models_it_trains(nnlab):
    """#38 item 9: `train VAE` suggests vae; the list names only what train trains."""
    r = nnlab("train", "VAE")
    assert r.code == 2 and "unknown model 'VAE' (did you mean 'vae'?)" in r.err
    r = nnlab("train", "xyz")
    assert r.code == 2 and r.err.rstrip().endswith("(choose from: classifier, vae)")
