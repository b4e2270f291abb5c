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
    # error_cb is served by poll(): the reason (e.g. the SASL refusal) comes there,
    # list_topics only says "transport failure". Short metadata requests, each followed
    # by a poll, until the first reason: one list_topics(timeout=3) always waited its
    # 3 s although the reason was queued within ~50 ms (3 s of each confluent case).
    deadline = time.monotonic() + timeout_s + 3.0
    while not reported and time.monotonic() < deadline:
        try:
            producer.list_topics(timeout=0.25)
        except KafkaException as exc:
            failed.append(exc)
        producer.poll(0.1)
    producer.close()  # release librdkafka's threads: it would keep dialling otherwise
    if not (reported or failed):
        raise AssertionError("librdkafka reported no error")
    return (reported or failed)[0]
