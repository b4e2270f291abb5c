"""Backend outage: the worker pauses, stays not-ready, commits nothing, reports lag,
then recovers with nothing lost or duplicated. Real broker, real SQLite, injected fault."""

from __future__ import annotations

import re
import time

from event_spine.backends import StoreFactory
from event_spine.services import EventStreamService
from event_spine.sink_workers import SinkWorker
from support.faults import FaultyFactory
from support.http import http_get, metric_total
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
)
from support.waiting import wait_until


async def test_backend_outage_pauses_reports_lag_and_recovers(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=2)
    registry = await registry_at(tmp_path / "registry.db")
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    stores = FaultyFactory()
    worker = SinkWorker(
        sink_settings(
            broker.bootstrap_servers,
            topic,
            tmp_path / "registry.db",
            retry_backoff_initial_ms=50,
            retry_backoff_max_ms=300,
        ),
        stores=stores,
    )
    await worker.start()
    producer = producer_for(broker.bootstrap_servers, topic)
    port = worker.endpoints.server.port
    try:
        ids = [producer.emit_event(c, "e", f"s{n % 4}", {"n": n}) for n in range(100)]
        await wait_until(lambda: worker.stats.written == 100, 30, message="first 100")
        assert (await http_get(port, "/readyz"))[0] == 200
        assert (await http_get(port, "/healthz"))[0] == 200

        stores.down = True
        committed_before = dict(worker.stats.committed)
        ids += [producer.emit_event(c, "e", f"s{n % 4}", {"n": n}) for n in range(100, 140)]
        assert producer.flush(30)
        outage_from = time.monotonic()
        await wait_until(lambda: not worker.ready, 30, message="worker not ready while down")
        status, body = await http_get(port, "/readyz")
        assert status == 503
        assert "connection refused" in body

        async def lag_is_40() -> bool:
            return (
                metric_total((await http_get(port, "/metrics"))[1], "spine_sink_consumer_lag") == 40
            )

        await wait_until(lag_is_40, 30, message="lag == produced - committed")
        refused = sum(s.refused_writes for s in stores.wrapped)
        await wait_until(
            lambda: sum(s.refused_writes for s in stores.wrapped) > refused + 1,
            30,
            message="retries keep probing (paused, backing off)",
        )
        # Between two retries the partitions are resumed, yet the worker still is not
        # writing: readiness stays down for the whole outage, not only while paused.
        assert not worker.ready
        assert (await http_get(port, "/readyz"))[0] == 503
        assert worker.stats.committed == committed_before  # nothing committed while down
        assert worker.stats.written == 100

        down_for_s = time.monotonic() - outage_from
        stores.down = False
        await wait_until(lambda: worker.stats.written == 140, 30, message="caught up")
        await wait_until(lambda: worker.ready, 10)

        async def lag_is_0() -> bool:
            return (
                metric_total((await http_get(port, "/metrics"))[1], "spine_sink_consumer_lag") == 0
            )

        await wait_until(lag_is_0, 30)
        text = (await http_get(port, "/metrics"))[1]
        assert metric_total(text, "spine_sink_events_written_total") == 140
        assert metric_total(text, "spine_sink_retries_total") >= 1
        assert metric_total(text, "spine_sink_write_seconds_count") >= 2
        # Record ages: every record durable once; the 40 sent during the outage were
        # at least as old as the outage (after they were sent) when they became durable.
        durable = age_buckets(text, "durable")
        assert durable["+Inf"] == 140
        assert age_buckets(text, "received")["+Inf"] >= 140  # given-back batches come again
        bound = max((b for b in durable if b != "+Inf" and float(b) <= down_for_s), key=float)
        assert durable["+Inf"] - durable[bound] >= 40
        service = EventStreamService(c, registry, StoreFactory())
        stored = []
        for s in range(4):
            stored += [e.event_id for e in await service.list_after(f"s{s}", None, 1000)]
        assert sorted(stored) == sorted(ids)  # every event once: no loss, no duplicate
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


def age_buckets(text: str, stage: str) -> dict[str, float]:
    """Cumulative ``spine_sink_record_age_seconds`` buckets of one stage, by ``le``."""
    found = {}
    for line in text.splitlines():
        if line.startswith("spine_sink_record_age_seconds_bucket{") and f'stage="{stage}"' in line:
            le = re.search(r'le="([^"]+)"', line)
            assert le is not None
            found[le.group(1)] = float(line.rsplit(" ", 1)[1])
    return found
