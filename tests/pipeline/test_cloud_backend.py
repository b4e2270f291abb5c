"""End to end through the real broker into a cloud backend (DynamoDB Local):
emit -> sink worker -> DynamoDB -> list_after, then a full redelivery stores nothing twice.

Credentials reach the backend the production way: from the environment (the SDK's
default chain), never from the route's config.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from event_spine.backends import StoreFactory
from event_spine.schemas import ResourceRoute
from event_spine.services import EventStreamService
from servers.emulators import (
    DYNAMODB_ACCESS_KEY_ID,
    DYNAMODB_REGION,
    DYNAMODB_SECRET_ACCESS_KEY,
    DynamoDBLocal,
    start_or_skip,
)
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    sink_settings,
    started_worker,
)
from support.waiting import wait_until

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[DynamoDBLocal]:
    server = DynamoDBLocal()
    start_or_skip(server, "DynamoDB Local")
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DYNAMODB_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DYNAMODB_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", DYNAMODB_REGION)


async def read_stream(service: EventStreamService, stream: str) -> list[str]:
    ids: list[str] = []
    last = None
    while page := await service.list_after(stream, last, 17):
        ids.extend(e.event_id for e in page)
        last = page[-1].event_id
    return ids


async def test_emit_to_dynamodb_and_read_back_exactly_once(
    broker, dynamodb, aws_env, tmp_path
) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=3)
    registry = await registry_at(tmp_path / "registry.db")
    suffix = uuid.uuid4().hex[:8]
    config = {
        "events_table": f"e2e_events_{suffix}",
        "endpoint_url": dynamodb.endpoint,
        "region": DYNAMODB_REGION,
        "create_tables": True,
    }
    contexts = [ctx("t_acme", mode="saas"), ctx("t_globex", mode="enterprise")]
    for c in contexts:
        await registry.set_route(
            ResourceRoute.for_scope(c, "event_spine", "dynamodb", config),
            actor="test",
        )
    producer = producer_for(broker.bootstrap_servers, topic)
    emitted: dict[tuple[str, str], list[str]] = {}
    for n in range(600):
        c, stream = contexts[n % 2], f"orders/o_{n % 5}"
        emitted.setdefault((c.tenant_id, stream), []).append(
            producer.emit_event(c, "order.step", stream, {"n": n, "text": "ünïcödé ✓"})
        )
    big = producer.emit_event(contexts[0], "blob.stored", "blobs", {"blob": "x7" * 450_000})
    assert producer.flush(30)
    settings = sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    worker = await started_worker(settings)
    stores = StoreFactory()
    try:
        await wait_until(lambda: worker.stats.written == 601, 120, message="601 events in DynamoDB")
        services = {c.tenant_id: EventStreamService(c, registry, stores) for c in contexts}
        for (tenant, stream), ids in emitted.items():
            assert await read_stream(services[tenant], stream) == ids
        (blob,) = await services["t_acme"].list_after("blobs")
        assert (blob.event_id, len(blob.record.payload["blob"])) == (big, 900_000)
        assert await services["t_globex"].list_after("blobs") == []  # other tenant: nothing
    finally:
        await worker.stop()
    # A brand-new consumer group redelivers the whole topic: the store absorbs it.
    again = await started_worker(settings.model_copy(update={"group_id": f"{topic}-again"}))
    try:
        await wait_until(lambda: again.stats.duplicates == 601, 120, message="full redelivery")
        assert again.stats.written == 0
        for (tenant, stream), ids in emitted.items():
            assert await read_stream(services[tenant], stream) == ids
    finally:
        await again.stop()
        producer.close()
        await stores.close()
        await registry.store.close()
