"""SASL success and broker capabilities: a real SCRAM login needs real Kafka (Tansu
0.6.0 keeps SCRAM users only in storage engines this build lacks), so it runs on the
Apache Kafka container (SASL_SSL, SCRAM users made at format time) or an external
cluster, and skips here with one line saying how to run it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from event_spine.errors import KafkaAuthFailed
from event_spine.kafka import KafkaSettings, make_consumer, make_producer
from event_spine.kafka.diagnose import connecting
from support import brokers
from support.tls import Pki

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="session")
def real_kafka(pki: Pki) -> Iterator[brokers.BrokerUnderTest]:
    """An external cluster if SPINE_TEST_BOOTSTRAP is set, else Kafka in Docker."""
    name = "external" if brokers.unavailable("external") is None else "kafka"
    reason = brokers.unavailable(name)
    if reason:
        pytest.skip(reason)
    with brokers.start(name, pki) as running:
        yield running


async def _round_trip(kafka: KafkaSettings, count: int) -> int:
    topic = f"spine-sasl-{uuid.uuid4().hex[:8]}"
    producer = make_producer(kafka, acks="all")
    await connecting(producer.start, kafka)
    try:
        for n in range(count):
            await producer.send_and_wait(topic, f"{n}".encode())
    finally:
        await producer.stop()
    consumer = make_consumer(kafka, topic, auto_offset_reset="earliest", group_id=topic)
    await connecting(consumer.start, kafka)
    seen = 0
    try:
        async with asyncio.timeout(60):
            while seen < count:
                batch = await consumer.getmany(timeout_ms=500)
                seen += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    return seen


async def test_real_kafka_sasl_login_succeeds_and_a_wrong_password_is_refused(
    real_kafka: brokers.BrokerUnderTest,
) -> None:
    kafka = real_kafka.kafka
    assert await _round_trip(kafka, 10) == 10
    assert real_kafka.idempotent_producer, "real Kafka accepts an idempotent producer"
    if not kafka.uses_sasl:
        return
    wrong = "definitely-not-the-password"
    refused = kafka.with_overrides(sasl_password=wrong)
    producer = make_producer(refused, request_timeout_ms=10_000)
    try:
        with pytest.raises(KafkaAuthFailed) as info:
            await connecting(producer.start, refused)
    finally:
        await producer.stop()
    assert info.value.username == kafka.sasl_username
    assert str(kafka.sasl_mechanism) in str(info.value)
    assert wrong not in str(info.value)


def test_capabilities_are_detected_on_tansu(broker: brokers.BrokerUnderTest) -> None:
    """Tansu refuses the idempotent producer (InitProducerId): detected, not assumed."""
    assert broker.tansu_quirks
    assert not brokers.idempotence_supported(broker.kafka, timeout_s=5.0)
