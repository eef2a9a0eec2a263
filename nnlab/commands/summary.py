"""What the run store holds: a table of runs, or one run in detail, as text or JSON.

Reads only config.yaml, meta.json, metrics.jsonl and file listings: no torch import, so
`nnlab summary` answers quickly even on a large store.
"""

from __future__ import annotations

import dataclasses
import json

from nnlab import families
from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders, labels, metrics, schema, sweeps, table
from nnlab.store.meta import Status


def _status_text(status: str, nothing_yet: bool) -> str:
    if status == Status.INTERRUPTED and nothing_yet:
        return "interrupted (nothing to resume, start again)"
    return status


def list_runs(runs_dir=None) -> list[dict]:
    """One row per run: id, model, dataset, progress, headline metric, status, created (the
    runs table's rows as `--json` prints them)."""
    out = []
    for r in table.rows(runs_dir):
        if r.status == Status.DAMAGED:
            out.append({"kind": "run", "id": r.id, "status": r.status, "problem": r.problem})
            continue
        out.append(
            {
                "kind": "run",
                "id": r.id,
                "model": r.model,
                "settings": r.settings,
                "dataset": r.dataset,
                "epochs_done": r.epochs,
                "steps_done": r.steps,
                "headline": r.headline,
                "value": r.value,
                "status": r.status,
                "snapshots": r.snapshots,
                "created": r.created,
                "tags": list(r.tags),
            }
        )
    return out


def describe(run_id: str, runs_dir=None) -> dict:
    """Everything about one run: config, parameters, metrics, timings, contents."""
    # numpy-backed readers, imported here so that the runs table starts without numpy
    from nnlab.analysis import cache
    from nnlab.store.record import snapshot_count

    opened = folders.read_run(run_id, runs_dir)  # refuses a damaged or foreign config.yaml
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    checkpoint_max, chunk_max = schema.size_ceilings(cfg, meta)
    problems = []  # damage that does not stop the summary is shown, not hidden
    lines, too_big = _metric_lines(opened, problems)
    try:
        snaps = snapshot_count(run.latents, chunk_max)
    except NnlabError as e:
        snaps, problems = None, [*problems, str(e)]
    nothing_yet = _check_files(opened, too_big, snaps, checkpoint_max, problems)
    trend = None
    if snaps:
        try:
            trend = cache.trend(run, families.of(cfg).arrays, chunk_max)
        except NnlabError as e:
            problems.append(str(e))
    layered = _layer_summary(opened, problems)
    status = Status.DAMAGED if problems else _status_text(run.status(meta), nothing_yet)
    return {**_description(opened, lines, status, problems, snaps, trend), "layers": layered}


def _layer_summary(opened: folders.Opened, problems: list[str]) -> dict | None:
    """The measures of a run's recording of several layers at its first and last measured
    snapshot (cached with the recording), or None when it recorded one layer."""
    from nnlab.analysis import cache
    from nnlab.store import layers

    if not layers.several(opened.run.layers):
        return None
    try:
        m = cache.layer_measures(opened.run, opened.cfg, opened.meta)
    except NnlabError as e:
        problems.append(str(e))
        return None
    ends = (0, -1)
    return {
        "steps": [m["steps"][i] for i in ends],
        "layers": {
            name: {k: [m[k][name][i] for i in ends] for k in ("probe", "ncm", "cka_final")}
            for name in m["names"]
        },
        "collapse_layer": m["collapse_layer"],
        "collapse": {k: [v[i] for i in ends] for k, v in m["collapse"].items()}
        if m["collapse"]
        else None,
    }


def _metric_lines(opened: folders.Opened, problems: list[str]) -> tuple[list[dict], bool]:
    """metrics.jsonl's lines, and whether it was too large to read (said in problems)."""
    lines, bad_lines = [], 0
    try:
        schema.check_metrics_size(opened.run.metrics, opened.cfg, opened.meta)
        lines, bad_lines = metrics.parse(opened.run.metrics)
    except NnlabError as e:  # too large to read: reported, not read
        problems.append(str(e))
        return [], True
    if bad_lines:
        problems.append(f"{opened.run.metrics}: {bad_lines} unreadable line(s) skipped")
    return lines, False


def _check_files(
    opened: folders.Opened, too_big: bool, snaps, checkpoint_max: int, problems: list[str]
) -> bool:
    """Damage to the metrics log, the recording and the checkpoints, added to problems;
    returns whether the run was killed before its first checkpoint (nothing to resume,
    and nothing damaged)."""
    run, meta = opened.run, opened.meta
    if not too_big:
        try:  # runs from before checksums existed have none: only their length is checked
            schema.check_metrics_digest(run.metrics, meta)
        except NnlabError as e:
            problems.append(str(e))
    if snaps is not None and snaps < meta.snapshots:
        problems.append(f"{run.latents}: {meta.snapshots - snaps} snapshot(s) missing")
    latest, final = folders.LATEST, folders.FINAL
    nothing_yet = not run.checkpoint_file(latest).exists() and not meta.steps_done
    expected = [] if nothing_yet else [latest]
    expected += [final] if meta.status == Status.FINISHED else []
    if not families.of(opened.cfg).rebuildable:  # a user's own loop checkpoints if it wants
        expected = []
    for name in (latest, final):
        p = run.checkpoint_file(name)
        if p.exists():
            try:
                files.verify_archive(p, checkpoint_max)
            except NnlabError as e:
                problems.append(str(e))
        elif name in expected:
            problems.append(f"{p}: missing")
    return nothing_yet


