"""Mailbox: a bounded FIFO from the shared readers to one connection's writer.

asyncio.Queue cannot be woken from outside while a put waits, nor tell a writer
that no more items will come; a LiveHub reader must stop waiting at once when the
connection goes away, and must never block when its policy is "offer or move on".
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """At most ``capacity`` items; ``offer`` never waits, ``wait_space`` does."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"`capacity` must be at least 1, got {capacity}")
        self.capacity = capacity
        self.closed = False
        self._items: deque[T] = deque()
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        """No room for one more item."""
        return len(self._items) >= self.capacity

    def offer(self, item: T) -> bool:
        """Append ``item`` if there is room and the mailbox is open; never waits."""
        if self.closed or len(self._items) >= self.capacity:
            return False
        self._items.append(item)
        self._readable.set()
        if len(self._items) >= self.capacity:
            self._space.clear()
        return True

    async def wait_space(self, timeout_s: float) -> bool:
        """True once there is room (or the mailbox closed); False after ``timeout_s``."""
        if self.closed or not self.full():
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._space.wait()
        except TimeoutError:
            return False
        return True

    async def wait_readable(self, timeout_s: float) -> bool:
        """True once an item is there (or the mailbox closed); False after ``timeout_s``."""
        if self._items or self.closed:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._readable.wait()
        except TimeoutError:
            return False
        return True

    def take(self, most: int) -> list[T]:
        """Up to ``most`` items, oldest first (empty when there are none)."""
        items = self._items
        out = [items.popleft() for _ in range(min(most, len(items)))]
        if not items and not self.closed:
            self._readable.clear()
        if len(items) < self.capacity:
            self._space.set()
        return out

    def close(self) -> None:
        """No more offers; wake every waiter (a reader still takes what is left)."""
        self.closed = True
        self._readable.set()
        self._space.set()
