"""`nnlab summary SWEEP_ID`: one row per point (swept values, status, final metrics, latent
metrics at the end of training), points that differ only in seed pooled as mean ± sd, and
the sweeps listed beside the runs in `nnlab summary`."""

from __future__ import annotations

import math

from nnlab import families
from nnlab.families.family import Column
from nnlab.helpers.console import table_text
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import text_of
from nnlab.store import folders, sweeps
from nnlab.store.meta import Status


def describe(sweep_id: str, runs_dir=None) -> dict:
    """Everything about a sweep: its record, and each point's status and metrics."""
    sweep = sweeps.open_sweep(sweep_id, runs_dir)
    rec = sweep.record()
    columns = families.get(rec["model"]).sweep_columns
    points = []
    for i, p in enumerate(rec["points"]):
        status = sweep.point_status(rec, i)
        if status == Status.PENDING and p["status"] == Status.FAILED:
            status = Status.FAILED  # refused before it ran (values outside a search's space)
        metrics, problem = _point_metrics(sweep.root, p, columns)
        if problem and problem.startswith(DISAGREE):
            status = Status.DAMAGED
        points.append(
            {
                "index": i,
                "run": p["run"],
                "values": p["values"],
                "status": status,
                "error": p.get("error") or problem,
                "metrics": metrics,
            }
        )
    counts: dict[str, int] = {}
    for p in points:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    out = {
        "id": sweep.id,
        "path": str(sweep.path),
        "kind": "sweep",
        "model": rec["model"],
        "status": _sweep_status(rec, points),
        "command": rec.get("command"),
        "created": rec.get("created"),
        "ended": rec.get("ended"),
        "settings": rec.get("settings"),
        "grid": rec["grid"],
        "counts": counts,
        "columns": [c.key for c in columns],
        "points": points,
        "seed_groups": seed_groups(rec["grid"], points, [c.key for c in columns]),
    }
    if rec.get("search"):
        from nnlab.analysis import trials

        out["search"] = trials.describe(sweep, rec, points)
    return out


def _sweep_status(rec: dict, points: list[dict]) -> str:
    if any(p["status"] == Status.RUNNING for p in points):
        return Status.RUNNING
    if all(p["status"] == Status.FINISHED for p in points):
        return Status.FINISHED
    return rec.get("status", Status.INTERRUPTED)


DISAGREE = "sweep.json disagrees with its run"


def _point_metrics(root, point: dict, columns) -> tuple[dict, str | None]:
    """A point's final metrics (last epoch) and latent metrics (last snapshot), once its
    run's own config (sealed by its meta.json) shows the values sweep.json says it has."""
    from nnlab.analysis import cache
    from nnlab.store import record

    out: dict = {c.key: None for c in columns}
    run_id = point["run"]
    path = root / run_id
    if not (path / folders.META_FILE).exists():
        return out, None
    try:
        run = folders.open_run(run_id, root)
        meta = run.meta()
        cfg = run.config(meta)  # sweep.json says what was asked; the run, what was done
        for key, asked in point["values"].items():
            done = getattr(cfg, key, None)
            if done != asked:
                return out, (
                    f"{DISAGREE}: it says {key}={text_of(asked)}, run {run_id} was trained "
                    f"with {key}={text_of(done)}"
                )
        final = meta.final
        for c in columns:
            if not c.latent and isinstance(final.get(c.key), (int, float)):
                out[c.key] = float(final[c.key])
        if meta.status == Status.FINISHED and record.chunk_files(run.latents):
            latent = cache.last_of(run, cfg, meta)  # from the cache while it is current
            for c in columns:
                if c.latent and c.key in latent:
                    out[c.key] = float(latent[c.key])
    except NnlabError as e:
        return out, str(e)
    return out, None


def seed_groups(grid: dict, points: list[dict], keys: list[str]) -> list[dict]:
    """Where seed is swept: the finished points that differ only in seed, pooled: each
    metric's mean and sample sd (n - 1) over the seeds. Empty when seed is not swept."""
    if "seed" not in grid:
        return []
    others = [k for k in grid if k != "seed"]
    groups: dict[str, dict] = {}
    for p in points:
        key = repr([p["values"][k] for k in others])
        g = groups.setdefault(key, {"values": {k: p["values"][k] for k in others}, "rows": []})
        if p["status"] == Status.FINISHED:
            g["rows"].append(p)
    out = []
    for g in groups.values():
        rows = g["rows"]
        stats: dict[str, dict] = {}
        for k in keys:
            xs = [r["metrics"][k] for r in rows if r["metrics"].get(k) is not None]
            if xs:
                mean = sum(xs) / len(xs)
                var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
                stats[k] = {"mean": mean, "sd": math.sqrt(var), "n": len(xs)}
        out.append(
            {
                "values": g["values"],
                "seeds": [r["values"]["seed"] for r in rows],
                "metrics": stats,
            }
        )
    return out


