"""`nnlab sweep --search=random|tpe`: trials proposed by Optuna and trained as runs, poor ones
pruned, the study resumed after its coordinator is killed (the same proposals), the
summary, plot and report of a search, and bad input refused before anything is written."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from nnlab.commands import search
from nnlab.store import folders, sweeps
from tests.conftest import FAST
from tests.test_reliability import _spawn

pytest.importorskip("optuna")

SMALL = ["--hidden_dims=[32]", "--snapshot_every=9"]
SEARCH = [
    "sweep",
    "vae",
    *FAST,
    *SMALL,
    "--search=tpe",
    "--lr=log:1e-3..3e-2",
    "--batch_size=log:32..128",
    "--prune=asha",
    "--prune_every=0.25",
    "--search_seed=5",
]


def _record(runs: Path, sweep_id: str) -> dict:
    return json.loads((runs / sweep_id / "sweep.json").read_text())


def _assert_study_whole(runs: Path, sweep_id: str, trials: int) -> dict:
    """Every trial asked once, told once, one point each, every run as its point says."""
    rec = _record(runs, sweep_id)
    assert rec["status"] == "finished" and len(rec["points"]) == trials
    runs_ids = [p["run"] for p in rec["points"]]
    assert len(set(runs_ids)) == trials
    study = search.Study(sweeps.open_sweep(sweep_id, runs), search.Plan(**rec["search"]))
    numbers = [t.number for t in study.trials()]
    assert numbers == list(range(trials))  # no trial index twice, none lost
    for point, t in zip(rec["points"], study.trials(), strict=True):
        assert t.state.name == {"finished": "COMPLETE", "pruned": "PRUNED"}[point["status"]]
        meta = folders.open_run(point["run"], runs).meta()
        assert meta.status == point["status"]
        lr, bs = point["values"]["lr"], point["values"]["batch_size"]
        assert 1e-3 <= lr <= 3e-2 and 32 <= bs <= 128 and isinstance(bs, int)
        assert t.params == {"lr": lr, "batch_size": bs}
        if point["status"] == "finished":
            assert (runs / point["run"] / "checkpoints" / "final.pt").exists()
            assert point["value"] == pytest.approx(meta.final["test_elbo"]) == t.value
    return rec


@pytest.mark.slow
def test_a_search_trains_its_trials_as_runs_and_prunes(searched):
    runs, sweep_id, err = searched
    rec = _assert_study_whole(runs, sweep_id, 6)
    statuses = [p["status"] for p in rec["points"]]
    assert "finished" in statuses and "pruned" in statuses
    assert rec["search"] == {
        "method": "tpe",
        "trials": 6,
        "metric": "test_elbo",
        "direction": "max",
        "seed": 5,
        "prune": "asha",
        "prune_every": 0.25,
        "space": {
            "lr": {"range": [1e-3, 3e-2], "log": True, "int": False},
            "batch_size": {"range": [32.0, 128.0], "log": True, "int": True},
        },
    }
    assert sweep_id.startswith("sweep-vae-") and (runs / sweep_id / folders.JOURNAL_FILE).exists()
    best = max((p for p in rec["points"] if p["status"] == "finished"), key=lambda p: p["value"])
    assert f"best: {best['run']}, test_elbo {best['value']:.6g}" in err
    for p in rec["points"]:  # a pruned point stopped at a checkpoint, before its end
        meta = folders.open_run(p["run"], runs).meta()
        if p["status"] == "pruned":
            assert meta.resumable_step == meta.steps_done < meta.steps_per_epoch
            assert meta.pruned["metric"] == "test_elbo"


@pytest.mark.slow
def test_summary_of_a_search(searched, nnlab, monkeypatch):
    runs, sweep_id, _ = searched
    monkeypatch.setenv("NNLAB_RUNS", str(runs))
    rec = _record(runs, sweep_id)
    r = nnlab("summary", sweep_id)
    assert r.code == 0, r.err
    text = r.out
    assert text.startswith(f"search {sweep_id} · vae · tpe · 6 of 6 trials")
    assert "space: lr log:0.001..0.03 · batch_size log:32..128 · metric test_elbo (max)" in text
    header = "trial\trun\tlr\tbatch_size\tstatus\tepochs\tsteps\ttest_elbo"
    assert header in text
    rows = [ln.split("\t") for ln in text.splitlines() if ln[:1].isdigit()]
    assert [row[1] for row in rows] == [p["run"] for p in rec["points"]]
    steps = [folders.open_run(p["run"], runs).meta().steps_done for p in rec["points"]]
    assert [int(row[6]) for row in rows] == steps
    assert f"training steps: {sum(steps):,} in all" in text
    best = max((p for p in rec["points"] if p["status"] == "finished"), key=lambda p: p["value"])
    assert f"best: trial {rec['points'].index(best)} ({best['run']})" in text
    d = nnlab("summary", sweep_id, "--json").json()
    assert d["search"]["best"]["run"] == best["run"]
    imp = d["search"]["importance"]
    if sum(p["status"] == "finished" for p in rec["points"]) >= 3:
        assert set(imp["values"]) == {"lr", "batch_size"}
        assert sum(imp["values"].values()) == pytest.approx(1.0)
    else:
        assert "needs 3 finished trials" in imp["note"]
    plot = nnlab("summary", sweep_id, "--plot")
    assert plot.code == 0 and plot.out.strip().endswith("media/search.png")
    assert nnlab("summary").out.count("tpe search, 6 trials") == 1
    pruned = next(p for p in rec["points"] if p["status"] == "pruned")
    one = nnlab("summary", pruned["run"])
    assert one.code == 0 and f"pruned by {sweep_id} at step " in one.out
    assert f"test_elbo {pruned['value']:.6g}" in one.out


@pytest.mark.slow
def test_report_and_animate_show_the_best_trials_first(searched, nnlab, monkeypatch):
    runs, sweep_id, _ = searched
    monkeypatch.setenv("NNLAB_RUNS", str(runs))
    rec = _record(runs, sweep_id)
    order = [p["run"] for p in sweeps.ranked(rec)]
    finished = [p for p in rec["points"] if p["status"] == "finished"]
    best_first = sorted(finished, key=lambda p: -p["value"])
    assert order[: len(finished)] == [p["run"] for p in best_first]
    r = nnlab("report", sweep_id)
    assert r.code == 0, r.err
    page = Path(r.out.strip()).read_text()
    positions = [page.index(run) for run in order]
    assert positions == sorted(positions)
    assert nnlab("animate", sweep_id).code == 0


@pytest.mark.slow
def test_kill_9_of_the_coordinator_then_resume_proposes_what_an_uninterrupted_search_would(
    nnlab, runs, tmp_path
):
    args = [*SEARCH, "--trials=6", "--jobs=1"]
    ref_runs = tmp_path / "reference"
    ref = _spawn(args, ref_runs)
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    reference = _record(ref_runs, out.strip())

    p = _spawn(args, runs)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once two trials have ended, mid-third
        ids = sweeps.list_sweep_ids(runs)
        if (
            ids
            and sum(q["status"] in ("finished", "pruned") for q in _record(runs, ids[0])["points"])
            >= 2
        ):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    (sweep_id,) = sweeps.list_sweep_ids(runs)
    before = _record(runs, sweep_id)
    assert before["status"] == "running" and len(before["points"]) < 6  # it was cut short
    r = nnlab("sweep", "--resume", sweep_id)
    assert r.code == 0 and r.out.strip() == sweep_id, r.err
    rec = _assert_study_whole(runs, sweep_id, 6)
    for a, b in zip(rec["points"], reference["points"], strict=True):
        assert a["values"] == b["values"] and a["status"] == b["status"]
        assert a["value"] == pytest.approx(b["value"], rel=1e-9)
    again = nnlab("sweep", "--resume", sweep_id)  # nothing left: no trial asked twice
    assert again.code == 0 and len(_record(runs, sweep_id)["points"]) == 6


def test_the_study_is_told_how_each_trial_ended(tmp_path):
    sweep = sweeps.create_sweep(tmp_path, "sweep-vae-t")
    try:
        space = {"lr": {"range": [1e-4, 1e-1], "log": True, "int": False}}
        plan = search.Plan("tpe", 5, "test_elbo", "max", 0, "asha", 0.25, space)
        study = search.Study(sweep, plan)
        numbers = [study.ask()[0] for _ in range(5)]
        assert numbers == [0, 1, 2, 3, 4]
        assert study.decide(1, 900, -300.0) is False  # the first at its rung: kept
        assert study.decide(3, 900, -250.0) is False
        study.tell(0, "finished", -180.0)
        study.tell(1, "diverged", None)  # reported before: pruned at its last report
        study.tell(2, "diverged", None)  # never reported: failed
        study.tell(3, "failed", None)
        study.tell(4, "pruned", None)
        study.tell(0, "failed", None)  # told already (a resume): left as it was
        states = [t.state.name for t in study.trials()]
        assert states == ["COMPLETE", "PRUNED", "FAIL", "FAIL", "PRUNED"]
        assert study.trials()[0].value == -180.0 and study.trials()[1].value == -300.0
        again = search.Study(sweep, plan)  # reopened from the journal, as --resume does
        assert [t.state.name for t in again.trials()] == states
        with open(sweep.file(folders.JOURNAL_FILE), "ab") as f:  # a kill in mid-write
            f.write(b'{"op_code": 4, "worker_id": "x", "trial_id"')
        repaired = search.Study(sweep, plan)
        assert [t.state.name for t in repaired.trials()] == states
        assert repaired.ask()[0] == 5  # and it writes on after the cut
        assert len(search.Study(sweep, plan).trials()) == 6
    finally:
        sweep.release()


def test_a_report_asked_again_after_a_kill_gets_the_same_answer(tmp_path):
    """A coordinator killed after answering a report but before the answer reached its
    point is asked again at --resume: ASHA's completed rung, already in the journal, would
    answer "go on" (seen in CI: a trial the uninterrupted search pruned, finished)."""
    sweep = sweeps.create_sweep(tmp_path, "sweep-vae-t")
    try:
        space = {"lr": {"range": [1e-4, 1e-1], "log": True, "int": False}}
        plan = search.Plan("tpe", 4, "test_elbo", "max", 0, "asha", 0.25, space)
        study = search.Study(sweep, plan)
        for _ in range(4):
            study.ask()
        answers = [study.decide(i, 900, v) for i, v in enumerate([-200.0, -150.0, -120.0])]
        assert answers == [False, False, False]  # each the best so far at its rung
        assert study.decide(3, 900, -400.0) is True  # the worst of four: pruned
        for _ in range(2):  # killed before the answer was posted, resumed, asked again
            again = search.Study(sweep, plan)
            assert again.decide(3, 900, -400.0) is True
        assert again.trials()[3].intermediate_values == {900: -400.0}
        assert again.decide(2, 900, -120.0) is False
    finally:
        sweep.release()


def test_a_random_search_of_two_trials_end_to_end(nnlab, runs):
    r = nnlab(
        "sweep",
        "classifier",
        *FAST,
        "--sizes=784,16,10",
        "--epochs=1",
        "--search=random",
        "--trials=2",
        "--lr=0.01..0.5",
        "--activation=relu,sigmoid",
        "--metric=test_acc",
        "--jobs=2",
    )
    assert r.code == 0, r.err
    sweep_id = r.out.strip()
    rec = _record(runs, sweep_id)
    assert [p["status"] for p in rec["points"]] == ["finished", "finished"]
    for p in rec["points"]:
        assert 0.01 <= p["values"]["lr"] <= 0.5 and p["values"]["activation"] in ("relu", "sigmoid")
        cfg = folders.open_run(p["run"], runs).config()
        assert (cfg.lr, cfg.activation) == (p["values"]["lr"], p["values"]["activation"])
        assert 0 < p["value"] <= 1
    assert not (runs / sweep_id / sweeps.REPORTS).exists()  # no pruner: no reports
    s = nnlab("summary", sweep_id)
    assert s.code == 0 and "random" in s.out and "needs 3 finished trials (2 so far)" in s.out


def test_dry_run_prints_the_space_and_writes_nothing(nnlab, runs):
    r = nnlab(
        "sweep",
        "vae",
        "--search=tpe",
        "--trials=9",
        "--lr=log:1e-4..1e-1",
        "--activation=relu,silu",
        "--dry_run",
    )
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["field\tspace", "lr\tlog:0.0001..0.1", "activation\t{relu, silu}"]
    assert "tpe search of vae: 9 trials" in r.err and "nothing written" in r.err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(
    "args, words",
    [
        (["--activation=1..2"], "a range needs a number field, and activation is text"),
        (["--deterministic=0..1"], "deterministic is true or false"),
        (["--lr=1e-2..1e-3"], "--lr=1e-2..1e-3: lo must be below hi, e.g. --lr=0.001..0.01"),
        (["--lr=log:0..1e-2"], "a log-scale range needs lo > 0"),
        (["--lr=1e-4..1e-2", "--metric=test_acc"], "--metric=test_acc: no vae run writes it"),
        (["--lr=1e-4..1e-2", "--trials=0"], "--trials=0: expected a whole number of at least 1"),
        (["--lr=1e-4..1e-2", "--direction=up"], "--direction"),
        (["--lr=1e-4..1e-2", "--prune_every=0.5"], "--prune_every applies with a pruner"),
        (["--lr=1e-4..1e-2", "--prune=asha", "--prune_every=1.5"], "--prune_every=1.5"),
        (["--lr=1e-4..1e-2", "--prune=hyperband"], "--prune"),
        (["--lr=1e-4..1e-2", "--prune=asha"], "trials of one epoch would never report"),
        (["--epochs=2"], "nothing to search"),
    ],
)
def test_bad_search_input_is_one_line_and_writes_nothing(nnlab, runs, args, words):
    trials = [] if any(a.startswith("--trials") for a in args) else ["--trials=3"]
    r = nnlab("sweep", "vae", "--search=tpe", *trials, *args)
    assert r.code == 2, r.err
    assert words in r.err and r.err.count("\n") == 1, r.err
    assert not runs.exists() or not any(runs.iterdir())


def test_an_unknown_metric_lists_the_ones_runs_write(nnlab, runs):
    r = nnlab("sweep", "vae", "--search=tpe", "--trials=3", "--lr=1e-4..1e-2", "--metric=elbo")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "did you mean" in r.err and "test_elbo" in r.err
    assert (
        "these do: train_loss, train_bce, train_kl, val_loss" in r.err and "ncm_accuracy" in r.err
    )


def test_search_options_and_ranges_need_a_search(nnlab, runs):
    r = nnlab("sweep", "vae", "--lr=1e-4..1e-2")
    assert r.code == 2 and "add --search=tpe (or random)" in r.err and r.err.count("\n") == 1
    r = nnlab("sweep", "vae", "--beta=1,2", "--trials=5")
    assert r.code == 2 and "--trials applies to a search" in r.err
    r = nnlab("sweep", "vae", "--search=tpe", "--lr=1e-4..1e-2")
    assert r.code == 2 and "needs --trials=N" in r.err
    r = nnlab("sweep", "--resume", "x", "--trials=3")
    assert r.code == 2 and "a search its space and plan" in r.err
    assert not runs.exists() or not any(runs.iterdir())


def test_a_search_without_optuna_says_how_to_install(nnlab, runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed
    r = nnlab("sweep", "vae", "--search=tpe", "--trials=3", "--lr=1e-4..1e-2")
    assert r.code == 2 and r.err.count("\n") == 1
    assert 'needs Optuna, which is not installed: pip install -e ".[search]"' in r.err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow
def test_ctrl_c_stops_a_search_cleanly_and_resume_finishes_it(nnlab, runs):
    p = _spawn([*SEARCH, "--trials=3", "--jobs=1"], runs)
    deadline = time.time() + 120
    while time.time() < deadline:  # stop it once the first trial has reported
        if list(runs.glob("sweep-*/reports/p0.decisions.json")):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    sweep_id = out.strip()
    assert "trials ended; go on with: nnlab sweep --resume" in err
    rec = _record(runs, sweep_id)
    assert rec["status"] == "interrupted"
    r = nnlab("sweep", "--resume", sweep_id)
    assert r.code == 0, r.err
    _assert_study_whole(runs, sweep_id, 3)


@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    """A finished 4-trial search (runs dir, sweep id), to tamper with copies of."""
    runs = tmp_path_factory.mktemp("small-search") / "runs"
    p = _spawn([*SEARCH, "--trials=4", "--jobs=2"], runs)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return runs, out.strip()


def _copy(small_search, tmp_path) -> tuple[Path, str, Path, list[dict]]:
    """A copy of the small search: (runs, sweep id, journal, its ops)."""
    import shutil

    src, sweep_id = small_search
    runs = tmp_path / "runs"
    shutil.copytree(src, runs)
    journal = runs / sweep_id / folders.JOURNAL_FILE
    ops = [json.loads(line) for line in journal.read_text().splitlines()]
    return runs, sweep_id, journal, ops


def _write_ops(journal: Path, ops: list[dict]) -> None:
    journal.write_text("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in ops))


@pytest.mark.slow
def test_a_damaged_journal_is_one_line_or_repaired(small_search, tmp_path, nnlab):
    """#37 items 1 and 11: a trial line entered twice leaves the search as it was; a
    garbage line, or a journal that lost a trial sweep.json has, is one line naming it."""
    runs, sweep_id, journal, ops = _copy(small_search, tmp_path)
    last_trial = max(i for i, o in enumerate(ops) if o["op_code"] == 4)
    _write_ops(journal, [*ops, ops[last_trial]])  # the 4th trial's line again
    r = nnlab("sweep", "--resume", sweep_id, f"--runs_dir={runs}")
    assert r.code == 0, r.err
    assert len(_record(runs, sweep_id)["points"]) == 4
    assert nnlab("summary", sweep_id, f"--runs_dir={runs}").code == 0
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([*lines[:3], "not json", *lines[3:]]) + "\n")
    r = nnlab("sweep", "--resume", sweep_id, f"--runs_dir={runs}")
    assert r.code == 2 and "study.journal: damaged" in r.err and r.err.count("\n") == 1
    _write_ops(journal, ops[:last_trial])  # the last trial lost
    r = nnlab("sweep", "--resume", sweep_id, f"--runs_dir={runs}")
    assert r.code == 2 and "it holds 3 trials, sweep.json 4 points" in r.err, r.err


@pytest.mark.slow
def test_a_trial_outside_the_space_is_never_trained(small_search, tmp_path, nnlab):
    """#37 item 17: a trial whose values lie outside the search's ranges (a forged journal)
    is refused in one line at --resume, never trained, and later resumes still work."""
    import shutil

    runs, sweep_id, journal, ops = _copy(small_search, tmp_path)
    last_trial = max(i for i, o in enumerate(ops) if o["op_code"] == 4)
    forged = {**ops[last_trial], "params": {**ops[last_trial]["params"], "lr": 5.0}}
    kept = [o for i, o in enumerate(ops[:last_trial]) if o.get("trial_id") != 3]
    _write_ops(journal, [*kept, forged])  # trial 3 asked with lr=5.0, not yet trained
    rec = _record(runs, sweep_id)
    gone = rec["points"].pop()
    shutil.rmtree(runs / gone["run"])
    (runs / sweep_id / "sweep.json").write_text(json.dumps(rec))
    for _ in range(2):  # and again: the refused trial does not break the study
        r = nnlab("sweep", "--resume", sweep_id, f"--runs_dir={runs}")
        assert r.code == 0, r.err
    assert not (runs / gone["run"]).exists()
    point = _record(runs, sweep_id)["points"][3]
    assert point["status"] == "failed" and "lr=5.0 (not in log:0.001..0.03)" in point["error"]
    text = nnlab("summary", sweep_id, f"--runs_dir={runs}").out
    assert "failed: values outside the search: lr=5.0" in text


@pytest.mark.slow
def test_a_search_shows_its_runs_numbers_not_sweep_json_s(small_search, tmp_path, nnlab):
    """#37 item 16: a forged value in sweep.json is never shown; the runs' sealed numbers are."""
    runs, sweep_id, _, _ = _copy(small_search, tmp_path)
    rec = _record(runs, sweep_id)
    finished = [p for p in rec["points"] if p["status"] == "finished"]
    for p in rec["points"]:
        p["value"] = -100.0  # better than any real ELBO here
    (runs / sweep_id / "sweep.json").write_text(json.dumps(rec))
    d = nnlab("summary", sweep_id, "--json", f"--runs_dir={runs}").json()
    truth = {p["run"]: folders.open_run(p["run"], runs).meta().final["test_elbo"] for p in finished}
    shown = {t["run"]: t["value"] for t in d["search"]["trials"] if t["status"] == "finished"}
    assert shown == pytest.approx(truth) and -100.0 not in shown.values()
    assert d["search"]["best"]["value"] == pytest.approx(max(truth.values()))
    assert "-100" not in nnlab("summary", sweep_id, f"--runs_dir={runs}").out


