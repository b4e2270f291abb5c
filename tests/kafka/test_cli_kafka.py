"""The CLI's one Kafka option set: the same flags on every command that talks to Kafka,
clear usage errors naming the setting, secrets masked by `spine config show`."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from event_spine.broker.tansu import TansuBroker
from event_spine.cli.main import app
from event_spine.dlq import read_dead_letters
from event_spine.kafka import KafkaSettings
from event_spine.producers import EventSpineProducer, ProducerSettings, ensure_topic
from support.pipeline import unique

PASSWORD = "pa55-w0rd-never-shown"
KAFKA_FLAGS = {
    "--bootstrap",
    "--kafka-env-file",
    "--security-protocol",
    "--sasl-mechanism",
    "--sasl-username",
    "--ssl-cafile",
    "--ssl-certfile",
    "--ssl-keyfile",
    "--ssl-check-hostname",
}
KAFKA_COMMANDS = [
    ("worker",),
    ("tail",),
    ("dlq", "list"),
    ("dlq", "show"),
    ("dlq", "replay"),
    ("replay",),
    ("verify",),
    ("audit", "verify"),
    ("audit", "export"),
    ("cutover",),
    ("routes", "set"),
    ("routes", "switch"),
    ("routes", "update"),
]
runner = CliRunner()


def _command(path: tuple[str, ...]) -> Any:
    command: Any = get_command(app)
    for name in path:
        command = command.commands[name]  # a group (typer's own click)
    return command


@pytest.mark.parametrize("path", KAFKA_COMMANDS, ids=" ".join)
def test_every_kafka_command_takes_the_same_flags(path: tuple[str, ...]) -> None:
    flags = {opt for param in _command(path).params for opt in param.opts}
    assert flags >= KAFKA_FLAGS
    assert not any("password" in flag for flag in flags)  # passwords: env or env file only


def test_a_contradiction_is_a_usage_error_naming_the_setting(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["dlq", "list", "--bootstrap", "127.0.0.1:9", "--security-protocol", "SASL_SSL"],
        env={"SPINE_KAFKA_SASL_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 2
    assert "SPINE_KAFKA_SASL_MECHANISM" in result.output
    assert PASSWORD not in result.output
    missing = runner.invoke(app, ["dlq", "list"], env={"SPINE_BOOTSTRAP": ""})
    assert missing.exit_code == 2
    assert "SPINE_KAFKA_BOOTSTRAP_SERVERS" in re.sub(r"\s+", " ", missing.output)


def test_config_show_masks_kafka_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / "spine.env"
    env_file.write_text(
        "SPINE_SINK_REGISTRY_BACKEND=sqlite\n"
        'SPINE_SINK_REGISTRY_CONFIG={"path": "/tmp/r.db"}\n'
        "SPINE_SINK_BOOTSTRAP_SERVERS=sink-override:9093\n"
        "SPINE_KAFKA_BOOTSTRAP_SERVERS=kafka:9093\n"
        "SPINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL\n"
        "SPINE_KAFKA_SASL_MECHANISM=PLAIN\n"
        "SPINE_KAFKA_SASL_USERNAME=$ConnectionString\n"
        f"SPINE_KAFKA_SASL_PASSWORD={PASSWORD}\n"
    )
    for component in ("sink", "kafka"):
        result = runner.invoke(app, ["config", "show", component, "--env-file", str(env_file)])
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output
        shown = orjson.loads(result.output)
        kafka = shown["kafka"] if component == "sink" else shown
        assert kafka["sasl_password"] == "***"
        assert kafka["sasl_username"] == "$ConnectionString"
        assert kafka["security_protocol"] == "SASL_SSL"
    sink = orjson.loads(
        runner.invoke(app, ["config", "show", "sink", "--env-file", str(env_file)]).output
    )
    assert sink["kafka"]["bootstrap_servers"] == "sink-override:9093"  # the component's own wins


async def test_secrets_stay_out_of_logs_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Clients with a password against a port nobody listens on: every log line and
    error they produce is free of it."""
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:9",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="spine",
        sasl_password=PASSWORD,
        startup_timeout_s=1.0,  # nobody listens: the wait for the cluster gives up at once
    )
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    try:
        await read_dead_letters(settings, "spine.events.dlq", timeout_s=1)
    except Exception as exc:
        errors.append(repr(exc) + str(exc.__cause__))
    for transport in ("aiokafka", "confluent"):
        producer = EventSpineProducer(
            ProducerSettings(kafka=settings, topic="t", transport=transport, close_timeout_ms=500)
        )
        errors.append(str(producer.stats) + repr(producer.settings))
        producer.close()
    assert errors
    assert all(PASSWORD not in text for text in errors)
    assert PASSWORD not in caplog.text


def test_kafka_env_file_reaches_a_real_command(broker: TansuBroker, tmp_path: Path) -> None:
    topic = unique("dlq")
    asyncio.run(ensure_topic(broker.bootstrap_servers, topic, 1))
    env_file = tmp_path / "kafka.env"
    env_file.write_text(f"SPINE_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}\n")
    result = runner.invoke(
        app, ["dlq", "list", "--topic", topic, "--kafka-env-file", str(env_file)]
    )
    assert result.exit_code == 0, result.output
    assert "0 dead letter(s)" in result.output
