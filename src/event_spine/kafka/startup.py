"""Bounded, interruptible startup: wait for the Kafka cluster before building clients.

Every long-running Kafka command (the sink worker, replay, tail, the DLQ tools) calls
``wait_for_kafka`` first. It tries a bootstrap (one metadata round trip) every
``backoff`` seconds, doubling up to ``MAX_BACKOFF_S``, logs ONE line per attempt, and
after ``KafkaSettings.startup_timeout_s`` raises ``BrokerUnavailable`` naming the
servers and the setting. Why: left alone, aiokafka retries each client on its own and
logs ``Unable connect`` per node and per retry (about 160 lines over ~30 s, measured on
`spine worker --bootstrap 127.0.0.1:1`), then ends in a traceback. While it waits,
aiokafka's loggers are raised to CRITICAL so the attempt lines are the only ones.

Everything here is an ``await`` on sleeps and sockets: a cancelled task (SIGTERM /
SIGINT handled by the caller) stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

from event_spine.errors import BrokerUnavailable
from event_spine.kafka.clients import make_admin
from event_spine.kafka.settings import KafkaSettings, env_name

log = logging.getLogger("event_spine.kafka.startup")

#: First pause between attempts; doubled after each failure up to MAX_BACKOFF_S.
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0
#: One attempt's own deadline: a blackholed address (no RST) answers nothing at all.
ATTEMPT_TIMEOUT_S = 5.0
#: Loggers of the Kafka client library: per-retry lines, collapsed into ours.
CLIENT_LOGGERS = ("aiokafka", "kafka")

_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, OSError, TimeoutError)


@contextlib.contextmanager
def quiet_client_logs() -> Iterator[None]:
    """aiokafka's loggers at CRITICAL inside the block, their own levels restored after."""
    loggers = [logging.getLogger(name) for name in CLIENT_LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)


async def _probe(settings: KafkaSettings, timeout_s: float) -> None:
    """One bootstrap: connect, read metadata, close."""
    admin = make_admin(settings, request_timeout_ms=max(100, int(timeout_s * 1000)))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _describe(exc: BaseException) -> str:
    """A short cause: aiokafka's bootstrap error lists address tuples, not the reason."""
    if isinstance(exc, KafkaConnectionError) and "bootstrap" in str(exc):
        return "no broker answered (connection refused or unreachable)"
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def wait_for_kafka(settings: KafkaSettings, what: str = "start") -> None:
    """Return once the cluster answers; ``BrokerUnavailable`` after startup_timeout_s.

    ``what`` names the caller in the log lines (e.g. "sink worker").
    """
    budget_s = settings.startup_timeout_s
    deadline = time.monotonic() + budget_s
    backoff_s = INITIAL_BACKOFF_S
    attempt = 0
    with quiet_client_logs():
        while True:
            attempt += 1
            left_s = deadline - time.monotonic()
            try:
                await _probe(settings, max(0.1, min(ATTEMPT_TIMEOUT_S, left_s)))
            except _UNREACHABLE as exc:
                cause = _describe(exc)
            else:
                if attempt > 1:
                    log.warning("%s: Kafka at %s reachable", what, settings.bootstrap_servers)
                return
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise BrokerUnavailable(
                    f"cannot reach Kafka at {settings.bootstrap_servers} (--bootstrap / "
                    f"{env_name('bootstrap_servers')}) after {attempt} "
                    f"attempt(s) in {budget_s:g}s ({cause}); check the address, or wait "
                    f"longer with --startup-timeout-s / {env_name('startup_timeout_s')}"
                )
            pause_s = min(backoff_s, left_s)
            log.warning(
                "%s: cannot reach Kafka at %s (attempt %d: %s); retrying in %.1fs, "
                "giving up in %.0fs",
                what,
                settings.bootstrap_servers,
                attempt,
                cause,
                pause_s,
                left_s,
            )
            await asyncio.sleep(pause_s)
            backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
