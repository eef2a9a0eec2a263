"""`nnlab report`: one self-contained HTML page per run, runs or sweep, to explore the
latent space in a browser: a step slider over the recording, play/pause, hover for an
image, class toggles, sprites, 3-D rotation, metric plots with a cursor, and the masks or
the decoded manifold at the nearest kept checkpoint.

The page is one file: the data is JSON inside a <script> element and the script and styles
are inline (nnlab/assets/page.html and page.js, which `nnlab serve` serves as they are,
the data fetched), so it opens from disk with no network. What makes
it small enough:
- the probe points drawn are a class-stratified subsample of the recording (--points,
  the same choice as the recording's own probe set), said on the page;
- every recorded coordinate is quantised to 16 bits over its own range across the whole
  recording: lo + q * (hi - lo) / 65535, an error of at most (hi - lo) / 131070; a VAE's
  standard deviations are quantised the same way in log space (relative error at most
  (ln hi - ln lo) / 131070);
- images are 8-bit, C×H×W each (grey or colour, any size), once per probe image drawn.
Numbers in the data are base64 of little-endian arrays.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from nnlab import families
from nnlab.analysis import cache
from nnlab.analysis.layers import NC_KEYS
from nnlab.helpers import files
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError
from nnlab.render.sources import differing_labels, probe_images, source_limits
from nnlab.render.style import class_colors
from nnlab.store import folders, metrics, record, schema, sweeps

SERIES_POINTS = 60  # latent metrics over training: snapshots measured for the plots
EXTRA_TITLES = {  # a family's checkpoint pictures in the page, by picture
    "decode": "Decoded manifold at the nearest kept checkpoint",
    "masks": "Masks (first-layer weights) at the nearest kept checkpoint",
}
Q = 65535


def report(
    ids: list[str], runs_dir=None, *, points, out=None, projection=None, console=None
) -> str:
    """Write the page for the runs (a sweep stands for its points); return its path. points:
    the probe images drawn (its default where the command is declared); projection: draw a
    wide layer through this 2-D embedding (pca, tsne, umap; default: a t-SNE or UMAP
    `nnlab project` kept in the run, else PCA)."""
    if not ids:
        raise NnlabError("name a run or sweep: nnlab report RUN_ID|SWEEP_ID [RUN_ID ...]")
    path = _output_path(out, ids[0], runs_dir)
    payload = page_data(ids, runs_dir, points=points, projection=projection, console=console)
    files.write_text(path, page_html(payload))
    return str(path)


def page_asset(name: str) -> str:
    """The page's shell (page.html) or script (page.js), as nnlab ships them."""
    from importlib import resources

    return (resources.files("nnlab") / "assets" / name).read_text("utf-8")


def page_html(payload: dict) -> str:
    """The self-contained page: the shell with the script and the data inside it."""
    page = page_asset("page.html").replace(
        "<!--NNLAB_SCRIPT-->", f"<script>\n{page_asset('page.js')}</script>"
    )
    return page.replace("/*NNLAB_DATA*/null", script_json(payload))


class NothingYet(NnlabError):
    """A sweep none of whose points has started: nothing to show yet (a served page waits)."""


