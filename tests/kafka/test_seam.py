"""Only event_spine.kafka builds Kafka clients and touches aiokafka's private attributes.

Walks every module of src/event_spine outside the kafka package (ast, no import)."""

from __future__ import annotations

import ast
from pathlib import Path

from event_spine.kafka import KafkaSettings, make_admin, make_consumer, make_producer

SRC = Path(__file__).parents[2] / "src" / "event_spine"
SEAM = SRC / "kafka"
#: Client classes of aiokafka, confluent-kafka and faststream's Kafka broker.
CLIENT_CLASSES = {
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "AIOKafkaAdminClient",
    "AIOKafkaClient",
    "KafkaBroker",
    "Producer",
    "Consumer",
    "AdminClient",
}
KAFKA_MODULES = ("aiokafka", "confluent_kafka", "faststream.kafka")


def _modules() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(SRC.rglob("*.py"))
        if SEAM not in path.parents
    ]


async def _aiokafka_private_names() -> set[str]:
    """Private attribute names of the clients the package builds (instances and classes)."""
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9")
    names: set[str] = set()
    producer, consumer, admin = (
        make_producer(settings),
        make_consumer(settings),
        make_admin(settings),
    )
    for obj in (producer, producer.client, consumer, consumer._client, admin, admin._client):
        names |= {n for n in vars(obj) if n.startswith("_") and not n.startswith("__")}
        names |= {n for n in dir(type(obj)) if n.startswith("_") and not n.startswith("__")}
    await producer.stop()
    await consumer.stop()
    await admin.close()
    return names


def test_no_client_is_built_outside_the_kafka_package() -> None:
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in CLIENT_CLASSES:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {name}(...)")
            if isinstance(node, ast.Import):
                found.extend(
                    f"{path.relative_to(SRC)}:{node.lineno} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("confluent_kafka")
                )
    assert found == [], "build Kafka clients with event_spine.kafka.clients:\n" + "\n".join(found)


async def test_no_private_aiokafka_attribute_outside_the_kafka_package() -> None:
    private = await _aiokafka_private_names()
    assert {"_client", "_coordinator", "_fetcher", "_subscription"} <= private  # sanity
    found = []
    for path, tree in _modules():
        text = path.read_text()
        if not any(module in text for module in KAFKA_MODULES):
            continue  # no aiokafka object can reach a module that names no Kafka library
        found.extend(
            f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr in private
            # self._x / cls._x are the module's own attributes.
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        )
    assert found == [], "go through event_spine.kafka.internals:\n" + "\n".join(found)
