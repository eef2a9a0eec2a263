"""What nnlab reads back must have the shape it wrote: meta.json's values, a checkpoint's
loop position, and the most bytes a run's files can hold. Every check raises RunError with
one line naming the file and the value, so a planted or damaged value is never used."""

from __future__ import annotations

import math

from nnlab import families
from nnlab.helpers.errors import RunDamaged
from nnlab.store.meta import POINT_STATUSES, RUN_STATUSES, Meta, Status


def size_ceilings(cfg, meta: dict) -> tuple[int, int]:
    """(checkpoint bytes, chunk-array bytes): the most a run's files can rightly hold, from
    its config and meta.json, as its family counts them (Family.ceilings)."""
    return families.of(cfg).ceilings(cfg, meta)


def metrics_ceiling(cfg, meta: dict) -> int:
    """The most bytes a run's metrics.jsonl can rightly hold (Family.metrics_ceiling)."""
    return families.of(cfg).metrics_ceiling(cfg, meta)


def check_metrics_size(path, cfg, meta: dict) -> None:
    """Refuse a metrics.jsonl larger than metrics_ceiling, before anyone reads it."""
    from pathlib import Path

    size = Path(path).stat().st_size if Path(path).exists() else 0
    if size > metrics_ceiling(cfg, meta):
        raise RunDamaged(f"{path}: damaged (larger than this run can have written)")


FORMAT_VERSION = 1  # of a run's layout: bump when it changes incompatibly


def check_metrics_digest(path, meta: dict) -> None:
    """Refuse a metrics.jsonl whose lines up to the last checkpoint are not the ones
    meta.json sealed (lost, or changed); lines after it are not sealed yet."""
    from pathlib import Path

    from nnlab.store.metrics import prefix_digest

    recorded = meta.metrics_bytes or 0
    if (Path(path).stat().st_size if Path(path).exists() else 0) < recorded:
        raise RunDamaged(f"{path}: shorter than its last checkpoint recorded (lines lost)")
    if meta.metrics_sha256 is not None and meta.metrics_sha256 != prefix_digest(path, recorded):
        raise RunDamaged(f"{path}: damaged (its checksum differs from meta.json's)")


def check_metrics(path, cfg, meta: dict) -> None:
    """What every reader of metrics.jsonl checks first: its size, then its seal."""
    check_metrics_size(path, cfg, meta)
    check_metrics_digest(path, meta)


def _count(value) -> int:
    """A non-negative whole number read from meta.json, or 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


_COUNTS = (
    "train_size",
    "val_size",
    "test_size",
    "steps_per_epoch",
    "steps_done",
    "epochs_done",
    "resumable_step",
    "snapshots",
    "metrics_bytes",
    "parameter_count",
)
_TEXTS = (
    "checksum",
    "metrics_sha256",
    "id",
    "created",
    "updated",
    "nnlab_version",
    "torch_version",
    "python",
    "device",
    "dataset",
    "dataset_requested",
    "data_source",
    "config_sha256",
    "settings",
)


# meta.json's facts of the data a run trained on, as new_meta takes them
DATA_KEYS = ("dataset", "dataset_requested", "data_source", "train_size", "val_size", "test_size")


def meta_checksum(meta: dict) -> str:
    """SHA-256 of meta.json's values in a canonical form (files.seal: keys sorted, no spaces)."""
    from nnlab.helpers.files import seal

    return seal(meta)


def new_meta(
    run_id: str,
    model: str,
    *,
    versions: dict,
    device: str,
    data: dict,
    steps_per_epoch: int,
    parameters: list[dict],
    probe: dict,
    config_sha256: str,
    now: str,
    sweep: dict | None = None,
    settings: str = "",
) -> Meta:
    """meta.json of a run that is about to start training (this is its schema).

    versions: nnlab, torch, python. data: dataset, dataset_requested, data_source,
    train_size, val_size, test_size. The trainer keeps steps_done, epochs_done,
    resumable_step, metrics_bytes and snapshots up to date at each checkpoint, and the
    run's end sets status, ended, train_seconds and final (the last epoch's metrics).
    sweep: {"id", "point"} for a point of a sweep (the key is absent otherwise). settings:
    the config's differences from its model's defaults, for the runs table. check_meta,
    below, checks every value a reader gets against this schema.
    """
    return Meta(
        format=FORMAT_VERSION,
        id=run_id,
        model=model,
        status=Status.RUNNING,
        created=now,
        updated=now,
        ended=None,
        nnlab_version=versions["nnlab"],
        torch_version=versions["torch"],
        python=versions["python"],
        device=device,
        **{k: data[k] for k in DATA_KEYS},
        steps_per_epoch=steps_per_epoch,
        parameters=parameters,
        parameter_count=sum(p["count"] for p in parameters),
        probe=probe,
        config_sha256=config_sha256,  # config.yaml is checked against it on every read
        settings=settings,
        sweep=sweep or None,
    )


def check_meta(meta: dict, where) -> None:
    """Every value of meta.json of the type and range its schema (new_meta, above) gives it: a
    planted or damaged value is reported in one line, never used."""

    def bad(key, what):
        shown = repr(meta[key])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise RunDamaged(f"{where}: damaged ('{key}' should be {what}, got {shown})")

    for key in _COUNTS:
        v = meta.get(key, 0)
        if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53):
            bad(key, "a whole number from 0")
    for key in _TEXTS:
        if key in meta and not isinstance(meta[key], str):
            bad(key, "text")
    if "status" in meta and meta["status"] not in RUN_STATUSES:
        bad("status", ", ".join(RUN_STATUSES))
    if "model" in meta and meta["model"] not in families.NAMES:
        bad("model", " or ".join(families.NAMES))
    if "ended" in meta and meta["ended"] is not None and not isinstance(meta["ended"], str):
        bad("ended", "text or null")
    seconds = meta.get("train_seconds", 0.0)
    if not (isinstance(seconds, (int, float)) and 0 <= seconds < 1e12):
        bad("train_seconds", "a number of seconds")
    for key, shape in (("final", dict), ("probe", dict), ("parameters", list)):
        if key in meta and not isinstance(meta[key], shape):
            bad(key, "an object" if shape is dict else "a list")
    for v in (meta.get("final") or {}).values():
        if isinstance(v, float) and not math.isfinite(v) or isinstance(v, (list, dict)):
            bad("final", "finite numbers")
    for row in meta.get("parameters") or []:
        ok = (
            isinstance(row, dict)
            and isinstance(row.get("name"), str)
            and isinstance(row.get("count"), int)
            and isinstance(row.get("shape"), list)
            and all(isinstance(n, int) for n in row["shape"])
        )
        if not ok:
            bad("parameters", "rows of name, shape and count")
    if "probe" in meta and not isinstance(meta["probe"].get("size", 0), int):
        bad("probe", "a split and a whole-number size")
    sweep = meta.get("sweep")
    if sweep is not None and not (
        isinstance(sweep, dict)
        and isinstance(sweep.get("id"), str)
        and isinstance(sweep.get("point"), int)
    ):
        bad("sweep", "a sweep id and a point number")


