"""The summary as text: the runs table, and one run's config, parameters, metrics, unit
health, tasks and latent metrics, from the dicts nnlab.commands.summary builds (what
`--json` prints). rich draws the tables, imported when a page is made."""

from __future__ import annotations

import io
import json

from nnlab import families
from nnlab.helpers.console import table_text
from nnlab.store import metrics
from nnlab.store.meta import Status


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
    # settings last: scripts that cut the first columns keep working
    header = (
        "id",
        "model",
        "dataset",
        "epochs",
        "steps",
        "headline",
        "status",
        "created",
        "settings",
    )
    cells = []
    for r in rows:
        if r["status"] == Status.DAMAGED:
            cells.append((r["id"], "-", "-", "-", "-", "-", Status.DAMAGED, "-", "-"))
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
                _status_word(r),
                str(r["created"] or "-")[:19].replace("T", " "),
                r.get("settings") or "-",
            )
        )
    if any(r.get("tags") for r in rows):  # last, so that scripts cutting columns keep working
        header += ("tags",)
        cells = [
            (*c, " ".join(r.get("tags") or ()) or "-") for c, r in zip(cells, rows, strict=True)
        ]
    return table_text(list(header), [list(c) for c in cells], color)


def _status_word(row: dict) -> str:
    """A run's status in the table; a failure before anything was recorded says so (an
    attempt that went wrong at once, to clear away with nnlab runs rm)."""
    if row["status"] == Status.FAILED and not row.get("snapshots") and not row["steps_done"]:
        return "failed (nothing recorded)"
    return str(row["status"])


def render_run(d: dict, color: bool = False) -> str:
    """One run's details as text."""

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
    if d.get("tags"):
        c.print(f"tags {' '.join(d['tags'])}", markup=False)
    if d.get("note"):  # a person's text: never read as markup
        c.print(f"note {d['note']}", markup=False, soft_wrap=True)
    pruned = d.get(Status.PRUNED)
    if isinstance(pruned, dict) and isinstance(pruned.get("value"), (int, float)):
        search = (d.get("sweep") or {}).get("id", "its search")
        c.print(
            f"pruned by {search} at step {pruned.get('step')}: {pruned.get('metric')} "
            f"{pruned['value']:.6g} (nnlab train --resume {d['id']} trains it on)",
            soft_wrap=True,
        )
    for problem in d.get("problems", []):
        c.print(f"[bold red]damaged:[/] {problem}", soft_wrap=True)
    c.print("\n[bold]config[/]")
    cfg = d["config"]
    shown = (f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in cfg.items())
    c.print("  " + "  ".join(shown), soft_wrap=False)
    _render_parameters(c, d["parameters"])
    _render_metrics(c, d["metrics"])
    if (d.get("unit_health") or {}).get("last"):
        _render_health(c, d["unit_health"])
    if d.get("tasks"):
        _render_tasks(c, d["tasks"])
    if d.get("latent_metrics"):
        _render_latent(c, d["latent_metrics"], d["class_names"])
    if d.get("layers"):
        _render_layers(c, d["layers"])
    _render_progress(c, d)
    h = d["holds"]
    probe = h.get("probe") or {}
    c.print(
        f"[bold]holds[/] checkpoints: {', '.join(h['checkpoints']) or '-'} · "
        f"{h['snapshots']} latent snapshots of {probe.get('size', '?')} "
        f"{probe.get('split', '')} images · media: {', '.join(h['media']) or '-'} · "
        f"embeddings: {', '.join(h['embeddings']) or '-'}"
    )
    return buf.getvalue().rstrip("\n")


def _render_progress(c, d: dict) -> None:
    """Where the run stands, who can resume it, and how fast it trained."""
    p, tm = d["progress"], d["timings"]
    rate = f"{tm['steps_per_second']:,} steps/s" if tm["steps_per_second"] else "-"
    per_epoch = f" ({p['steps_per_epoch']} steps/epoch)" if p["steps_per_epoch"] else ""
    family = families.FAMILIES.get(d["model"])
    if not p["resumable_step"]:
        resume = "no checkpoint"
    elif family is not None and not family.rebuildable:  # nnlab train --resume refuses it
        resume = f"a checkpoint at step {p['resumable_step']}, for your own code to resume from"
    else:
        resume = f"can resume from step {p['resumable_step']}"
    c.print(
        f"\n[bold]progress[/] epoch {p['epochs_done']}, step {p['steps_done']}{per_epoch} · "
        + resume
    )
    c.print(f"[bold]timings[/] {tm['train_seconds']:.1f} s training · {rate}")


