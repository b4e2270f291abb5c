"""The bounded hand-off between emit() (any thread) and the sender thread.

Why a deque and no lock: ``append``/``popleft`` are atomic in CPython, and each
counter has a single writer thread, so emit() takes no lock that I/O could hold.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from event_spine.errors import BufferFull
from event_spine.producers.settings import OverflowPolicy

#: (kafka key, serialized event, W3C traceparent or b"")
Item = tuple[bytes, bytes, bytes]


class EmitBuffer:
    """Bounded FIFO with an explicit overflow policy."""

    def __init__(self, max_events: int, policy: OverflowPolicy, block_timeout_ms: int) -> None:
        self.max_events = max_events
        self.policy = policy
        self.block_timeout_s = block_timeout_ms / 1000
        self._items: deque[Item] = deque()
        self.accepted = 0  # written by emitting threads only
        self.dropped = 0  # written by emitting threads only

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> bool:
        """Append; on overflow apply the policy. Returns False when the item was dropped."""
        if len(self._items) >= self.max_events and not self._make_room():
            return False
        self._items.append(item)
        self.accepted += 1
        return True

    def _make_room(self) -> bool:
        if self.policy == "drop_newest":
            self.dropped += 1
            return False
        if self.policy == "block":
            deadline = time.monotonic() + self.block_timeout_s
            while time.monotonic() < deadline:
                time.sleep(0.0005)
                if len(self._items) < self.max_events:
                    return True
        raise BufferFull(
            f"The emit buffer holds {self.max_events} events (`buffer_max_events`) and "
            f"overflow_policy={self.policy!r}; the broker is slow or unreachable."
        )

    def count_accepted(self) -> None:
        """An emit accepted elsewhere (the spill) still counts as accepted."""
        self.accepted += 1

    def append_unbounded(self, item: Item) -> None:
        """Append past the cap: for events already accepted (moved back from the spill)."""
        self._items.append(item)

    def drain(self, max_items: int) -> list[Item]:
        """Take up to ``max_items`` from the front (sender thread only)."""
        items = self._items
        n = min(max_items, len(items))
        return [items.popleft() for _ in range(n)]

    def requeue_front(self, items: Iterable[Item]) -> None:
        """Put failed sends back first, in their original order (never dropped:
        they were already accepted)."""
        self._items.extendleft(reversed(list(items)))