def check_sweep(rec, where) -> None:
    """sweep.json of the shape nnlab.commands.sweep writes: a format, a model, a base config, a
    grid, and one point per grid combination naming its run; RunError in one line if not."""
    import re

    def bad(what):
        raise RunDamaged(f"{where}: damaged ({what})")

    if not isinstance(rec, dict):
        bad("not an object")
    if not isinstance(rec.get("format"), int):
        bad("no format version")
    if rec.get("model") not in families.TRAINED:
        bad(f"'model' should be {' or '.join(families.TRAINED)}")
    if not isinstance(rec.get("base"), str):
        bad("'base' should be the base config as YAML text")
    grid, points = rec.get("grid"), rec.get("points")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        bad("'grid' should map each swept field to its values")
    if not isinstance(points, list):
        bad("'points' should be a list")
    plan = rec.get("search")
    if plan is not None:
        names = _check_search(plan, bad)
        if grid or len(points) > plan["trials"]:
            bad(f"{len(points)} points for a search of {plan['trials']} trials")
    else:
        names = set(grid)
        total = math.prod(len(v) for v in grid.values())
        if len(points) != total:
            bad(f"{len(points)} points for a grid of {total}")
    if rec.get("settings") is not None and not _settings_ok(rec["settings"]):
        bad("'settings' should be an executor, jobs, threads, address and retries")
    safe = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # as store.ID_RE
    for i, p in enumerate(points):
        ok = (
            isinstance(p, dict)
            and isinstance(p.get("run"), str)
            and safe.match(p["run"]) is not None
            and isinstance(p.get("values"), dict)
            and set(p["values"]) == names
            and isinstance(p.get("value"), (int, float, type(None)))
            and not isinstance(p.get("value"), bool)
            and p.get("status") in POINT_STATUSES
            and _count(p.get("attempts", 0)) == p.get("attempts", 0)
            and isinstance(p.get("error"), (str, type(None)))
        )
        if not ok:
            bad(f"point {i} should name a run id, its values, a status, attempts and error")


def _settings_ok(settings) -> bool:
    """sweep.json's "settings": how its points are run (executor, jobs, threads, address,
    retries), each of its type and range."""
    return (
        isinstance(settings, dict)
        and set(settings) == {"executor", "jobs", "threads", "address", "retries"}
        and settings["executor"] in ("local", "ray")
        and isinstance(settings["address"], str)
        and all(
            isinstance(settings[k], int) and not isinstance(settings[k], bool)
            for k in ("jobs", "threads", "retries")
        )
        and 1 <= settings["jobs"] <= 4096
        and 1 <= settings["threads"] <= 4096
        and 0 <= settings["retries"] <= 100
    )


def _check_search(plan, bad) -> set[str]:
    """sweep.json's "search" (commands.search.Plan): the searched fields' names."""
    ok = (
        isinstance(plan, dict)
        and plan.get("method") in ("random", "tpe")
        and isinstance(plan.get("trials"), int)
        and 1 <= plan["trials"] <= 100_000
        and isinstance(plan.get("metric"), str)
        and plan.get("direction") in ("max", "min")
        and isinstance(plan.get("seed"), int)
        and plan.get("prune") in ("none", "median", "asha")
        and isinstance(plan.get("prune_every"), (int, float))
        and isinstance(plan.get("space"), dict)
        and plan["space"]
    )
    if not ok:
        bad("'search' should be a method, trials, metric, direction, seed, pruner and space")
    for key, d in plan["space"].items():
        rng, choices = d.get("range") if isinstance(d, dict) else None, None
        if isinstance(d, dict) and "choices" in d:
            choices = d["choices"]
        good = (
            isinstance(rng, list)
            and len(rng) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rng)
            and rng[0] < rng[1]
        ) or (isinstance(choices, list) and choices)
        if not good:
            bad(f"search space of '{key}' should be a range lo < hi or a list of choices")
    return set(plan["space"])


def check_positions(ck: dict, where, n_train: int, steps_per_epoch: int) -> None:
    """A checkpoint's loop position of the right types and ranges, its permutation a real
    permutation of the train split: a planted value is refused in one line, never used."""

    import torch

    def whole(key, low=0):
        v = ck.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**53):
            raise RunDamaged(f"{where}: damaged ('{key}' should be a whole number, got {v!r:.40})")

    for key in ("step", "epoch", "batch", "metrics_bytes", "latent_chunks"):
        whole(key)
    whole("last_snapshot_step", low=-1)
    if ck["batch"] > steps_per_epoch:
        raise RunDamaged(f"{where}: damaged (batch {ck['batch']} of {steps_per_epoch})")
    perm = ck.get("perm")
    if perm is not None:
        ok = (
            isinstance(perm, torch.Tensor)
            and perm.shape == (n_train,)
            and not perm.is_floating_point()
            and torch.equal(perm.sort().values.cpu(), torch.arange(n_train))
        )
        if not ok:
            raise RunDamaged(f"{where}: damaged (its permutation is not one of the train split)")
