"""A sink worker's HTTP endpoints: /metrics (with lag), /healthz and /readyz."""

from __future__ import annotations

import logging
from collections.abc import Callable

from event_spine.errors import SpineError
from event_spine.observability.http import HealthServer
from event_spine.observability.lag import LagProbe
from event_spine.observability.metrics import CONTENT_TYPE, SinkMetrics
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.status import WorkerStatus

log = logging.getLogger(__name__)


class WorkerEndpoints:
    """Metrics, lag probe and health server of one worker.

    They read the worker through ``status`` (a snapshot per call), so this module
    does not import the worker and the worker can be replaced without touching it.
    """

    def __init__(self, settings: SinkSettings, status: Callable[[], WorkerStatus]) -> None:
        s = settings
        self.status = status
        self.metrics = SinkMetrics(
            s.topic,
            lambda: status().stats,
            lambda: status().route_cache,
            lambda: status().ready,
        )
        self.lag_probe = LagProbe(s.kafka, s.topic, s.group_id)
        self.server: HealthServer | None = None
        if s.http_port is not None:
            self.server = HealthServer(
                {"/metrics": self._metrics, "/healthz": self._healthz, "/readyz": self._readyz},
                host=s.http_host,
                port=s.http_port,
            )

    async def start(self) -> None:
        """Listen (when an http_port is set)."""
        if self.server is not None:
            await self.server.start()

    async def stop(self) -> None:
        """Stop listening and close the probe."""
        if self.server is not None:
            await self.server.stop()
        await self.lag_probe.close()

    async def refresh_lag(self) -> None:
        """Measure lag for the partitions this worker owns."""
        owned = self.status().owned_partitions
        try:
            measured = await self.lag_probe.measure()
        except SpineError as exc:  # the scrape still answers, with the last lag measured
            log.warning("lag not measured: %s", exc)
            return
        self.metrics.set_lag([lag for p, lag in sorted(measured.items()) if p in owned])

    async def _metrics(self) -> tuple[int, str, bytes]:
        await self.refresh_lag()
        return 200, CONTENT_TYPE, self.metrics.render()

    async def _healthz(self) -> tuple[int, str, bytes]:
        # Answering at all proves the event loop runs; a stopped worker is not live.
        if self.status().running:
            return 200, "text/plain", b"ok\n"
        return 503, "text/plain", b"stopped\n"

    async def _readyz(self) -> tuple[int, str, bytes]:
        status = self.status()
        if status.ready:
            return 200, "text/plain", b"ready\n"
        reason = status.stats.last_error or "starting"
        return 503, "text/plain", f"not ready: {reason}\n".encode()
