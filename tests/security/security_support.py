"""What raw clients report on a secured connection, for the diagnosis tests."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaException, Producer


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
