"""Work beside the caller (nnlab.helpers.background): in order, errors raised back at
drain, torch's threads split and given back."""

from __future__ import annotations

import pytest
import torch

from nnlab.helpers.background import Background


def test_items_in_order_errors_at_drain_threads_given_back():
    before = torch.get_num_threads()
    seen = []

    def handle(item):
        if item == "bad":
            raise ValueError("bad item")
        seen.append(item)

    bg = Background(handle, "test")
    assert torch.get_num_threads() == 1  # the caller's side, while it runs
    for i in range(6):
        bg.put(i)
    bg.drain()
    assert seen == list(range(6))
    bg.put("bad")
    bg.put(6)  # handled after the error
    with pytest.raises(ValueError, match="bad item"):
        bg.drain()
    bg.drain()  # raised once
    assert seen[-1] == 6
    bg.close()
    assert torch.get_num_threads() == before and not bg.thread.is_alive()
