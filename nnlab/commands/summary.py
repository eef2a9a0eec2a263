"""What the run store holds: a table of runs, or one run in detail, as text or JSON.

Reads only config.yaml, meta.json, metrics.jsonl and file listings: no torch import, so
`nnlab summary` answers quickly even on a large store.
"""

from __future__ import annotations

import dataclasses
import io
import json

from nnlab import families
from nnlab.helpers import files
from nnlab.helpers.console import table_text
from nnlab.helpers.errors import NnlabError
from nnlab.store import folders, metrics, schema


def _status_text(status: str, nothing_yet: bool) -> str:
    if status == "interrupted" and nothing_yet:
        return "interrupted (nothing to resume, start again)"
    return status


def list_runs(runs_dir=None) -> list[dict]:
    """One row per run: id, model, dataset, progress, headline metric, status, created."""
    rows = []
    for run_id in folders.list_run_ids(runs_dir):
        run = folders.Run(folders.runs_root(runs_dir), run_id)
        try:
            folders.check_tree(run.path)  # one odd run is listed as damaged, not a hang
            meta = run.meta()
        except NnlabError as e:
            rows.append({"kind": "run", "id": run_id, "status": "damaged", "problem": str(e)})
            continue
        final = meta.get("final") or {}
        family = families.FAMILIES.get(meta.get("model"))
        name, value = family.headline(final) if family else ("headline", None)
        rows.append(
            {
                "kind": "run",
                "id": run_id,
                "model": meta.get("model"),
                "dataset": meta.get("dataset"),
                "epochs_done": meta.get("epochs_done"),
                "steps_done": meta.get("steps_done"),
                "headline": name,
                "value": value,
                "status": run.status(meta),
                "created": meta.get("created"),
            }
        )
    rows.sort(key=lambda r: (r.get("created") or "", r["id"]))
    return rows


def describe(run_id: str, runs_dir=None) -> dict:
    """Everything about one run: config, parameters, metrics, timings, contents."""
    # numpy-backed readers, imported here so that the runs table starts without numpy
    from nnlab.analysis import cache
    from nnlab.store.record import snapshot_count

    opened = folders.read_run(run_id, runs_dir)  # refuses a damaged or foreign config.yaml
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    _, chunk_max = schema.size_ceilings(cfg, meta)
    problems = []  # damage that does not stop the summary is shown, not hidden
    lines, too_big = _metric_lines(opened, problems)
    try:
        snaps = snapshot_count(run.latents, chunk_max)
    except NnlabError as e:
        snaps, problems = None, [*problems, str(e)]
    nothing_yet = _check_files(opened, too_big, snaps, problems)
    trend = None
    if snaps:
        try:
            trend = cache.trend(run, families.of(cfg).arrays, chunk_max)
        except NnlabError as e:
            problems.append(str(e))
    status = "damaged" if problems else _status_text(run.status(meta), nothing_yet)
    return _description(opened, lines, status, problems, snaps, trend)


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


def _check_files(opened: folders.Opened, too_big: bool, snaps, problems: list[str]) -> bool:
    """Damage to the metrics log, the recording and the checkpoints, added to problems;
    returns whether the run was killed before its first checkpoint (nothing to resume,
    and nothing damaged)."""
    run, meta = opened.run, opened.meta
    log_path = run.metrics
    recorded = int(meta.get("metrics_bytes") or 0)
    if not too_big and (log_path.stat().st_size if log_path.exists() else 0) < recorded:
        problems.append(f"{log_path}: shorter than its last checkpoint recorded (lines lost)")
    elif (
        not too_big
        and "metrics_sha256" in meta  # runs from before checksums existed have none
        and meta["metrics_sha256"] != metrics.prefix_digest(log_path, recorded)
    ):
        problems.append(f"{log_path}: damaged (its checksum differs from meta.json's)")
    if snaps is not None and snaps < int(meta.get("snapshots") or 0):
        problems.append(f"{run.latents}: {meta['snapshots'] - snaps} snapshot(s) missing")
    nothing_yet = not (run.checkpoints / "latest.pt").exists() and not meta.get("steps_done")
    expected = [] if nothing_yet else ["latest.pt"]
    expected += ["final.pt"] if meta.get("status") == "finished" else []
    checkpoint_max = schema.size_ceilings(opened.cfg, meta)[0]
    for name in ("latest.pt", "final.pt"):
        p = run.checkpoints / name
        if p.exists():
            try:
                files.verify_archive(p, checkpoint_max)
            except NnlabError as e:
                problems.append(str(e))
        elif name in expected:
            problems.append(f"{p}: missing")
    return nothing_yet


