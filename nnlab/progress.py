"""What a long job shows and hears while it works: rich progress bars on stderr (rate,
ETA) and the signal handling that turns Ctrl-C into a clean stop between steps."""

from __future__ import annotations

import signal
import time

from rich.console import Console


class StopSignals:
    """Turn the first SIGINT/SIGTERM into a flag checked between steps (the job then saves
    and stops cleanly); a second SIGINT interrupts at once."""

    def __init__(self):
        self.received: str | None = None  # the name of the first signal, e.g. "SIGINT"
        self.old: dict = {}

    def __enter__(self):
        def handler(signum, frame):
            if self.received and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.received = signal.Signals(signum).name

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        self.old.clear()
        return False


class TrainProgress:
    """A rich progress bar on stderr (steps/s, loss, ETA), refreshed a few times a second."""

    def __init__(self, console: Console, total: int, start: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task(
            "train", total=total, completed=start, rate="-", loss="-"
        )
        self.t_last = time.perf_counter()
        self.s_last = self.done = start

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.update(self.task, completed=self.done)
        self.progress.stop()
        return False

    def advance(self, step: int, loss: float) -> None:
        """Report progress at `step` (cheap: real updates at most ten times a second)."""
        self.done = step
        now = time.perf_counter()
        if now - self.t_last < 0.1:
            return
        rate = (step - self.s_last) / (now - self.t_last)
        self.progress.update(self.task, completed=step, rate=f"{rate:,.0f}", loss=f"{loss:.4g}")
        self.t_last, self.s_last = now, step

    def epoch(self, epoch: int, epochs: int, headline: str) -> None:
        """Print an end-of-epoch line above the bar."""
        self.progress.update(self.task, description=f"epoch {min(epoch + 1, epochs)}/{epochs}")
        if headline:
            self.progress.console.print(f"epoch {epoch}/{epochs}: {headline}")


def count_bar(console: Console, label: str):
    """A bar for counted work (frames, runs): label, bar, done/total, ETA."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        f"[bold]{label}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )
