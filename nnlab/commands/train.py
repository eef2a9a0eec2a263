"""`nnlab train`: start a run or resume one, and own its life cycle (status in meta.json,
the one-line outcome, what a failure leaves behind). The loop itself is nnlab.training.trainer.

torch is imported only once the command line is checked and the run name is locked, so a
mistyped key or a name in use fails at once instead of after torch's start-up.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time

from rich.console import Console

from nnlab import families
from nnlab.config import config
from nnlab.data import catalog
from nnlab.helpers import files, options
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError, RunError, TrainingStopped
from nnlab.helpers.version import VERSION
from nnlab.store import folders, schema
from nnlab.store.meta import Status
from nnlab.training import tensorboard


def command(model: str | None, opts, flags: dict[str, str]) -> str:
    """`nnlab train MODEL [--preset|--config] [--KEY=VALUE...]` or `--resume RUN_ID
    [--epochs=N]`: opts are the command's own options (nnlab.commands.cli.TrainOptions),
    flags the config fields, each as the text typed; returns the run id."""
    preset, config_file, resume_id, runs_dir = opts.preset, opts.config, opts.resume, opts.runs_dir
    if resume_id is not None:
        if resume_id in ("", "true"):  # a bare --resume: nnlab's own ids never read "true"
            raise NnlabError("--resume needs a run id: nnlab train --resume RUN_ID (or latest)")
        extra = sorted(set(flags) - {"epochs"})
        if model is not None or preset or config_file or extra:
            shown = (
                extra[0]
                if extra
                else ("preset" if preset else "config" if config_file else "MODEL")
            )
            raise NnlabError(
                f"--resume takes only --epochs (and --runs_dir), not {shown}: "
                "a run keeps its saved config"
            )
        epochs = options.parse_value("epochs", flags["epochs"], int) if "epochs" in flags else None
        return resume(resume_id, runs_dir, epochs)
    cfg = config.build(model, preset=preset, config_file=config_file, overrides=flags)
    if cfg.tensorboard:
        tensorboard.check_available("--tensorboard=true")
    catalog.precheck(cfg.dataset, cfg.data_dir or None)  # before torch loads: fail fast
    name_lock = folders.lock_name(runs_dir, cfg.model, cfg.name)
    return start(cfg, runs_dir, name_lock=name_lock)


def start(
    cfg: config.Config,
    runs_dir=None,
    console: Console | None = None,
    name_lock=None,
    *,
    run_id: str | None = None,
    sweep: dict | None = None,
    reports=None,
) -> str:
    """Create a run for cfg, train it, and return its id (name_lock: from folders.lock_name;
    run_id and sweep: the id and {"id", "point"} a sweep gives its point; reports: a
    search's point reports its metric to the pruner, training.pruning)."""
    console = console or stderr_console()
    if cfg.name and name_lock is None:
        name_lock = folders.lock_name(runs_dir, cfg.model, cfg.name)
    # A few seconds pass before the first step: say what is happening (on a terminal).
    with console.status(f"starting torch, loading {cfg.dataset}…"):
        from nnlab.training import trainer as loop

        device = loop.setup(cfg)
        splits = loop.load_splits(cfg, device, console)  # before any directory: no half runs
    requested = cfg.dataset
    if splits.name != cfg.dataset:
        cfg = dataclasses.replace(cfg, dataset=splits.name)
    cfg = families.of(cfg).fit_splits(cfg, splits)
    run = folders.create_run(runs_dir, cfg.model, cfg.name, name_lock, run_id=run_id, point=sweep)
    try:
        try:
            trainer = _set_up_run(run, cfg, splits, device, requested, console, sweep, reports)
        except BaseException:  # nothing to resume yet: leave no half-written run behind
            run.release()
            shutil.rmtree(run.path, ignore_errors=True)
            raise
        return _run(trainer, console)
    finally:
        run.release()


def _set_up_run(
    run, cfg, splits, device, requested: str, console: Console, sweep=None, reports=None
):
    """Write a new run's config, meta.json and probe set; return its trainer."""
    import torch

    from nnlab.training import trainer as loop
    from nnlab.training.models import parameter_table

    trainer = loop.Trainer(run, cfg, splits, device, console, reports)
    config_text = config.to_yaml(cfg)
    files.write_text(run.config_file, config_text)
    meta = schema.new_meta(
        run.id,
        cfg.model,
        versions={
            "nnlab": VERSION,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        device=str(device),
        data={
            "dataset": splits.name,
            "dataset_requested": requested,
            "data_source": splits.source,
            "train_size": len(splits.train_x),
            "val_size": len(splits.val_x),
            "test_size": len(splits.test_x),
        },
        steps_per_epoch=trainer.steps_per_epoch,
        parameters=parameter_table(trainer.model),
        probe={"split": cfg.probe_split, "size": len(trainer.probe_labels)},
        config_sha256=files.sha256_text(config_text),
        now=folders.now_iso(),
        sweep=sweep,
        settings=families.of(cfg).differences(cfg),
    )
    run.write_meta(meta)
    run.checkpoints.mkdir()
    _write_probe(cfg, trainer)
    return trainer


def _write_probe(cfg, trainer) -> None:
    """The probe set of a run about to take its first step (again at a resume, where a kill
    during set-up may have left it unwritten)."""
    import torch

    # The class names always, and the images of a folder or npz (which may move or change)
    # so the run's pictures never need them again.
    images = None
    if cfg.dataset.startswith(catalog.PREFIXES):
        pixels = trainer.probe_x.cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
        images = pixels.reshape(len(pixels), *cfg.image_shape).numpy()
    trainer.recorder.write_probe(
        trainer.probe_labels,
        trainer.probe_split_index,
        cfg.probe_split,
        images=images,
        classes=trainer.splits.classes or None,
    )


def resume(
    run_id: str,
    runs_dir=None,
    epochs: int | None = None,
    console: Console | None = None,
    reports=None,
) -> str:
    """Continue run_id from its latest checkpoint (optionally to a new epoch count);
    reports: a search's point reports its metric to the pruner (training.pruning)."""
    console = console or stderr_console()
    opened = folders.read_run(run_id, runs_dir)
    run, meta, cfg = opened.run, opened.meta, opened.cfg
    opened.require_rebuildable("train --resume")
    if cfg.tensorboard:
        tensorboard.check_available(f"run {run.id} (trained with --tensorboard=true)")
    if epochs is not None:
        done = meta.epochs_done
        if int(epochs) < max(done, 1):
            raise NnlabError(
                f"--epochs={epochs}: run {run.id} has done {done} epoch(s) already; "
                f"give --epochs={max(done, 1)} or more"
            )
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    done = meta.epochs_done
    if meta.status == Status.FINISHED and cfg.epochs <= done:
        console.print(
            f"run {run.id} is finished already ({done} epoch(s)): nothing to resume "
            f"(--epochs={done + 1} or more trains it on)",
            soft_wrap=True,
        )
        return run.id
    run.acquire()
    try:
        from nnlab.training import trainer as loop

        if run.clean_temp_files():
            console.print("removed temp files left by an interrupted write")
        with console.status(f"loading {cfg.dataset}…"):
            device = loop.setup(cfg)
            splits = loop.load_splits(cfg, device, console)
        if len(splits.train_x) != meta.train_size:
            raise RunError(f"run {run.id}: dataset {cfg.dataset} now has a different size")
        trainer = loop.Trainer(run, cfg, splits, device, console, reports)
        latest = run.checkpoint_file(folders.LATEST)
        if latest.exists():
            ceiling = schema.size_ceilings(cfg, meta)[0]
            ck = files.load_checkpoint(latest, map_location=device, max_bytes=ceiling)
            trainer.load_state_dict(ck)
        else:  # killed before its first checkpoint (even mid set-up): start over in the run
            _write_probe(cfg, trainer)
            trainer.restart()
        if epochs is not None:
            text = config.to_yaml(cfg)
            files.write_text(run.config_file, text)
            run.update_meta(config_sha256=files.sha256_text(text))
        run.begin()
        console.print(f"resuming {run.id} from step {trainer.step} (epoch {trainer.epoch})")
        return _run(trainer, console)
    finally:
        run.release()


def _run(trainer, console: Console) -> str:
    """Fit, then record how it ended: finished, or a clean stop the user can resume from."""
    run = trainer.run
    t0 = time.perf_counter()
    try:
        final = trainer.fit()
    except TrainingStopped as e:
        e.run_id = run.id
        _add_seconds(run, time.perf_counter() - t0)
        raise
    except OSError as e:
        # A failed write (disk full, permissions) leaves the previous files whole: say what
        # failed and how to go on, not a traceback.
        where = e.filename or "a file of the run"
        try:
            run.end(Status.INTERRUPTED)
        except OSError:
            pass
        err = TrainingStopped(
            f"could not write {where}: {e.strerror or e}. The run keeps its last complete "
            f"checkpoint (step {run.resumable_step()}); free space, then: "
            f"nnlab train --resume {run.id}",
            exit_code=1,
        )
        err.run_id = run.id
        raise err from None
    except BaseException:
        # An unexpected failure (or a second Ctrl-C): the run can resume from its latest
        # checkpoint; say so in meta.json rather than leaving it running.
        try:
            run.end(Status.INTERRUPTED)
        except Exception:
            pass
        raise
    seconds = _add_seconds(run, time.perf_counter() - t0)
    run.end(Status.FINISHED, final=final)
    console.print(
        f"finished {run.id}: {families.of(trainer.cfg).epoch_headline(final)} · "
        f"{trainer.step} steps, {seconds:.1f} s · {run.path}",
        soft_wrap=True,
    )
    console.print(
        f"next: nnlab animate {run.id} · nnlab summary {run.id} · nnlab report {run.id}",
        soft_wrap=True,
    )
    return run.id


def _add_seconds(run: folders.Run, seconds: float) -> float:
    total = float(run.meta().train_seconds) + seconds
    run.update_meta(train_seconds=round(total, 3))
    return total
