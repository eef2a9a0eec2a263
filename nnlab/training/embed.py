"""`nnlab embed`: the latents of a whole split, from a run's checkpoint.

The model is rebuilt from the run's saved config, the split is encoded in batches with no
gradients, and the result is written as .npz (allow_pickle=False readable) or .csv.
"""

from __future__ import annotations

import io

import numpy as np

from nnlab import families
from nnlab.config import tasks
from nnlab.helpers import files
from nnlab.helpers.console import stderr_console, warn
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.progress import CountProgress
from nnlab.store import folders
from nnlab.store.meta import Meta

SPLITS = ("test", "train", "val")  # as `nnlab embed --help` lists them
FORMATS = ("npz", "csv")


def embed(
    run_id,
    runs_dir=None,
    *,
    split,
    fmt,
    checkpoint=None,
    layer=None,
    task=None,
    console=None,
) -> str:
    """Encode a split at a checkpoint, write it into <run>/embeddings/, return the path.

    For a permuted run (permute_every) the images are shown as the checkpoint's task shows
    them (or as `task` does: how the network sees an earlier task's images now)."""
    import torch

    from nnlab.training import data
    from nnlab.training.loading import load_model
    from nnlab.training.models import encode_latents

    if split not in SPLITS:
        raise NnlabError(f"--split={split}: choose from {', '.join(SPLITS)}")
    if fmt not in FORMATS:
        raise NnlabError(f"--format={fmt}: choose {' or '.join(FORMATS)}")
    opened = folders.read_run(run_id, runs_dir)
    run, cfg = opened.run, opened.cfg
    opened.require_rebuildable("embed")
    family = families.of(cfg)
    layer = family.embed_layer(cfg, layer)
    if task is not None and not families.of(cfg).tasks_every(cfg):
        raise NnlabError("--task applies to runs trained with --permute_every")
    cfg, model, ck = load_model(opened, checkpoint)
    task, order = _task_order(opened, ck, task)
    console = console or stderr_console()
    splits = data.load_for(cfg, warn=lambda m: warn(console, m))
    x, y, index = splits.split(split)
    if order is not None:
        x = x[:, order]
    batch = 4096
    with torch.inference_mode(), CountProgress(console, "embed", -(-len(x) // batch)) as bar:
        enc = encode_latents(model, cfg, x, layer=layer, batch=batch, on_batch=bar.advance)
    step = int(ck["step"])
    arrays = {
        "labels": y.cpu().numpy().astype(np.int64),
        "indices": index.astype(np.int64),
        "step": np.array(step),
        "split": np.array(split),
        **({"task": np.array(task)} if task is not None else {}),
    }
    recorded = (enc.points, enc.sd)[: len(family.arrays)]
    arrays.update({k: v.numpy() for k, v in zip(family.arrays, recorded, strict=True)})
    extras, note = family.embed_extras(cfg, enc, layer, f"{split} ({len(x):,} images)")
    arrays.update(extras)
    if note:
        console.print(note, soft_wrap=True)
    return str(_write(run, arrays, family.arrays, split, step, layer, task, fmt))


def _task_order(opened: folders.Opened, ck: dict, task):
    """(task, pixel order) of the images to encode: a permuted run's images as the
    checkpoint's own task (or `task`) permutes them; (None, None) for other runs."""
    import torch

    every = families.of(opened.cfg).tasks_every(opened.cfg)
    if not every:
        return None, None
    n_tasks = tasks.count(opened.cfg.epochs, every)
    own = tasks.at(ck_position(ck, opened.meta), every)
    task = own if task is None else _task_number(task, n_tasks)
    return task, torch.from_numpy(tasks.read(opened.run.tasks_file, n_tasks, opened.cfg.seed)[task])


def _write(run, arrays: dict, names, split: str, step: int, layer, task, fmt: str):
    """Write the embedding into <run>/embeddings/, named for what is inside (an explicitly
    chosen layer and a task are part of the name); return its path."""
    folder = run.embeddings
    folder.mkdir(exist_ok=True)
    suffix = f"-layer{layer}" if layer is not None else ""
    suffix += f"-task{task}" if task is not None else ""
    path = folder / f"{split}-step{step}{suffix}.{fmt}"
    if fmt == "npz":
        files.save_npz(path, **arrays)
    else:
        files.write_text(path, _csv(arrays, names))
    return path


def ck_position(ck: dict, meta: Meta) -> float:
    """A checkpoint's place in training in epochs (fractional mid-epoch)."""
    per = meta.steps_per_epoch
    return int(ck["epoch"]) + (int(ck["batch"]) / per if per else 0.0)


def _task_number(task, n_tasks: int) -> int:
    try:
        t = int(str(task))
    except ValueError:
        raise NnlabError(f"--task={task}: expected a task number, 0 to {n_tasks - 1}") from None
    if not 0 <= t < n_tasks:
        raise NnlabError(f"--task={task}: this run has tasks 0 to {n_tasks - 1}")
    return t


def _csv(arrays: dict, names: tuple[str, ...]) -> str:
    """Index, label, then each recorded array's columns (mu0, mu1, ..., sd0, ... or act0, ...)."""
    cols = ["index", "label"]
    blocks = [arrays["indices"][:, None], arrays["labels"][:, None]]
    for name in names:
        m = arrays[name]
        cols += [f"{name}{i}" for i in range(m.shape[1])]
        blocks.append(m)
    buf = io.StringIO()
    buf.write(",".join(cols) + "\n")
    table = np.concatenate([blk.astype(np.float64) for blk in blocks], axis=1)
    fmt = ["%d", "%d"] + ["%.7g"] * (table.shape[1] - 2)
    np.savetxt(buf, table, fmt=fmt, delimiter=",")
    return buf.getvalue()
