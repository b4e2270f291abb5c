"""Bounded logging under storms: repeated client errors collapse, dead letters are counted.

Measured before (issue 14): a 5 s broker outage gave 300-400 aiokafka error lines from
one worker, and 100 poison messages gave 0 lines (dead letters were not logged). Here
a storm of one message template gives its first line, then at most one summary line
per ``window_s`` saying how many were suppressed; dead letters are logged one per
line up to ``burst`` per window, the rest as a count, so every dead letter is counted
in some line (the ``count`` field of the lines adds up to the number parked).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

#: Loggers whose repeated warnings and errors are collapsed (client retry loops).
STORM_LOGGERS = ("aiokafka", "kafka", "faststream")


class RepeatFilter(logging.Filter):
    """Let the first record of a (logger, level, template) through, then one per window.

    The record that ends a quiet window carries ``suppressed``: how many of the same
    template were dropped since the previous line. Only WARNING and above of
    ``STORM_LOGGERS`` are collapsed; everything else passes untouched.
    """

    def __init__(
        self,
        window_s: float = 10.0,
        loggers: tuple[str, ...] = STORM_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._prefixes = loggers
        self._last: dict[tuple[str, int, str], float] = {}
        self._dropped: Counter[tuple[str, int, str]] = Counter()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat inside the window."""
        if record.levelno < logging.WARNING or not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.window_s:
                self._dropped[key] += 1
                return False
            self._last[key] = now
            dropped = self._dropped.pop(key, 0)
        if dropped:
            record.suppressed = dropped
            record.msg = f"{record.msg} [{dropped} similar line(s) suppressed in the last %.0fs]"
            record.args = (*_args(record), self.window_s)
        return True


def _args(record: logging.LogRecord) -> tuple[Any, ...]:
    if record.args is None:
        return ()
    return record.args if isinstance(record.args, tuple) else (record.args,)


class DeadLetterLog:
    """WARNING lines for dead letters: ``burst`` per ``window_s``, then a counted summary."""

    def __init__(self, logger: logging.Logger, *, burst: int = 10, window_s: float = 10.0) -> None:
        self._log = logger
        self.burst = burst
        self.window_s = window_s
        self._window_start = time.monotonic()
        self._lines = 0
        self._suppressed: Counter[str] = Counter()

    def parked(self, reason: str, topic: str, partition: int, offset: int, error: str) -> None:
        """Log one dead letter, or count it when the window's burst is spent."""
        self.tick()
        if self._lines >= self.burst:
            self._suppressed[reason] += 1
            return
        self._lines += 1
        self._log.warning(
            "dead letter: %s at %s[%d]@%d: %s",
            reason,
            topic,
            partition,
            offset,
            error[:300],
            extra={
                "reason": reason,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "count": 1,
            },
        )

    def tick(self) -> None:
        """Start a new window when the current one is over (flushing its count)."""
        if time.monotonic() - self._window_start >= self.window_s:
            self.flush()
            self._window_start = time.monotonic()
            self._lines = 0

    def flush(self) -> None:
        """One summary line for what the limit suppressed, if anything."""
        total = sum(self._suppressed.values())
        if not total:
            return
        by_reason = dict(self._suppressed)
        self._suppressed.clear()
        self._log.warning(
            "%d more dead letter(s) not logged one by one (limit %d per %.0fs): %s",
            total,
            self.burst,
            self.window_s,
            ", ".join(f"{reason}={n}" for reason, n in sorted(by_reason.items())),
            extra={"count": total, "suppressed": total, "reasons": by_reason},
        )