def page_data(
    ids: list[str],
    runs_dir=None,
    *,
    points,
    projection=None,
    console=None,
    last_only=False,
    since: int | None = None,
) -> dict:
    """What the page shows of the runs (a sweep stands for its points): the report file's
    data, and what `nnlab serve` sends a page (last_only: each recording's newest snapshot
    alone, on the whole recording's axes: a served page's first paint, the rest after;
    since: the snapshots after that step alone, when the recording still holds it: a
    following page appends them instead of fetching the whole again)."""
    console = console or stderr_console()
    points = page_points(points)
    run_ids, notes = _expand(ids, runs_dir)
    opened = [folders.read_run(r, runs_dir) for r in run_ids]
    first = opened[0].run.id if ids[0] == "latest" else ids[0]  # the title names the run
    runs, cfgs = [o.run for o in opened], [o.cfg for o in opened]
    models = {c.model for c in cfgs}
    if len(models) > 1:
        kinds = ", ".join(f"{r.id} is a {c.model}" for r, c in zip(runs, cfgs, strict=True))
        raise NnlabError(f"runs of different models cannot share a report ({kinds})")
    payload = {
        "colors": [],  # one per class of the run with the most, once the runs are read
        "title": first if len(ids) == 1 else f"{first} and {len(run_ids) - 1} more",
        "notes": notes,
        "runs": [],
        "differences": _differences(cfgs),
        "quantisation": "16-bit per coordinate over its range (sd in log space)",
        **_family_payload(families.of(cfgs[0])),
    }
    images: dict = {}
    for o in opened:
        shown = Shown(last_only, since)
        payload["runs"].append(_run_payload(o, points, images, console, projection, shown))
    labels = differing_labels(cfgs) if len(cfgs) > 1 else [r.id for r in runs]
    if len(set(labels)) < len(labels):  # the same settings: their ids tell them apart
        labels = [r.id for r in runs]
    for run, label in zip(payload["runs"], labels, strict=True):
        run["label"] = label  # what tells it apart in legends: "β = 10", not "run 2"
    _share_limits([r["latent"] for r in payload["runs"] if r["latent"]])
    payload["search"] = _search_payload(ids[0], runs_dir)
    payload["colors"] = _colors(max(len(r["class_names"]) for r in payload["runs"]))
    payload["images"] = {k: {"b64": _b64(v), "shape": list(v.shape[1:])} for k, v in images.items()}
    return payload