def list_sweeps(runs_dir=None) -> list[dict]:
    """One row per sweep: id, model, points, how many finished, status, created."""
    rows = []
    for sweep_id in sweeps.list_sweep_ids(runs_dir):
        sweep = sweeps.Sweep(folders.runs_root(runs_dir), sweep_id)
        try:
            rec = sweep.record()
        except NnlabError as e:
            rows.append(
                {"kind": "sweep", "id": sweep_id, "status": Status.DAMAGED, "problem": str(e)}
            )
            continue
        statuses = [p["status"] for p in rec["points"]]
        rows.append(
            {
                "kind": "sweep",
                "id": sweep_id,
                "model": rec["model"],
                "points": len(statuses),
                Status.FINISHED.value: statuses.count(Status.FINISHED),
                "grid": {k: len(v) for k, v in rec["grid"].items()},
                "search": (rec.get("search") or {}).get("method"),
                "trials": (rec.get("search") or {}).get("trials"),
                "status": Status.RUNNING if _locked(sweep) else rec.get("status"),
                "created": rec.get("created"),
            }
        )
    return rows


def _locked(sweep: sweeps.Sweep) -> bool:
    from nnlab.helpers.files import is_locked

    return is_locked(sweep.lock_file)


# ---------------------------------------------------------------- rendering


def _fmt(col: Column, value) -> str:
    return "-" if value is None else col.fmt.format(value)


def render(d: dict, color: bool = False) -> str:
    """A sweep as text: what it is, a row per point, and the seed-pooled rows (a search:
    its trials, best trial and importances, analysis.trials)."""
    if "search" in d:
        from nnlab.analysis import trials

        return trials.render(d, d["search"], color)
    columns = [c for c in families.get(d["model"]).sweep_columns if c.key in d["columns"]]
    fields = list(d["grid"])
    counts = ", ".join(f"{n} {s}" for s, n in sorted(d["counts"].items()))
    grid_words = " × ".join(f"{len(v)} {k}" for k, v in d["grid"].items())
    lines = [
        f"sweep {d['id']} · {d['model']} · {len(d['points'])} points ({grid_words}): {counts}",
        f"command: {d['command']}",
        "",
    ]
    header = ["run", *fields, "status", *(c.label for c in columns)]
    cells = [
        [
            p["run"],
            *(text_of(p["values"][k]) for k in fields),
            p["status"],
            *(_fmt(c, p["metrics"].get(c.key)) for c in columns),
        ]
        for p in d["points"]
    ]
    lines.append(table_text(header, cells, color))
    if d["seed_groups"]:
        others = [k for k in fields if k != "seed"]
        header = [*others, "seeds", *(c.label for c in columns)]
        cells = []
        for g in d["seed_groups"]:
            row = [*(text_of(g["values"][k]) for k in others), str(len(g["seeds"]))]
            for c in columns:
                s = g["metrics"].get(c.key)
                row.append("-" if s is None else f"{_fmt(c, s['mean'])} ± {_fmt(c, s['sd'])}")
            cells.append(row)
        lines += ["", "mean ± sd over seeds (finished points):", table_text(header, cells, color)]
    failed = [
        p for p in d["points"] if p["status"] in (Status.FAILED, Status.DIVERGED) and p["error"]
    ]
    if failed:
        lines += ["", *(f"{p['run']}: {p['status']}: {p['error']}" for p in failed)]
    return "\n".join(lines)


def render_list(rows: list[dict], color: bool = False) -> str:
    """The sweeps table shown under the runs table."""
    header = ["sweep", "model", "grid", Status.FINISHED, "status", "created"]
    cells = []
    for r in rows:
        if r["status"] == Status.DAMAGED:
            cells.append([r["id"], "-", "-", "-", Status.DAMAGED, "-"])
            continue
        grid = " × ".join(f"{n} {k}" for k, n in r["grid"].items())
        if r.get("search"):
            grid = f"{r['search']} search, {r['trials']} trials"
        cells.append(
            [
                r["id"],
                r["model"],
                grid,
                f"{r[Status.FINISHED]}/{r['points']}",
                str(r["status"]),
                str(r["created"] or "-")[:19].replace("T", " "),
            ]
        )
    return table_text(header, cells, color)
