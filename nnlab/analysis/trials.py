"""`nnlab summary SWEEP_ID` of a search: the trials (values, status, epochs and steps run,
the metric), the best trial, and each searched field's importance.

Importance is Optuna's fANOVA (the share of the metric's variance over the finished
trials that each field explains, from a random forest fitted to them; seed 0, so the same
trials give the same numbers), computed on an in-memory study rebuilt from sweep.json:
summary never writes the search's journal.
"""

from __future__ import annotations

import math

from nnlab.config import space as spaces
from nnlab.helpers.console import table_text
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import text_of
from nnlab.store import folders, sweeps
from nnlab.store.meta import Status

IMPORTANCE_SEED = 0
MIN_FOR_IMPORTANCE = 3  # fANOVA's forest needs a few finished trials to say anything


def progress(root, run_id: str) -> tuple[float | None, int | None]:
    """(epochs, steps) a point's run has trained, from its meta.json."""
    try:
        meta = folders.open_run(run_id, root).meta()
    except NnlabError:
        return None, None
    steps, spe = meta.steps_done, meta.steps_per_epoch
    if spe <= 0:
        return None, None
    return steps / spe, steps


def final_value(root, run_id: str, metric: str) -> float | None:
    """The metric of a finished point's run, from its sealed files: its last epoch's
    (meta.json's final), or its last snapshot's latent metrics; None when it has none."""
    from nnlab.analysis import cache

    try:
        run = folders.open_run(run_id, root)
        meta = run.meta()
        if isinstance(meta.final.get(metric), (int, float)):
            return float(meta.final[metric])
        value = cache.last_of(run, run.config(meta), meta).get(metric)
        return float(value) if isinstance(value, (int, float)) else None
    except NnlabError:
        return None


def sealed_values(sweep, rec: dict, statuses: list[str]) -> list[float | None]:
    """Each point's metric as its run's sealed files say (never sweep.json's word): a
    finished run's final value, a pruned run's value at its prune (meta.json), else None."""
    metric = rec["search"]["metric"]
    out: list[float | None] = []
    for p, status in zip(rec["points"], statuses, strict=True):
        value = None
        if status == Status.FINISHED:
            value = final_value(sweep.root, p["run"], metric)
        elif status == Status.PRUNED:
            try:
                pruned = folders.open_run(p["run"], sweep.root).meta().pruned or {}
            except NnlabError:
                pruned = {}
            if pruned.get("metric") == metric and isinstance(pruned.get("value"), (int, float)):
                value = float(pruned["value"])
        out.append(value if value is None or math.isfinite(value) else None)
    return out


def best(points: list[dict], direction: str) -> dict | None:
    """The finished point with the best value (the first of equals), or None."""
    top = (sweeps.ranked_points(points, direction) or [None])[0]
    return (
        top if top and top["status"] == Status.FINISHED and top.get("value") is not None else None
    )


def importance(plan: dict, points: list[dict]) -> dict:
    """{"method", "trials", "values": {field: share}} or {"note": why there are none}."""
    done = [p for p in points if p["status"] == Status.FINISHED and p.get("value") is not None]
    if len(done) < MIN_FOR_IMPORTANCE:
        return {"note": f"needs {MIN_FOR_IMPORTANCE} finished trials ({len(done)} so far)"}
    try:
        import optuna
    except ImportError:
        return {"note": 'needs Optuna: pip install -e ".[search]"'}
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = spaces.from_record(plan["space"])
    dists = {k: spaces.distribution(optuna, p) for k, p in params.items()}
    study = optuna.create_study(direction="maximize" if plan["direction"] == "max" else "minimize")
    for p in done:
        drawn = {
            k: v if isinstance(params[k], spaces.Range) else text_of(v)
            for k, v in p["values"].items()
        }
        study.add_trial(
            optuna.trial.create_trial(params=drawn, distributions=dists, value=p["value"])
        )
    evaluator = FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    shares = get_param_importances(study, evaluator=evaluator)
    return {
        "method": f"fANOVA, Optuna's, seed {IMPORTANCE_SEED}",
        "trials": len(done),
        "values": {k: float(v) for k, v in shares.items()},
    }


def describe(sweep, rec: dict, points: list[dict]) -> dict:
    """The search part of a sweep's description: plan, trials table rows, best, importance."""
    plan = rec["search"]
    trials = []
    values = sealed_values(sweep, rec, [p["status"] for p in points])
    for p, value in zip(points, values, strict=True):
        epochs, steps = progress(sweep.root, p["run"])
        trials.append({**p, "value": value, "epochs": epochs, "steps": steps})
    top = best(trials, plan["direction"])
    return {
        "plan": plan,
        "space": spaces.describe(spaces.from_record(plan["space"])),
        "trials": trials,
        "best": top,
        "importance": importance(plan, trials),
        "steps": sum(t["steps"] or 0 for t in trials),
    }


def render(d: dict, s: dict, color: bool = False) -> str:
    """A search as text: what it is, a row per trial, the best and the importances."""
    plan = s["plan"]
    fields = list(plan["space"])
    counts = ", ".join(f"{n} {k}" for k, n in sorted(d["counts"].items()))
    lines = [
        f"search {d['id']} · {d['model']} · {plan['method']} · {len(s['trials'])} of "
        f"{plan['trials']} trials: {counts}",
        f"command: {d['command']}",
        f"space: {s['space']} · metric {plan['metric']} ({plan['direction']}) · "
        + (f"{plan['prune']} pruning" if plan["prune"] != "none" else "no pruning"),
        "",
    ]
    header = ["trial", "run", *fields, "status", "epochs", "steps", plan["metric"]]
    cells = []
    for t in s["trials"]:
        cells.append(
            [
                str(t["index"]),
                t["run"],
                *(_short(t["values"][k]) for k in fields),
                t["status"],
                "-" if t["epochs"] is None else f"{t['epochs']:.2f}",
                "-" if t["steps"] is None else str(t["steps"]),
                "-" if t["value"] is None else f"{t['value']:.6g}",
            ]
        )
    lines.append(table_text(header, cells, color))
    lines.append("")
    top = s["best"]
    if top is None:
        lines.append("best: no trial has finished yet")
    else:
        values = ", ".join(f"{k}={_short(v)}" for k, v in top["values"].items())
        lines.append(
            f"best: trial {top['index']} ({top['run']}): {plan['metric']} {top['value']:.6g} "
            f"with {values}"
        )
    imp = s["importance"]
    if "note" in imp:
        lines.append(f"parameter importance: {imp['note']}")
    else:
        shares = " · ".join(f"{k} {v:.2f}" for k, v in imp["values"].items())
        lines.append(
            f"parameter importance ({imp['method']}, over {imp['trials']} finished trials): "
            f"{shares}"
        )
    lines.append(f"training steps: {s['steps']:,} in all")
    failed = [
        t for t in s["trials"] if t["status"] in (Status.FAILED, Status.DIVERGED) and t["error"]
    ]
    lines += [f"{t['run']}: {t['status']}: {t['error']}" for t in failed]
    return "\n".join(lines)


def _short(v) -> str:
    """A value for the table: floats to 4 significant digits, others as typed."""
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.4g}"
    return text_of(v)