# Inside a <script> element the HTML parser still looks for "</script", "<!--" and
# "<script" (the double-escaped state, which swallows the page's own script): no "<" may
# reach it. JSON may spell any character as \uXXXX, and the page's JSON.parse reads it back.
_SCRIPT_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(payload) -> str:
    """payload as JSON that is safe inside a <script> element, whatever its strings hold."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).translate(_SCRIPT_ESCAPES)


def _share_limits(latents: list[dict]) -> None:
    """Give the panels drawn the same way (densities, points) one scale, `shared_limits`
    (a square for densities, so the prior's circles stay round and equal)."""
    for kind in ("density", "scatter", "scatter3d"):
        group = [L for L in latents if L["kind"] == kind]
        if len(group) < 2:
            continue
        width = len(group[0]["limits"])
        lim = [(min if k % 2 == 0 else max)(L["limits"][k] for L in group) for k in range(width)]
        if kind == "density":
            x0, x1, y0, y1 = lim
            span, cx, cy = max(x1 - x0, y1 - y0), (x0 + x1) / 2, (y0 + y1) / 2
            lim = [cx - span / 2, cx + span / 2, cy - span / 2, cy + span / 2]
        for L in group:
            L["shared_limits"] = lim


def page_points(points, name: str = "points") -> int:
    """--points: how many probe points the page draws, 10 to 20,000."""
    try:
        n = int(str(points))
    except ValueError:
        raise NnlabError(f"--points={points}: expected a whole number, e.g. 1000") from None
    if not 10 <= n <= 20000:
        raise NnlabError(f"--points={points}: choose 10 to 20000 probe points for the page")
    return n


def _expand(ids: list[str], runs_dir) -> tuple[list[str], list[str]]:
    """Run ids (a sweep's points in its place), at most sweeps.MAX_ON_A_PAGE, and what
    was left out."""
    for item in ids:
        if not sweeps.is_sweep(item, runs_dir):
            folders.validate_id(item)
    found = sweeps.expand_sweeps(
        ids, runs_dir, lambda p: (p / folders.META_FILE).exists(), sweeps.MAX_ON_A_PAGE
    )
    notes = [
        f"sweep {s.id}: {total - kept} point(s) not started" for s, kept, total in found.partial
    ]
    if not found.runs:
        raise NothingYet(f"{ids[0]}: no run to show yet")
    if found.before_cap > sweeps.MAX_ON_A_PAGE:
        notes.append(f"showing the first {sweeps.MAX_ON_A_PAGE} of {found.before_cap} runs")
    return found.runs, notes


def _output_path(out, first: str, runs_dir) -> Path:
    """--out=FILE.html (its folder must exist), or report.html in the first id's media."""
    if out:
        path = Path(str(out)).expanduser().absolute()  # printed absolute, as other paths
        if path.suffix.lower() != ".html":
            raise NnlabError(f"--out={out}: give a file name ending in .html")
        if not path.parent.is_dir():
            raise NnlabError(f"--out={out}: the folder {path.parent} does not exist")
        return path
    folder = (
        sweeps.open_sweep(first, runs_dir)
        if sweeps.is_sweep(first, runs_dir)
        else folders.open_run(first, runs_dir)
    ).media
    folder.mkdir(exist_ok=True)
    return folder / "report.html"


def _differences(cfgs) -> list[str]:
    """Config fields whose values differ between the runs (highlighted on the page)."""
    dicts = [dataclasses.asdict(c) for c in cfgs]
    keys = list(dicts[0])
    return [k for k in keys if any(d.get(k) != dicts[0].get(k) for d in dicts)]


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(
        np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    ).decode()


def quantise(a: np.ndarray) -> dict:
    """16-bit codes of a float array over its own range: {b64, lo, hi, shape}."""
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if hi <= lo:
        hi = lo + 1.0
    q = np.clip(np.nan_to_num((a - lo) / (hi - lo), nan=0.0), 0, 1)
    codes = np.round(q * Q).astype(np.uint16)
    return {"b64": _b64(codes), "lo": lo, "hi": hi, "shape": list(a.shape)}


@dataclasses.dataclass(frozen=True)
class Shown:
    """Which snapshots of a recording a page is sent: all, the newest alone (last_only), or
    those after the step `since`."""

    last_only: bool = False
    since: int | None = None

    def pick(self, steps: np.ndarray) -> tuple[np.ndarray, int | None]:
        """(indices of the snapshots sent, the step they follow, or None: all of them)."""
        if self.last_only:
            return np.arange(len(steps))[-1:], None
        if self.since is not None and self.since in steps:  # else the recording was cut back
            return np.flatnonzero(steps > self.since), self.since
        return np.arange(len(steps)), None


def _run_payload(
    opened: folders.Opened, points: int, images: dict, console, projection=None, shown=Shown()
) -> dict:
    """Everything the page shows of one run."""
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    lines = []
    try:
        schema.check_metrics(run.metrics, cfg, meta)
        lines = metrics.read(run.metrics)
    except NnlabError as e:
        console.print(f"{run.id}: metrics left out ({e})")
    params = meta.parameters
    out = {
        "id": run.id,
        "model": cfg.model,
        "dataset": meta.dataset,
        "status": meta.status,
        "parameters": sum(p["count"] for p in params),
        "config": dataclasses.asdict(cfg),
        "final": {k: v for k, v in meta.final.items() if _number(v)},
        "class_names": record.run_class_names(run.latents, cfg),
        "metrics": _metric_series(lines),
        "latent": None,
        "left_out": [],
        "extras": [],
    }
    if not record.chunk_files(run.latents):
        out["left_out"].append(
            f"no latent recording ({families.of(cfg).unrecorded(cfg)}): the latent explorer "
            "is left out; the metrics are shown"
        )
        return out
    out["latent"] = _latent_payload(run, cfg, meta, points, images, projection, shown)
    chunk_max = schema.size_ceilings(cfg, meta)[1]
    arrays = families.of(cfg).arrays
    out["metrics"]["latent"] = cache.series(run, arrays, chunk_max, SERIES_POINTS)
    out["metrics"]["layers"] = _layer_series(opened, console)
    if families.of(cfg).pictures:  # the masks or the decoded manifold at each checkpoint
        out["extras"] = _extras(run, cfg, meta, console)
    return out


def _search_payload(item: str, runs_dir) -> dict | None:
    """A search's trials as the page charts them (each trial's value by its number, and
    the best so far, with its status), or None for a run or a grid."""
    from nnlab.analysis import comparison

    if not sweeps.is_sweep(item, runs_dir):
        return None
    search = comparison.describe(item, runs_dir).get("search")
    if not search:
        return None
    plan = search["plan"]
    return {
        "metric": plan["metric"],
        "direction": plan["direction"],
        "trials": [
            {"index": t["index"], "run": t["run"], "status": t["status"], "value": t.get("value")}
            for t in search["trials"]
        ],
    }


def _layer_series(opened: folders.Opened, console) -> dict | None:
    """A recording of several layers' measures the page charts (each layer's probe
    accuracy and CKA to its final state, the collapse), or None (one layer recorded)."""
    from nnlab.store import layers

    if not layers.several(opened.run.layers):
        return None
    try:
        m = cache.layer_measures(opened.run, opened.cfg, opened.meta)
    except NnlabError as e:
        console.print(f"{opened.run.id}: layer measures left out ({e})")
        return None
    nc = m["collapse"]
    return {
        "step": m["steps"],
        "names": m["names"],
        "probe": m["probe"],
        "cka_final": m["cka_final"],
        "collapse_layer": m["collapse_layer"],
        "collapse": {k: nc[k] for k in NC_KEYS} if nc else None,
    }


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _metric_series(lines: list[dict]) -> dict:
    """Loss per log step, and every numeric key of the epoch and task lines, by step."""
    steps = metrics.of_kind(lines, "step")
    epochs = metrics.of_kind(lines, "epoch")
    keys = []
    for line in epochs:
        keys += [k for k, v in line.items() if k not in keys and _number(v)]
    keys = [k for k in keys if k not in metrics.POSITION_KEYS]
    return {
        "train_step": [m["step"] for m in steps],
        "train_loss": [m.get("loss") for m in steps],
        "epoch_step": [m["step"] for m in epochs],
        "epoch": {k: [m.get(k) if _number(m.get(k)) else None for m in epochs] for k in keys},
    }


def _latent_payload(
    run, cfg, meta, points: int, images: dict, projection=None, shown: Shown = Shown()
) -> dict:
    """The subsampled, quantised recording, as the page draws it (`shown`: the snapshots
    sent, on the axes of the whole)."""
    from nnlab.analysis import projection as projections
    from nnlab.render.sources import load_source, projected

    src = load_source(run.id, run.root, "auto")
    if projection is not None:  # asked for: made now if it is not kept in the run
        src = projected(src, str(projection), points=min(points, len(src.rec.labels)))
    elif src.kind == "scatter" and src.rec.points.shape[2] > 2:
        kept = projections.stored(run)  # `nnlab project` made one: draw it
        if kept is not None:
            src = projected(src, kept[0], points=kept[1], every=kept[2])
    rec = src.rec
    n = len(rec.labels)
    keep = np.sort(record.probe_indices(rec.labels, min(points, n), cfg.seed))
    labels = rec.labels[keep]
    sent, after = shown.pick(rec.steps)
    payload = {
        "kind": src.kind,
        "total_points": n,
        "points": len(keep),
        "labels": labels.astype(int).tolist(),
        "steps": rec.steps[sent].astype(int).tolist(),
        "epochs": [round(float(e), 6) for e in rec.epochs[sent]],
        "complete": not shown.last_only or len(rec.steps) == 1,
        "since": after,  # the page's newest step: these snapshots follow it
        "axis_labels": list(src.axis_labels),
        "limits": [float(x) for x in source_limits(src, np.unique(src.rec.labels).tolist())],
        # value ticks on the panel's axes, except for t-SNE/UMAP, whose axes mean nothing
        "ticks": src.kind != "scatter3d" and src.method in ("", "PCA"),
        "split": rec.split,
        "indices": rec.indices[keep].astype(int).tolist(),
        "every": families.of(cfg).tasks_every(cfg),
        "total_epochs": cfg.epochs,
    }
    if src.kind == "density":
        payload["mu"] = quantise(rec.points[sent][:, keep])
        sd = np.maximum(rec.sd[sent][:, keep].astype(np.float64), 1e-12)
        payload["log_sd"] = quantise(np.log(sd))
    else:
        payload["coords"] = quantise(src.points[sent][:, keep])
    # runs that drew the same probe images share one copy of them in the page
    digest = hashlib.sha256(rec.indices[keep].astype("<i8").tobytes()).hexdigest()[:16]
    key = f"{run.id if rec.split == 'probe' else cfg.dataset}:{rec.split}:{digest}"
    if key not in images:
        images[key] = probe_images(run, cfg, rec.split, rec.indices, keep)
    payload["images"] = key
    return payload


def _colors(n: int) -> list[str]:
    """One colour per class of n."""
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in class_colors(n)]


