"""Reopening a run for reading: its config, a chosen checkpoint, and the model rebuilt
from the run's own saved config (never from today's defaults)."""

from __future__ import annotations

from pathlib import Path

from nnlab.helpers import files
from nnlab.helpers.errors import NnlabError, RunError
from nnlab.store import folders, schema


def checkpoint_path(run: folders.Run, spec: str | None) -> Path:
    """latest, final, epoch-N, or a path to a checkpoint file."""
    spec = "latest" if spec in (None, "") else str(spec)
    if spec in ("latest", "final") or spec.startswith("epoch-"):
        name = spec if spec.endswith(".pt") else spec + ".pt"
        path = run.checkpoints / name
        if not path.is_file():
            have = (
                sorted(p.stem for p in run.checkpoints.glob("*.pt"))
                if run.checkpoints.is_dir()
                else []
            )
            raise RunError(
                f"run {run.id} has no '{spec}' checkpoint ({path} missing)"
                + (f" (it has: {', '.join(have)})" if have else "")
            )
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise NnlabError(
            f"--checkpoint={spec}: no such file (use latest, final, epoch-N or a path)"
        )
    return path


def load_model(
    run: folders.Run | folders.Opened, checkpoint: str | None = None, device: str = "cpu"
):
    """(config, model in eval mode, checkpoint dict) for a run at a checkpoint (a run that
    is already open is not read again)."""
    from nnlab.training.models import build_model

    opened = run if isinstance(run, folders.Opened) else folders.read_run(run)
    cfg, run = opened.cfg, opened.run
    path = checkpoint_path(run, checkpoint)
    ceiling = schema.size_ceilings(cfg, opened.meta)[0]
    ck = files.load_checkpoint(path, map_location=device, max_bytes=ceiling)
    step = ck.get("step")
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        raise RunError(f"{path}: damaged ('step' should be a whole number, got {step!r:.40})")
    model = build_model(cfg).to(device)
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0][:200]
        raise RunError(f"{path}: does not match the run's config ({first})") from None
    model.eval()
    return cfg, model, ck
