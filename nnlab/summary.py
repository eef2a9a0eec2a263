"""What the run store holds: a table of runs, or one run in detail, as text or JSON.

Reads only config.yaml, meta.json, metrics.jsonl and file listings: no torch import, so
`nnlab summary` answers quickly even on a large store.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from nnlab import store
from nnlab.errors import NnlabError


def parse_metrics(path: Path) -> tuple[list[dict], int]:
    """metrics.jsonl as dicts, and how many lines could not be read (a torn last line after
    a crash while appending, or damage)."""
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    out, bad = [], 0
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            out.append(obj)
        else:
            bad += 1
    return out, bad


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl as a list of dicts, unreadable lines skipped."""
    return parse_metrics(path)[0]


def status_of(run: store.Run, meta: dict) -> str:
    """running / finished / interrupted / diverged: 'running' only while a process holds it."""
    status = meta.get("status", "unknown")
    if status == "running" and not run.is_running():
        return "interrupted"
    return status


def headline(model: str, final: dict) -> tuple[str, float | None]:
    """The run's headline metric name and value (test accuracy or test ELBO)."""
    if model == "vae":
        return "test ELBO", final.get("test_elbo")
    return "test acc", final.get("test_acc")


def format_headline(model: str, value: float | None) -> str:
    """The headline value as shown: accuracy in percent, ELBO in nats."""
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if model == "classifier" else f"{value:.2f}"


def list_runs(runs_dir=None) -> list[dict]:
    """One row per run: id, model, dataset, progress, headline metric, status, created."""
    rows = []
    for run_id in store.list_run_ids(runs_dir):
        run = store.Run(store.runs_root(runs_dir), run_id)
        try:
            meta = run.meta()
        except NnlabError as e:
            rows.append({"id": run_id, "status": "damaged", "problem": str(e)})
            continue
        final = meta.get("final") or {}
        name, value = headline(meta.get("model", ""), final)
        rows.append(
            {
                "id": run_id,
                "model": meta.get("model"),
                "dataset": meta.get("dataset"),
                "epochs_done": meta.get("epochs_done"),
                "steps_done": meta.get("steps_done"),
                "headline": name,
                "value": value,
                "status": status_of(run, meta),
                "created": meta.get("created"),
            }
        )
    rows.sort(key=lambda r: (r.get("created") or "", r["id"]))
    return rows


def best_metrics(epoch_lines: list[dict]) -> dict:
    """For each evaluation metric, its best value over epochs and the epoch it came at."""
    best: dict[str, dict] = {}
    for line in epoch_lines:
        for k, v in line.items():
            if k in ("kind", "epoch", "step", "seconds") or not isinstance(v, (int, float)):
                continue
            higher = k.endswith("_acc") or k.endswith("_elbo")
            cur = best.get(k)
            if cur is None or (v > cur["value"] if higher else v < cur["value"]):
                best[k] = {"value": v, "epoch": line.get("epoch"), "step": line.get("step")}
    return best


def describe(run_id: str, runs_dir=None) -> dict:
    """Everything about one run: config, parameters, metrics, timings, contents."""
    import dataclasses

    run = store.open_run(run_id, runs_dir)
    meta = run.meta()
    config = dataclasses.asdict(run.config())  # refuses a damaged or foreign config.yaml
    lines, bad_lines = parse_metrics(run.file("metrics.jsonl"))
    epochs = [m for m in lines if m.get("kind") == "epoch"]
    final = epochs[-1] if epochs else (meta.get("final") or {})
    from nnlab.record import chunk_files, snapshot_count

    problems = []  # damage that does not stop the summary is shown, not hidden
    try:
        snaps = snapshot_count(run.latents)
    except NnlabError as e:
        snaps, problems = None, [*problems, str(e)]
    metrics = run.file("metrics.jsonl")
    if bad_lines:
        problems.append(f"{metrics}: {bad_lines} unreadable line(s) skipped")
    size = metrics.stat().st_size if metrics.exists() else 0
    if size < int(meta.get("metrics_bytes") or 0):
        problems.append(f"{metrics}: shorter than its last checkpoint recorded (lines lost)")
    if snaps is not None and snaps < int(meta.get("snapshots") or 0):
        problems.append(f"{run.latents}: {meta['snapshots'] - snaps} snapshot(s) missing")
    expected = ["latest.pt"] + (["final.pt"] if meta.get("status") == "finished" else [])
    for name in ("latest.pt", "final.pt"):
        p = run.checkpoints / name
        if p.exists():
            try:
                store.verify_archive(p)
            except NnlabError as e:
                problems.append(str(e))
        elif name in expected:
            problems.append(f"{p}: missing")
    seconds = float(meta.get("train_seconds") or 0.0)
    steps = int(meta.get("steps_done") or 0)
    listing = {
        sub: sorted(p.name for p in run.file(sub).iterdir() if not p.name.startswith("."))
        if run.file(sub).is_dir()
        else []
        for sub in ("checkpoints", "media", "embeddings")
    }
    latent = None
    if snaps:
        from nnlab import analysis
        from nnlab.record import load_recording

        try:
            latent = analysis.trend(load_recording(run.latents, meta.get("model", "")))
        except NnlabError as e:
            problems.append(str(e))
    params = meta.get("parameters") or []
    last_step = next((m for m in reversed(lines) if m.get("kind") == "step"), None)
    return {
        "id": run.id,
        "path": str(run.path),
        "model": meta.get("model"),
        "status": status_of(run, meta) if not problems else "damaged",
        "problems": problems,
        "dataset": meta.get("dataset"),
        "dataset_requested": meta.get("dataset_requested"),
        "data_source": meta.get("data_source"),
        "device": meta.get("device"),
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
        "metrics": {"final": final, "best": best_metrics(epochs), "last_step": last_step},
        "timings": {
            "train_seconds": seconds,
            "steps_per_second": round(steps / seconds, 2) if seconds else None,
        },
        "latent_metrics": latent,
        "holds": {
            "checkpoints": listing["checkpoints"],
            "snapshots": snaps,
            "snapshot_chunks": len(chunk_files(run.latents)),
            "probe": meta.get("probe"),
            "media": listing["media"],
            "embeddings": listing["embeddings"],
        },
    }


