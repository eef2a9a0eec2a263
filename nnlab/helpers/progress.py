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


LOG_EVERY_S = 5.0  # without a terminal (a CI log, a file): one progress line this often


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Bar:
    """A rich progress bar drawn only on a terminal (self.live); subclasses log otherwise."""

    live: bool
    progress: object

    def __enter__(self):
        if self.live:
            self.progress.start()
        return self


class TrainProgress(_Bar):
    """Training progress on stderr: a rich bar (steps/s, loss, ETA) on a terminal, or a
    plain line every few seconds when stderr is a log."""

    def __init__(self, console: Console, total: int, start: int):
        self.console, self.total = console, total
        self.live = console.is_terminal
        self.t0 = self.t_last = self.t_logged = time.perf_counter()
        self.s0 = self.s_last = self.done = start
        if self.live:
            self._make_bar(start)

    def _make_bar(self, start: int) -> None:
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
            console=self.console,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task(
            "train", total=self.total, completed=start, rate="-", loss="-"
        )

    def __exit__(self, *exc):
        if self.live:
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
        self.t_last, self.s_last = now, step
        if self.live:
            self.progress.update(self.task, completed=step, rate=f"{rate:,.0f}", loss=f"{loss:.4g}")
        elif now - self.t_logged >= LOG_EVERY_S:
            self.t_logged = now
            mean_rate = (step - self.s0) / max(now - self.t0, 1e-9)
            eta = (self.total - step) / max(mean_rate, 1e-9)
            self.console.print(
                f"train: step {step:,}/{self.total:,} ({100 * step / max(self.total, 1):.0f}%)"
                f" · {mean_rate:,.0f} steps/s · loss {loss:.4g} · ETA {_clock(eta)}",
                soft_wrap=True,
            )

    def epoch(self, epoch: int, epochs: int, headline: str) -> None:
        """Print an end-of-epoch line above the bar."""
        if self.live:
            desc = f"epoch {min(epoch + 1, epochs)}/{epochs}"
            self.progress.update(self.task, description=desc)
        if headline:
            self.console.print(f"epoch {epoch}/{epochs}: {headline}", soft_wrap=True)


class CountProgress(_Bar):
    """Counted work (frames, batches, figures) on stderr: a rich bar with ETA on a
    terminal, or a plain line every few seconds (and at the end) when stderr is a log."""

    def __init__(self, console: Console, label: str, total: int):
        self.console, self.label, self.total = console, label, total
        self.done = 0
        self.logged = -1  # `done` at the last plain line (the end line is not repeated)
        self.note = ""  # shown after the counts, e.g. "1 failed"
        self.live = console.is_terminal
        self.t0 = self.t_logged = time.perf_counter()
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                f"[bold]{label}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=console,
            )
            self.task = self.progress.add_task(label, total=total, note="")

    def __exit__(self, *exc):
        if self.live:
            self.progress.stop()
        elif exc[0] is None and self.total and self.logged != self.done:
            self._line()
        return False

    def advance(self, n: int = 1) -> None:
        """n more items done."""
        self.done += n
        if self.live:
            self.progress.advance(self.task, n)
        elif time.perf_counter() - self.t_logged >= LOG_EVERY_S:
            self._line()

    def set_note(self, note: str) -> None:
        """Text shown after the counts (e.g. failures so far)."""
        self.note = note
        if self.live:
            self.progress.update(self.task, note=note)

    def _line(self) -> None:
        now = time.perf_counter()
        self.t_logged, self.logged = now, self.done
        rate = self.done / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / max(rate, 1e-9) if self.done else None
        # slow work (whole runs) reads better per minute than as 0.0/s
        shown = f"{rate:,.1f}/s" if rate >= 1 or not self.done else f"{rate * 60:,.2f}/min"
        line = f"{self.label}: {self.done:,}/{self.total:,} · {shown}"
        line += f" · ETA {_clock(eta)}" if eta is not None else ""
        line += f" · {self.note}" if self.note else ""
        self.console.print(line, soft_wrap=True)
