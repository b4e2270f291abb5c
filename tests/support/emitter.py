"""A background 'engine': emits at a steady rate from its own thread, recording ids
and each emit call's latency on the caller's side."""

from __future__ import annotations

import threading
import time

from event_spine.producers import EventSpineProducer
from event_spine.schemas import RequestContext


class BackgroundEmitter:
    """Emits round-robin over streams until stopped."""

    def __init__(
        self,
        producer: EventSpineProducer,
        ctx: RequestContext,
        streams: list[str],
        rate_per_s: float = 400.0,
    ) -> None:
        self.producer = producer
        self.ctx = ctx
        self.streams = streams
        self.interval_s = 1.0 / rate_per_s
        self.ids: list[str] = []
        self.latencies_ns: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-emitter", daemon=True)

    def start(self) -> BackgroundEmitter:
        self._thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(10)
        return self.ids

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            stream = self.streams[n % len(self.streams)]
            started = time.perf_counter_ns()
            try:
                self.ids.append(self.producer.emit_event(self.ctx, "chaos.tick", stream, {"n": n}))
            except Exception as exc:  # recorded: the test asserts there are none
                self.errors.append(exc)
            self.latencies_ns.append(time.perf_counter_ns() - started)
            n += 1
            self._stop.wait(self.interval_s)

    def p99_us(self, since: int = 0) -> float:
        values = sorted(self.latencies_ns[since:])
        return values[int(len(values) * 0.99)] / 1000 if values else 0.0
