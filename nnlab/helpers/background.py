"""Work done on a thread beside the caller (latent snapshots beside training): a bounded
queue of items handled one by one, an error raised back in the caller, and torch's
threads split so each side computes on a core of its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class Background:
    """Items handled by `handle` on a thread of their own, in order; at most `depth` wait
    (put blocks beyond). An error in one is raised in the caller by the next drain(). While
    it runs torch uses one thread a side: the caller trains on one core, the thread works
    on the other (torch's count is given back at close)."""

    def __init__(self, handle: Callable[[Any], None], name: str, depth: int = 4):
        import torch

        self.handle = handle
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def put(self, item: Any) -> None:
        """Queue an item (blocks while `depth` are waiting)."""
        self.queue.put(item)

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                self.handle(item)
            except BaseException as e:  # raised in the caller's thread by drain()
                self.error = self.error or e
            finally:
                self.queue.task_done()

    def drain(self) -> None:
        """Wait until every queued item is handled; raise the first error since the last."""
        self.queue.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def close(self) -> None:
        """Stop the thread and give torch its threads back."""
        import torch

        self.queue.put(None)
        self.thread.join()
        torch.set_num_threads(self.threads)