# ---------------------------------------------------------------- rendering


def _console(buf: io.StringIO, color: bool):
    from rich.console import Console

    return Console(file=buf, force_terminal=color, width=120, highlight=False)


def render_runs(rows: list[dict], color: bool = False) -> str:
    """The runs table as text."""
    from rich.table import Table

    if not rows:
        return "no runs yet: start one with `nnlab train vae`"
    t = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("id", "model", "dataset", "epochs", "steps", "headline", "status", "created"):
        t.add_column(col, no_wrap=True)
    for r in rows:
        if r["status"] == "damaged":
            t.add_row(r["id"], "-", "-", "-", "-", "-", "damaged", "-")
            continue
        value = format_headline(r["model"], r["value"])
        t.add_row(
            r["id"],
            str(r["model"]),
            str(r["dataset"]),
            str(r["epochs_done"]),
            str(r["steps_done"]),
            f"{r['headline']} {value}",
            r["status"],
            str(r["created"] or "-")[:19].replace("T", " "),
        )
    buf = io.StringIO()
    _console(buf, color).print(t)
    return buf.getvalue().rstrip("\n")


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
        if k in ("kind", "epoch", "step") or not isinstance(v, (int, float)):
            continue
        b = m["best"].get(k)
        t.add_row(k, f"{v:.4f}", f"{b['value']:.4f}" if b else "", str(b["epoch"]) if b else "")
    c.print(t)
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


def _pair_name(pair: str, names: list[str]) -> str:
    a, b = (int(x) for x in pair.split("-"))
    return f"{names[a]}–{names[b]}"


def _render_latent(c, lm: dict, dataset: str) -> None:
    """The latent metrics section: start → middle → end of the recording."""
    from rich.markup import escape
    from rich.table import Table

    from nnlab.render.animate import class_names

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
    rows = [
        ("most-overlapping pair (Bhattacharyya)", "overlap_max", "{:.3f}"),
        ("mean pairwise overlap", "overlap_mean", "{:.3f}"),
        ("nearest-class-mean accuracy", "ncm_accuracy", "{:.1%}"),
        ("between/within class spread", "between_within", "{:.2f}"),
        ("shape spread: mean |Δ ln det Σ|", "shape_logdet_spread", "{:.3f}"),
        ("shape spread: sd of ln(λmax/λmin)", "shape_elongation_spread", "{:.3f}"),
        ("active units (Var E[z|x] > 0.01)", "active_units", "{}"),
        ("aggregate posterior KL to N(0, I)", "aggregate_kl_to_prior", "{:.3f}"),
        ("mean distance to nearest cube corner", "corner_distance_mean", "{:.3f}"),
    ]
    for label, key, fmt in rows:
        if key in end:
            t.add_row(escape(label), *(fmt.format(x[key]) for x in (start, mid, end)))
    if "kl_per_dim" in end:
        kl = lambda x: ", ".join(f"{v:.2f}" for v in x["kl_per_dim"])  # noqa: E731
        t.add_row("KL to prior per dimension", kl(start), kl(mid), kl(end))
    c.print(t)
    pairs = ", ".join(
        f"{_pair_name(p['pair'], names)}: {p['coefficient']:.2f}" for p in end["top_overlaps"]
    )
    c.print(f"most-overlapping classes at the end: {pairs}", soft_wrap=True)
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
    if plot:
        if run_id is None:
            raise NnlabError("--plot needs a run id: nnlab summary RUN_ID --plot")
        from nnlab.render.metrics import plot_metrics

        return str(plot_metrics(run_id, runs_dir))
    if run_id is None:
        rows = list_runs(runs_dir)
        return json.dumps(rows, indent=2) if as_json else render_runs(rows, color)
    d = describe(run_id, runs_dir)
    return json.dumps(d, indent=2) if as_json else render_run(d, color)
