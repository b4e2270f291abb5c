"""A sample engine: emits order events from its 'hot path' at a steady rate."""

from __future__ import annotations

import threading
import time
from collections import Counter

from event_spine.producers.emit import emit_event
from event_spine.schemas.context import RequestContext, request_context

EVENT_TYPES = ("order.created", "order.paid", "order.shipped")


class SampleEngine:
    """Spreads ``total`` events over tenants x streams, each stream numbered 0, 1, 2..."""

    def __init__(self, contexts: list[RequestContext], streams: int, total: int, rate: int) -> None:
        self.contexts = contexts
        self.streams = [f"orders/o_{i:03d}" for i in range(streams)]
        self.total = total
        self.rate = rate
        self.emitted: Counter[tuple[str, str]] = Counter()
        self._thread = threading.Thread(target=self._run, name="sample-engine", daemon=True)

    def start(self) -> None:
        """Emit in the background."""
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait until every event was emitted."""
        self._thread.join(timeout_s)

    def _run(self) -> None:
        started = time.monotonic()
        lanes = [(ctx, stream) for ctx in self.contexts for stream in self.streams]
        for n in range(self.total):
            ctx, stream = lanes[n % len(lanes)]
            seq = self.emitted[(ctx.tenant_id, stream)]
            with request_context(ctx):
                emit_event(
                    None, EVENT_TYPES[seq % 3], stream, {"seq": seq, "amount_cents": 100 + n % 900}
                )
            self.emitted[(ctx.tenant_id, stream)] = seq + 1
            # Pace: sleep when ahead of the target rate (emit itself never waits).
            ahead_s = (n + 1) / self.rate - (time.monotonic() - started)
            if ahead_s > 0.002:
                time.sleep(ahead_s)
