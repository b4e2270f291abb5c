"""Security settings for raw clients in the diagnosis tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiokafka.helpers import create_ssl_context
from confluent_kafka import KafkaException, Producer


@dataclass(frozen=True)
class Sec:
    """The fields of KafkaSettings a diagnosis reads, plus the password."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True


def aiokafka_kwargs(sec: Sec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": sec.bootstrap_servers,
        "security_protocol": sec.security_protocol,
    }
    if sec.security_protocol in ("SSL", "SASL_SSL"):
        context = create_ssl_context(
            cafile=sec.ssl_cafile, certfile=sec.ssl_certfile, keyfile=sec.ssl_keyfile
        )
        context.check_hostname = sec.ssl_check_hostname
        kwargs["ssl_context"] = context
    if sec.sasl_mechanism:
        kwargs |= {
            "sasl_mechanism": sec.sasl_mechanism,
            "sasl_plain_username": sec.sasl_username,
            "sasl_plain_password": sec.sasl_password,
        }
    return kwargs


def confluent_conf(sec: Sec) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": sec.bootstrap_servers,
        "security.protocol": sec.security_protocol.lower(),
    }
    if sec.ssl_cafile:
        conf["ssl.ca.location"] = sec.ssl_cafile
    if sec.ssl_certfile:
        conf["ssl.certificate.location"] = sec.ssl_certfile
        conf["ssl.key.location"] = sec.ssl_keyfile
    if not sec.ssl_check_hostname:
        conf["ssl.endpoint.identification.algorithm"] = "none"
    if sec.sasl_mechanism:
        conf |= {
            "sasl.mechanism": sec.sasl_mechanism,
            "sasl.username": sec.sasl_username,
            "sasl.password": sec.sasl_password,
        }
    return conf


def librdkafka_first_error(conf: dict[str, Any], timeout_s: float = 10.0) -> Any:
    """The first error librdkafka reports while fetching metadata with ``conf``."""
    reported: list[Any] = []
    failed: list[Any] = []
    producer = Producer({**conf, "error_cb": reported.append})
    try:
        producer.list_topics(timeout=min(timeout_s, 3.0))
    except KafkaException as exc:
        failed.append(exc)
    # error_cb is served by poll(): the reason (e.g. the SASL refusal) comes there,
    # list_topics only says "transport failure".
    deadline = time.monotonic() + timeout_s
    while not reported and time.monotonic() < deadline:
        producer.poll(0.1)
    producer.close()  # release librdkafka's threads: it would keep dialling otherwise
    if not (reported or failed):
        raise AssertionError("librdkafka reported no error")
    return (reported or failed)[0]
