"""Exponential backoff with jitter, honouring a server's retry-after."""

from __future__ import annotations

import random


class Backoff:
    """Delays double from ``initial_ms`` up to ``max_ms``; jitter spreads retries out."""

    def __init__(self, initial_ms: int, max_ms: int) -> None:
        self.initial_s = initial_ms / 1000
        self.max_s = max_ms / 1000
        self.attempt = 0

    def next_delay_s(self, retry_after_s: float | None = None) -> float:
        """The delay before the next attempt (at least the server's retry-after)."""
        ceiling = min(self.max_s, self.initial_s * (2**self.attempt))
        self.attempt += 1
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after_s or 0.0)

    def reset(self) -> None:
        """After a success."""
        self.attempt = 0

    @property
    def failing(self) -> bool:
        """True from the first failure until the next success (``reset``)."""
        return self.attempt > 0