@pytest.mark.slow
def test_a_searchs_page_charts_its_trials_and_the_best_so_far(small_search, tmp_path):
    """#36: a search's page (the report's, and the server's) carries each trial's status and
    value, and charts them with the best so far."""
    from nnlab.render.report import page_data
    from tests import browser

    runs, sweep_id = small_search
    d = page_data([sweep_id], runs, points=100)
    s = d["search"]
    assert s["metric"] == "test_elbo" and s["direction"] == "max"
    assert [t["index"] for t in s["trials"]] == [0, 1, 2, 3]
    # with two trials at once, which reach ASHA's rung first decides which are pruned:
    # the page says what sweep.json and the runs say, whichever it was
    points = _record(runs, sweep_id)["points"]
    assert [t["status"] for t in s["trials"]] == [p["status"] for p in points]
    counts = {k: sum(p["status"] == k for p in points) for k in ("finished", "pruned")}
    assert counts["finished"] >= 1 and sum(counts.values()) == 4
    for t, p in zip(s["trials"], points, strict=True):
        if p["status"] == "finished":
            final = folders.open_run(p["run"], runs).meta().final["test_elbo"]
            assert isinstance(t["value"], float) and t["value"] == pytest.approx(final)
    if browser.missing():
        return
    from nnlab.commands import cli

    out = tmp_path / "search.html"
    cli.main(["report", sweep_id, f"--out={out}", f"--runs_dir={runs}"])
    with browser.page_of(out) as (page, errors):
        page.wait_for_timeout(300)
        titles = [c["title"] for c in page.evaluate("window.nnlabReport.charts()")]
        title = (
            f"test_elbo per trial ({counts['finished']} finished, {counts['pruned']} pruned of 4)"
        )
        assert title in titles, titles
        assert errors == []
