"""Every component's Kafka client takes its TLS settings from the one KafkaSettings.

A local TLS listener that requires a client certificate signed by the test CA counts
completed handshakes. Each component is pointed at it with SSL + client certificate
and must complete at least one handshake presenting that certificate (a client built
without the settings' SSL context cannot). The listener speaks no Kafka: components
fail after the handshake, which is all this test needs; the TLS suites against the
real broker live with the security harness."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from tests.kafka.certs import Certificates, make_certificates

from event_spine.dlq import MemoryReplayLedger, read_dead_letters, replay_dead_letters
from event_spine.kafka import KafkaSettings
from event_spine.observability.lag import LagProbe
from event_spine.producers import EventSpineProducer, ProducerSettings, ensure_topic
from event_spine.producers.acked import emit_acked
from event_spine.replay.cutover import wait_for_group
from event_spine.replay.reader import ReaderSettings, StartFrom, TopicReader
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.worker import SinkWorker
from support.pipeline import ctx, first_subscribed
from support.waiting import wait_until


@dataclass
class Listener:
    """Completed handshakes by client certificate common name."""

    port: int = 0
    seen: list[str] = field(default_factory=list)

    def count(self) -> int:
        return sum(1 for name in self.seen if name == "spine-client")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def listener(certs: Certificates) -> AsyncIterator[Listener]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs.ca)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    found = Listener()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        found.seen.append(dict(pair[0] for pair in peer.get("subject", ()))["commonName"])
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()
    await server.wait_closed()


def _settings(certs: Certificates, port: int) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=f"localhost:{port}",
        security_protocol="SSL",
        ssl_cafile=certs.ca,
        ssl_certfile=certs.client_cert,
        ssl_keyfile=certs.client_key,
        ssl_key_password=SecretStr(certs.client_key_password),
    )


async def _handshakes(listener: Listener, name: str, run: Callable[[], Awaitable[Any]]) -> None:
    """Run a component until the listener saw a handshake from it (bounded)."""
    before = listener.count()
    task = asyncio.ensure_future(run())
    try:
        await wait_until(
            lambda: listener.count() > before,
            timeout_s=20,
            message=f"{name}: a TLS handshake presenting the client certificate",
        )
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def _producer(settings: KafkaSettings, transport: str) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        producer = EventSpineProducer(
            ProducerSettings(kafka=settings, topic="t", transport=transport, close_timeout_ms=0)
        )
        try:
            producer.emit_event(ctx(), "order.placed", "orders/1", {"n": 1})
            await asyncio.sleep(30)
        finally:
            await asyncio.to_thread(producer.close)

    return run


def _sink(settings: KafkaSettings, registry: Path) -> SinkWorker:
    return SinkWorker(
        SinkSettings(
            kafka=settings,
            topic="t",
            registry_backend="sqlite",
            registry_config={"path": str(registry)},
            http_port=None,
            audit_route_lookups=False,
        )
    )


async def _worker(settings: KafkaSettings, tmp_path: Path) -> None:
    worker = _sink(settings, tmp_path / "registry.db")
    broker = worker._build_broker()  # the faststream broker on its own: start() waits on the DLQ
    try:
        await broker.start()
    finally:
        await broker.stop()


async def _reader(settings: KafkaSettings) -> None:
    async with TopicReader(ReaderSettings(settings, "t", open_timeout_s=1)) as reader:
        await reader.open(StartFrom.beginning())


def _components(settings: KafkaSettings, tmp_path: Path) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "producer (aiokafka)": _producer(settings, "aiokafka"),
        "producer (confluent-kafka)": _producer(settings, "confluent"),
        "emit_acked": lambda: asyncio.to_thread(
            emit_acked,
            ProducerSettings(kafka=settings, topic="t"),
            ctx(),
            "order.placed",
            "orders/1",
            {},
            timeout_s=10,
        ),
        "topic admin": lambda: ensure_topic(settings, "t", 1, timeout_s=10),
        "sink worker (DLQ topic, DLQ producer)": lambda: _sink(
            settings, tmp_path / "worker.db"
        ).start(),
        "sink worker (faststream broker)": lambda: _worker(settings, tmp_path),
        "spine dlq list": lambda: read_dead_letters(settings, "t.dlq", timeout_s=10),
        "spine dlq replay": lambda: replay_dead_letters(
            settings, "t.dlq", MemoryReplayLedger(), by="test", timeout_s=10
        ),
        "replay reader": lambda: _reader(settings),
        "cutover (live group wait)": lambda: wait_for_group(settings, "t", "g", {0: 1}, 10),
        "subscribe / spine tail": lambda: first_subscribed(ctx(), settings, tmp_path),
        "lag probe": lambda: LagProbe(settings, "t", "g", timeout_s=10).measure(),
    }


async def test_every_component_presents_the_client_certificate(
    listener: Listener, certs: Certificates, tmp_path: Path
) -> None:
    settings = _settings(certs, listener.port)
    for name, run in _components(settings, tmp_path).items():
        await _handshakes(listener, name, run)
    assert set(listener.seen) == {"spine-client"}
