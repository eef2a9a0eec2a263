"""nnlab: see what a neural network learns.

Write runs from your own training loop (the CLI reads what it writes):

    import nnlab
    with nnlab.start("my-vae", settings={"beta": 4}) as run:
        run.watch(probe_images, probe_labels, classes=names, module=model, encode=model.encode)
        for step in ...:
            ...
            run.log(step, loss=loss.item())
            if step % 20 == 0:
                run.snapshot(step)
        run.log_epoch(1, test_loss=...)
        run.checkpoint(step, model=model.state_dict())

Read any run back (a notebook's view of what `nnlab summary` and `nnlab animate` show):

    nnlab.runs(model="vae")                 # the runs table, newest first
    run = nnlab.open("latest")              # or a run id, or the path of its folder
    run.metrics()["epoch"], run.steps, run.latents(run.steps[-1])["mu"], run.figure()

Names: start, RunWriter, load_checkpoint, LatentCallback (Lightning; needs the `lightning`
extra), runs, open, open_sweep, Run, Sweep, UsageError and RunDamaged. They are imported
when first used, so `import nnlab` stays light (reading a run's numbers never loads torch).
"""

from nnlab.helpers.version import VERSION as __version__

__all__ = [
    "__version__",
    "start",
    "RunWriter",
    "load_checkpoint",
    "LatentCallback",
    "runs",
    "open",
    "open_sweep",
    "Run",
    "Sweep",
    "UsageError",
    "RunDamaged",
]

# name -> (module, attribute): imported on first use
_LAZY = {
    "start": ("nnlab.library.writer", "start"),
    "RunWriter": ("nnlab.library.writer", "RunWriter"),
    "load_checkpoint": ("nnlab.library.writer", "load_checkpoint"),
    "LatentCallback": ("nnlab.library.lightning", "LatentCallback"),
    "runs": ("nnlab.library.reader", "runs"),
    "open": ("nnlab.library.reader", "open_run"),
    "open_sweep": ("nnlab.library.reader", "open_sweep"),
    "Run": ("nnlab.library.reader", "Run"),
    "Sweep": ("nnlab.library.reader", "Sweep"),
    "UsageError": ("nnlab.library.probe", "UsageError"),
    "RunDamaged": ("nnlab.helpers.errors", "RunDamaged"),
}


def __getattr__(name: str):
    """The public API's names, imported on first use (torch loads only when needed)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'nnlab' has no attribute '{name}'")
    import importlib

    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)