def _family_payload(family) -> dict:
    """What the page draws differently for the runs' family: the quality plot's title and
    keys, and the title of the checkpoint pictures."""
    extras = [EXTRA_TITLES[p] for p in sorted(family.pictures) if p in EXTRA_TITLES]
    return {
        "quality": {"title": family.quality_title, "keys": list(family.quality_keys)},
        "extras_title": extras[0] if extras else "",
    }


def _extras(run, cfg, meta, console) -> list[dict]:
    """Per kept checkpoint (by step): the classifier's masks or the VAE's decoded manifold,
    as grey 8-bit images."""
    from nnlab.render.decode import manifold_mosaic, manifold_points
    from nnlab.render.masks import mask_weights, unit_titles, weight_scale
    from nnlab.training.models import build_model

    ceiling = schema.size_ceilings(cfg, meta)[0]
    seen, out = set(), []
    cks = []
    for p in sorted(run.checkpoints.glob("*.pt")):
        try:
            ck = files.load_checkpoint(p, max_bytes=ceiling)
        except NnlabError as e:
            console.print(f"{run.id}: {p.name} left out ({e})")
            continue
        cks.append((int(ck["step"]), ck))
    for step, ck in sorted(cks, key=lambda c: c[0]):
        if step in seen:
            continue
        seen.add(step)
        if "decode" in families.of(cfg).pictures:
            means = None
            if cfg.latent_dim != 2:
                last = record.load_last(run.latents, families.of(cfg).arrays)
                means = last.points[0].astype(np.float64)
            mosaic = manifold_mosaic(cfg, ck, manifold_points(cfg.latent_dim, means))
            out.append(
                {
                    "step": step,
                    "what": "manifold",
                    "width": mosaic.shape[1],
                    "height": mosaic.shape[0],
                    "channels": 3 if mosaic.ndim == 3 else 1,  # RGB pixels interleaved
                    "b64": _b64(mosaic),
                }  # fmt: skip
            )
        else:
            model = build_model(cfg)
            model.load_state_dict(ck["model"])
            model.eval()
            weights, composed = mask_weights(cfg, model)  # (units, C, H, W)
            w = weights[:16]
            vmax = weight_scale(w)
            # 127.5 is a zero weight; a colour unit's three channels are its R, G, B
            codes = np.round((np.clip(w / vmax, -1, 1) + 1) * 127.5).astype(np.uint8)
            out.append(
                {
                    "step": step,
                    "what": "composed masks" if composed else "masks",
                    "units": len(w),
                    "channels": int(w.shape[1]),
                    "height": int(w.shape[2]),
                    "width": int(w.shape[3]),
                    "titles": unit_titles(cfg, list(range(len(w)))),
                    "vmax": vmax,
                    "b64": _b64(codes),
                }  # fmt: skip
            )
    return out