def _description(opened: folders.Opened, lines, status, problems, snaps, trend) -> dict:
    """The summary of a run as a dict (what --json prints)."""
    from nnlab.store.record import chunk_files

    run, meta = opened.run, opened.meta
    config = dataclasses.asdict(opened.cfg)
    epochs = metrics.of_kind(lines, "epoch")
    seconds = float(meta.get("train_seconds") or 0.0)
    steps = int(meta.get("steps_done") or 0)
    listing = {
        sub: sorted(p.name for p in run.file(sub).iterdir() if not p.name.startswith("."))
        if run.file(sub).is_dir()
        else []
        for sub in ("checkpoints", "media", "embeddings")
    }
    params = meta.get("parameters") or []
    return {
        "id": run.id,
        "path": str(run.path),
        "model": meta.get("model"),
        "status": status,
        "problems": problems,
        **{k: meta.get(k) for k in ("dataset", "dataset_requested", "data_source", "device")},
        "versions": {
            "nnlab": meta.get("nnlab_version"),
            "torch": meta.get("torch_version"),
            "python": meta.get("python"),
        },
        "created": meta.get("created"),
        "ended": meta.get("ended"),
        "config": config,
        "parameters": {"layers": params, "total": sum(p["count"] for p in params)},
        "progress": {
            "epochs_done": meta.get("epochs_done"),
            "steps_done": steps,
            "resumable_step": meta.get("resumable_step"),
            "steps_per_epoch": meta.get("steps_per_epoch"),
        },
        "metrics": {
            "final": epochs[-1] if epochs else (meta.get("final") or {}),
            "best": metrics.best_values(epochs),
            "last_step": next((m for m in reversed(lines) if m.get("kind") == "step"), None),
        },
        "timings": {
            "train_seconds": seconds,
            "steps_per_second": round(steps / seconds, 2) if seconds else None,
        },
        "latent_metrics": trend,
        "unit_health": {
            "first": metrics.health_of(epochs[0]) if epochs else {},
            "last": metrics.health_of(epochs[-1]) if epochs else {},
            "first_epoch": epochs[0].get("epoch") if epochs else None,
            "last_epoch": epochs[-1].get("epoch") if epochs else None,
        },
        "tasks": _task_summary(config, metrics.of_kind(lines, "task")),
        "holds": {
            "checkpoints": listing["checkpoints"],
            "snapshots": snaps,
            "snapshot_chunks": len(chunk_files(run.latents)),
            "probe": meta.get("probe"),
            "media": listing["media"],
            "embeddings": listing["embeddings"],
        },
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


def _console(buf: io.StringIO, color: bool):
    """A console for a terminal (its width, colours), or for a pipe: so wide that nothing
    is wrapped or cut with an ellipsis (grep and awk see every full value)."""
    import shutil

    from rich.console import Console

    width = shutil.get_terminal_size((120, 24)).columns if color else 100_000
    return Console(file=buf, force_terminal=color, width=width, highlight=False)


def render_runs(rows: list[dict], color: bool = False) -> str:
    """The runs table: aligned columns for a terminal (color), tab-separated otherwise."""
    if not rows:
        return "no runs yet: start one with `nnlab train vae`"
    header = ("id", "model", "dataset", "epochs", "steps", "headline", "status", "created")
    cells = []
    for r in rows:
        if r["status"] == "damaged":
            cells.append((r["id"], "-", "-", "-", "-", "-", "damaged", "-"))
            continue
        family = families.FAMILIES.get(r["model"])
        value = family.format_headline(r["value"]) if family else "-"
        cells.append(
            (
                r["id"],
                str(r["model"]),
                str(r["dataset"]),
                str(r["epochs_done"]),
                str(r["steps_done"]),
                f"{r['headline']} {value}",
                r["status"],
                str(r["created"] or "-")[:19].replace("T", " "),
            )
        )
    return table_text(list(header), [list(c) for c in cells], color)


def render_run(d: dict, color: bool = False) -> str:
    """One run's details as text."""
    from rich.table import Table

    buf = io.StringIO()
    c = _console(buf, color)
    c.print(f"[bold]{d['id']}[/]  {d['model']} · {d['status']} · {d['path']}")
    ds = d["dataset"]
    if d.get("dataset_requested") and d["dataset_requested"] != ds:
        ds += f" (asked for {d['dataset_requested']}, not available)"
    c.print(
        f"dataset {ds} from {d['data_source']} · device {d['device']} · "
        f"nnlab {d['versions']['nnlab']}, torch {d['versions']['torch']}"
    )
    c.print(f"created {d['created']} · ended {d['ended'] or '-'}")
    for problem in d.get("problems", []):
        c.print(f"[bold red]damaged:[/] {problem}", soft_wrap=True)
    c.print("\n[bold]config[/]")
    cfg = d["config"]
    c.print("  " + "  ".join(f"{k}={v}" for k, v in cfg.items()), soft_wrap=False)
    t = Table(box=None, header_style="bold", title=None, pad_edge=False)
    for col, just in (("layer", "left"), ("shape", "left"), ("count", "right")):
        t.add_column(col, justify=just)
    for p in d["parameters"]["layers"]:
        t.add_row(p["name"], "×".join(map(str, p["shape"])), f"{p['count']:,}")
    t.add_row("[bold]total[/]", "", f"[bold]{d['parameters']['total']:,}[/]")
    c.print("\n[bold]parameters[/]")
    c.print(t)
    m = d["metrics"]
    c.print("\n[bold]metrics[/] (final epoch, and best over epochs)")
    t = Table(box=None, header_style="bold", pad_edge=False)
    for col, just in (
        ("metric", "left"),
        ("final", "right"),
        ("best", "right"),
        ("at epoch", "right"),
    ):
        t.add_column(col, justify=just)
    for k, v in m["final"].items():
        if k in metrics.POSITION_KEYS or not isinstance(v, (int, float)):
            continue
        if metrics.HEALTH_RE.match(k) or k in metrics.NOT_RANKED:
            continue  # in their own sections
        b = m["best"].get(k)
        t.add_row(k, f"{v:.4f}", f"{b['value']:.4f}" if b else "", str(b["epoch"]) if b else "")
    c.print(t)
    if (d.get("unit_health") or {}).get("last"):
        _render_health(c, d["unit_health"])
    if d.get("tasks"):
        _render_tasks(c, d["tasks"])
    if d.get("latent_metrics"):
        _render_latent(c, d["latent_metrics"], d["dataset"])
    p, tm, h = d["progress"], d["timings"], d["holds"]
    rate = f"{tm['steps_per_second']:,} steps/s" if tm["steps_per_second"] else "-"
    c.print(
        f"\n[bold]progress[/] epoch {p['epochs_done']}, step {p['steps_done']} "
        f"({p['steps_per_epoch']} steps/epoch) · can resume from step {p['resumable_step']}"
    )
    c.print(f"[bold]timings[/] {tm['train_seconds']:.1f} s training · {rate}")
    probe = h.get("probe") or {}
    c.print(
        f"[bold]holds[/] checkpoints: {', '.join(h['checkpoints']) or '-'} · "
        f"{h['snapshots']} latent snapshots of {probe.get('size', '?')} "
        f"{probe.get('split', '')} images · media: {', '.join(h['media']) or '-'} · "
        f"embeddings: {', '.join(h['embeddings']) or '-'}"
    )
    return buf.getvalue().rstrip("\n")


def _render_health(c, uh: dict) -> None:
    """Unit health per hidden layer: first epoch → last epoch."""
    from rich.table import Table

    c.print(
        f"\n[bold]unit health[/] of the hidden layers on the probe images, epoch "
        f"{uh['first_epoch']} → {uh['last_epoch']} (dead: never active; saturated: beyond "
        "0.99 of the range on most images; sparsity: |w| < 1% of the layer's largest)"
    )
    t = Table(box=None, header_style="bold", pad_edge=False)
    numbers = [n for n in metrics.HEALTH_NUMBERS if any(n in v for v in uh["last"].values())]
    t.add_column("layer")
    for n in numbers:
        t.add_column(n.replace("_", " "), justify="right")
    for layer, last in uh["last"].items():
        first = uh["first"].get(layer, {})
        cells = []
        for n in numbers:
            fmt = "{:.1%}" if n in ("dead", "saturated", "sparsity") else "{:.3g}"
            a, b = first.get(n), last.get(n)
            if b is None:
                cells.append("-")
            else:
                cells.append((fmt.format(a) + " → " if a is not None else "") + fmt.format(b))
        t.add_row(layer, *cells)
    c.print(t)


def _render_tasks(c, tasks: dict) -> None:
    """A permuted run's tasks: accuracy at the end of the first, the last, and in between."""
    per = tasks["per_task"]
    c.print(
        f"\n[bold]tasks[/] {tasks['done']} of {tasks['planned']} done, {tasks['every']} "
        "epoch(s) each (task 0: the images as they are; then a new pixel permutation each)"
    )
    acc = [t["test_acc"] for t in per if "test_acc" in t]
    if not acc:
        return
    tenth = max(1, len(acc) // 10)
    c.print(
        f"test accuracy at the end of each task: first {acc[0]:.2%}, best "
        f"{max(acc):.2%} (task {per[acc.index(max(acc))]['task']}), last {acc[-1]:.2%}; "
        f"mean of the first {tenth} task(s) {sum(acc[:tenth]) / tenth:.2%}, "
        f"of the last {tenth} {sum(acc[-tenth:]) / tenth:.2%}",
        soft_wrap=True,
    )


def _pair_name(pair: str, names: list[str]) -> str:
    a, b = (int(x) for x in pair.split("-"))
    return f"{names[a]}–{names[b]}"


def _render_latent(c, lm: dict, dataset: str) -> None:
    """The latent metrics section: start → middle → end of the recording."""
    from rich.markup import escape
    from rich.table import Table

    from nnlab.analysis import latent
    from nnlab.training.data import class_names

    names = class_names(dataset or "")
    start, mid, end = lm["start"], lm["middle"], lm["end"]
    c.print(
        f"\n[bold]latent metrics[/] over the recording (steps {start['step']} → "
        f"{mid['step']} → {end['step']})"
    )
    t = Table(box=None, header_style="bold", pad_edge=False)
    for col, just in (
        ("metric", "left"),
        ("start", "right"),
        ("middle", "right"),
        ("end", "right"),
    ):
        t.add_column(col, justify=just)
    for metric in latent.METRICS:
        if metric.key in end:
            values = (latent.format_metric(metric, x[metric.key]) for x in (start, mid, end))
            t.add_row(escape(metric.label), *values)
    c.print(t)
    # The real class mixtures where they are measured (2-D VAE latents); otherwise the
    # moment-matched Gaussians, which overstate the overlap of multi-modal classes.
    key, kind = (
        ("top_mixture_overlaps", "class mixtures")
        if "top_mixture_overlaps" in end
        else ("top_overlaps", "moment-matched Gaussians")
    )
    pairs = ", ".join(f"{_pair_name(p['pair'], names)}: {p['coefficient']:.2f}" for p in end[key])
    c.print(f"most-overlapping classes at the end ({kind}): {pairs}", soft_wrap=True)
    if "corners" in end:
        corners = ", ".join(
            f"{names[int(k)]} → {v['corner']} ({v['mean_distance']:.2f})"
            for k, v in end["corners"].items()
        )
        c.print(f"class → its usual corner (mean distance): {corners}", soft_wrap=True)


def summarize(
    run_id=None, runs_dir=None, as_json: bool = False, color: bool = False, plot: bool = False
) -> str:
    """The summary text (or JSON) of all runs or one run; with plot, the metrics figure's path."""
    from nnlab.analysis import sweeps

    if plot:
        if run_id is None:
            raise NnlabError("--plot needs a run id: nnlab summary RUN_ID --plot")
        if folders.is_sweep(run_id, runs_dir):
            from nnlab.render.sweepplot import plot_sweep

            return str(plot_sweep(sweeps.describe(run_id, runs_dir), runs_dir))
        from nnlab.render.metrics import plot_metrics

        return str(plot_metrics(run_id, runs_dir))
    if run_id is None:
        rows = list_runs(runs_dir)
        sweep_rows = sweeps.list_sweeps(runs_dir)
        if as_json:
            return json.dumps([*rows, *sweep_rows], indent=2)
        text = render_runs(rows, color)
        if sweep_rows:
            text += "\n\n" + sweeps.render_list(sweep_rows, color)
        return text
    if folders.is_sweep(run_id, runs_dir):
        d = sweeps.describe(run_id, runs_dir)
        return json.dumps(d, indent=2) if as_json else sweeps.render(d, color)
    d = describe(run_id, runs_dir)
    return json.dumps(d, indent=2) if as_json else render_run(d, color)
