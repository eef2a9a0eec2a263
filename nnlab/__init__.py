"""nnlab: see what a neural network learns.

The Python API (for your own training loop; the CLI reads what it writes):

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

Names: start, RunWriter, UsageError, load_checkpoint, and LatentCallback (Lightning; needs
the `lightning` extra). They are imported when first used, so `import nnlab` stays light.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "start", "RunWriter", "load_checkpoint", "UsageError", "LatentCallback"]


def __getattr__(name: str):
    """The public API's names, imported on first use (torch loads only then)."""
    if name == "start":
        from nnlab.library.writer import start

        return start
    if name == "RunWriter":
        from nnlab.library.writer import RunWriter

        return RunWriter
    if name == "load_checkpoint":
        from nnlab.library.writer import load_checkpoint

        return load_checkpoint
    if name == "UsageError":
        from nnlab.library.probe import UsageError

        return UsageError
    if name == "LatentCallback":
        from nnlab.library.lightning import LatentCallback

        return LatentCallback
    raise AttributeError(f"module 'nnlab' has no attribute '{name}'")