def _labels(run, problems: list) -> tuple[labels.Labels, list]:
    """The run's tags and note; damaged, they are shown with the other damage (the run's
    status is its own)."""
    try:
        return labels.read(run), problems
    except NnlabError as e:
        return labels.Labels(), [*problems, str(e)]


def _description(opened: folders.Opened, lines, status, problems, snaps, trend) -> dict:
    """The summary of a run as a dict (what --json prints)."""
    from nnlab.store import record

    run, meta = opened.run, opened.meta
    names = record.run_class_names(run.latents, opened.cfg)
    config = dataclasses.asdict(opened.cfg)
    epochs = metrics.of_kind(lines, "epoch")
    seconds = float(meta.train_seconds)
    steps = meta.steps_done
    params = meta.parameters
    given, problems = _labels(run, problems)
    return {
        "id": run.id,
        "path": str(run.path),
        "model": meta.model,
        "status": status,
        "problems": problems,
        **{k: getattr(meta, k) for k in ("dataset", "dataset_requested", "data_source", "device")},
        "versions": {
            "nnlab": meta.nnlab_version,
            "torch": meta.torch_version,
            "python": meta.python,
        },
        "created": meta.created,
        "ended": meta.ended,
        "tags": list(given.tags),
        "note": given.note,
        "sweep": meta.sweep,
        "pruned": meta.pruned if status == Status.PRUNED else None,
        "config": config,
        "parameters": {"layers": params, "total": sum(p["count"] for p in params)},
        "progress": {
            "epochs_done": meta.epochs_done,
            "steps_done": steps,
            "resumable_step": meta.resumable_step,
            "steps_per_epoch": meta.steps_per_epoch,
        },
        "metrics": {
            "final": epochs[-1] if epochs else meta.final,
            "best": metrics.best_values(epochs),
            "last_step": next((m for m in reversed(lines) if m.get("kind") == "step"), None),
        },
        "timings": {
            "train_seconds": seconds,
            "steps_per_second": round(steps / seconds, 2) if seconds else None,
        },
        "latent_metrics": trend,
        "class_names": names,
        "unit_health": {
            "first": metrics.health_of(epochs[0]) if epochs else {},
            "last": metrics.health_of(epochs[-1]) if epochs else {},
            "first_epoch": epochs[0].get("epoch") if epochs else None,
            "last_epoch": epochs[-1].get("epoch") if epochs else None,
        },
        "tasks": _task_summary(config, metrics.of_kind(lines, "task")),
        "holds": _holdings(opened, snaps),
    }


def _holdings(opened: folders.Opened, snaps) -> dict:
    """What the run's folder holds: checkpoints, snapshots, media, embeddings."""
    from nnlab.store.record import chunk_files

    run = opened.run
    checkpoints, media, embeddings = (
        sorted(p.name for p in sub.iterdir() if not p.name.startswith(".")) if sub.is_dir() else []
        for sub in (run.checkpoints, run.media, run.embeddings)
    )
    return {
        "checkpoints": checkpoints,
        "snapshots": snaps,
        "snapshot_chunks": len(chunk_files(run.latents)),
        "probe": opened.meta.probe,
        "media": media,
        "embeddings": embeddings,
    }


def _task_summary(config: dict, lines: list[dict]) -> dict | None:
    """A permuted run's tasks: how many, K, and each finished task's accuracies."""
    from nnlab.config import tasks

    every = config.get("permute_every") or 0
    if not every:
        return None
    keep = ("task", "epoch", "step", "train_acc", "test_acc")
    return {
        "every": every,
        "planned": tasks.count(int(config["epochs"]), every),
        "done": len(lines),
        "per_task": [{k: t[k] for k in keep if k in t} for t in lines],
    }


# ---------------------------------------------------------------- rendering


def summarize(
    run_id=None, runs_dir=None, as_json: bool = False, color: bool = False, plot: bool = False
) -> str:
    """The summary text (or JSON) of all runs or one run; with plot, the metrics figure's path."""
    from nnlab.analysis import comparison
    from nnlab.render import tables

    if plot:
        if run_id is None:
            raise NnlabError("--plot needs a run id: nnlab summary RUN_ID --plot")
        if sweeps.is_sweep(run_id, runs_dir):
            from nnlab.render.sweepplot import plot_search, plot_sweep

            d = comparison.describe(run_id, runs_dir)
            return str(plot_search(d) if "search" in d else plot_sweep(d, runs_dir))
        from nnlab.render.metrics import plot_metrics

        return str(plot_metrics(run_id, runs_dir))
    if run_id is None:
        rows = list_runs(runs_dir)
        sweep_rows = comparison.list_sweeps(runs_dir)
        if as_json:
            return json.dumps([*rows, *sweep_rows], indent=2)
        text = tables.render_runs(rows, color)
        if sweep_rows:
            text += "\n\n" + comparison.render_list(sweep_rows, color)
        return text
    if sweeps.is_sweep(run_id, runs_dir):
        d = comparison.describe(run_id, runs_dir)
        return json.dumps(d, indent=2) if as_json else comparison.render(d, color)
    d = describe(run_id, runs_dir)
    return json.dumps(d, indent=2) if as_json else tables.render_run(d, color)