def _render_parameters(c, params: dict) -> None:
    """The parameter table: each tensor's shape and count, and the total."""
    from rich.table import Table

    t = Table(box=None, header_style="bold", title=None, pad_edge=False)
    for col, just in (("layer", "left"), ("shape", "left"), ("count", "right")):
        t.add_column(col, justify=just)
    for p in params["layers"]:
        t.add_row(p["name"], "×".join(map(str, p["shape"])), f"{p['count']:,}")
    t.add_row("[bold]total[/]", "", f"[bold]{params['total']:,}[/]")
    c.print("\n[bold]parameters[/]")
    c.print(t)


def _render_metrics(c, m: dict) -> None:
    """Each metric of the last epoch, and its best over the epochs."""
    from rich.table import Table

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


OVERLAP_DIMS = 8  # wider layers: overlaps shown as n/a (they say little there)


def _render_latent(c, lm: dict, names: list[str]) -> None:
    """The latent metrics section: start → middle → end of the recording."""
    from rich.markup import escape
    from rich.table import Table

    from nnlab.analysis import latent

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
    width = int(lm.get("width") or 0)
    wide = width > OVERLAP_DIMS  # an overlap there is near 0 for nearly any two classes
    for metric in latent.METRICS:
        if metric.key in end:
            values = [latent.format_metric(metric, x[metric.key]) for x in (start, mid, end)]
            if wide and "overlap" in metric.key:
                values = ["n/a"] * 3
            t.add_row(escape(metric.label), *values)
    c.print(t)
    if wide:
        c.print(
            f"overlaps: n/a for a {width}-D layer: Gaussians fitted in {width} dimensions to "
            "classes that differ even slightly barely overlap, so the numbers say little; "
            "the nearest-class-mean accuracy compares the classes at any width",
            soft_wrap=True,
        )
    else:
        _render_pairs(c, end, names)
    _corners(c, end, names)


def _render_pairs(c, end: dict, names: list[str]) -> None:
    """The most-overlapping class pairs at the end of the recording."""
    # The real class mixtures where they are measured (2-D VAE latents); otherwise the
    # moment-matched Gaussians, which overstate the overlap of multi-modal classes.
    key, kind = (
        ("top_mixture_overlaps", "class mixtures")
        if "top_mixture_overlaps" in end
        else ("top_overlaps", "moment-matched Gaussians")
    )
    pairs = ", ".join(f"{_pair_name(p['pair'], names)}: {p['coefficient']:.2f}" for p in end[key])
    c.print(f"most-overlapping classes at the end ({kind}): {pairs}", soft_wrap=True)


def _corners(c, end: dict, names: list[str]) -> None:
    """Where each class sits on a 3-node layer's cube."""
    if "corners" in end:
        corners = ", ".join(
            f"{names[int(k)]} → {v['corner']} ({v['mean_distance']:.2f})"
            for k, v in end["corners"].items()
        )
        c.print(f"class → its usual corner (mean distance): {corners}", soft_wrap=True)


def _render_layers(c, lay: dict) -> None:
    """The recorded layers' separation and settling, start → end, and neural collapse."""
    from rich.markup import escape
    from rich.table import Table

    from nnlab.analysis.layers import NC_KEYS

    first, last = lay["steps"]
    c.print(
        f"\n[bold]layers[/] over the recording (steps {first} → {last}; nnlab layers draws them)"
    )
    t = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("layer", "probe accuracy", "NCM accuracy", "CKA to final at start"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for name, v in lay["layers"].items():
        t.add_row(
            escape(name),
            f"{v['probe'][0]:.3f} → {v['probe'][1]:.3f}",
            f"{v['ncm'][0]:.3f} → {v['ncm'][1]:.3f}",
            f"{v['cka_final'][0]:.3f}",
        )
    c.print(t)
    nc = lay.get("collapse")
    if nc:
        parts = [
            f"{k.upper()} {a:.3g} → {b:.3g}"
            for k, (a, b) in nc.items()
            if k in (*NC_KEYS, "error") and a is not None
        ]
        c.print(f"neural collapse of {escape(lay['collapse_layer'])}: " + " · ".join(parts))
