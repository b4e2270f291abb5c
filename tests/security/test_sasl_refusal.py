"""SASL refusal, for real: Tansu with ``--authentication`` refuses every SCRAM login
(no user can be made in this build, ../shared/SERVERS.md), which is exactly the wrong
or unknown user of a misconfigured deployment.

Every component fails with ONE clear error naming the mechanism and the user, never
the password, within a bounded time (no retry loop, no crash); the producer, which
must never lose what it accepted, keeps the events (spilled on close) and delivers
them once restarted with working settings (counted in the topic).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from event_spine.broker.tansu import TansuBroker
from event_spine.cli.options import open_registry_at
from event_spine.dlq import MemoryReplayLedger, read_dead_letters, replay_dead_letters
from event_spine.errors import KafkaAuthFailed
from event_spine.observability.lag import LagProbe
from event_spine.producers import ProducerSettings, ensure_topic
from event_spine.producers.acked import emit_acked
from event_spine.replay import ReplayConfig, Replayer, ReplayTarget, StartFrom
from event_spine.replay.cutover import wait_for_group
from event_spine.sink_workers import SinkWorker
from support.pipeline import (
    ctx,
    first_subscribed,
    producer_for,
    read_topic,
    sink_settings,
    unique,
)
from support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

MECHANISM = "SCRAM-SHA-256"
USER = "mallory"
PASSWORD = "hunter2-never-printed"  # the value no output may contain
#: Each refused component must give up within this: one error, not a retry loop.
BOUNDED_S = 60


@pytest.fixture
def refused(sasl_broker: TansuBroker) -> Iterator[str]:
    """SPINE_KAFKA_* of a deployment whose SCRAM user the broker refuses."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPINE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        patch.setenv("SPINE_KAFKA_SASL_MECHANISM", MECHANISM)
        patch.setenv("SPINE_KAFKA_SASL_USERNAME", USER)
        patch.setenv("SPINE_KAFKA_SASL_PASSWORD", PASSWORD)
        yield sasl_broker.bootstrap_servers


def assert_clear(err: BaseException | str) -> None:
    text = str(err)
    assert MECHANISM in text, text
    assert f"'{USER}'" in text, text
    assert "SPINE_KAFKA_SASL_USERNAME" in text, text
    assert PASSWORD not in text


async def refusal(call: Any) -> KafkaAuthFailed:
    """Await ``call()``: it must end in KafkaAuthFailed within the bound."""
    async with asyncio.timeout(BOUNDED_S):
        with pytest.raises(KafkaAuthFailed) as info:
            await call()
    assert_clear(info.value)
    return info.value


async def _worker(bootstrap: str, tmp_path: Path) -> None:
    worker = SinkWorker(sink_settings(bootstrap, unique("t"), tmp_path / "registry.db"))
    try:
        await worker.start()
    finally:
        await worker.stop()


async def _lag(bootstrap: str) -> None:
    probe = LagProbe(bootstrap, unique("t"), unique("g"), max_age_s=0)
    try:
        await probe.measure()
    finally:
        await probe.close()


def _replay(bootstrap: str, tmp_path: Path) -> Replayer:
    return Replayer(
        ReplayConfig(
            kafka=bootstrap,
            topic=unique("t"),
            name=unique("replay"),
            target=ReplayTarget.of_backend("sqlite", {"path": str(tmp_path / "r.db")}),
            start=StartFrom.beginning(),
            include_unrouted=True,  # no registry here: every scope read is written
        )
    )


def _components(bootstrap: str, tmp_path: Path) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Every component that connects and must give up, each as one call."""
    return {
        "topic-admin": lambda: ensure_topic(bootstrap, unique("t"), 1),
        "sink-worker": lambda: _worker(bootstrap, tmp_path),
        "replay": _replay(bootstrap, tmp_path).run,
        "cutover-group-wait": lambda: wait_for_group(bootstrap, unique("t"), "g", {0: 1}, 10),
        "lag-probe": lambda: _lag(bootstrap),
        "dlq-read": lambda: read_dead_letters(bootstrap, unique("t.dlq")),
        "dlq-replay": lambda: replay_dead_letters(
            bootstrap, unique("t.dlq"), MemoryReplayLedger(), by="test"
        ),
        "subscribe": lambda: first_subscribed(ctx(), bootstrap, tmp_path),
        "emit-acked": lambda: asyncio.to_thread(
            emit_acked,
            ProducerSettings(bootstrap_servers=bootstrap, topic=unique("t")),
            ctx(),
            "x",
            "s",
            {},
            timeout_s=BOUNDED_S,
        ),
    }


COMPONENTS = sorted(_components("x:1", Path()))


@pytest.mark.parametrize("component", COMPONENTS)
async def test_component_refused_with_one_clear_error(
    refused: str, component: str, tmp_path: Path
) -> None:
    await refusal(_components(refused, tmp_path)[component])


@pytest.mark.parametrize(
    "command",
    [["dlq", "list", "--topic", "t.dlq"], ["tail", "--topic", "t", "--tenant", "t_x"]],
    ids=["dlq-list", "tail"],
)
async def test_cli_refused_with_one_line(refused: str, command: list[str], tmp_path: Path) -> None:
    args = [*command, "--bootstrap", refused]
    if command[0] == "tail":
        registry = f"sqlite:{tmp_path / 'registry.db'}"
        await (await open_registry_at(registry, create=True)).close()  # tail needs one
        args += ["--registry", registry, "--env", "dev"]
        args += ["--mode", "lab", "--project", "p_core"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "event_spine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=BOUNDED_S + 60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 5, output  # ExitCode.AUTH
    assert [line for line in output.splitlines() if line.strip()] == [result.stderr.strip()], (
        "one line, nothing else"
    )
    assert_clear(output)


@pytest.mark.parametrize("transport", ["aiokafka", "confluent"])
async def test_producer_keeps_what_was_emitted_and_delivers_after_the_fix(
    refused: str, transport: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    spill = tmp_path / "spill"
    topic = unique("events")
    producer = producer_for(refused, topic, transport=transport, spill_dir=str(spill))
    c = ctx("t_sasl")
    try:
        ids = [producer.emit_event(c, "x", f"s{n % 3}", {"n": n}) for n in range(50)]

        def refused_clearly() -> bool:
            error = producer.stats.last_error or ""
            return MECHANISM in error and f"'{USER}'" in error

        await wait_until(refused_clearly, BOUNDED_S, message="the producer's clear SASL error")
        stats = producer.stats
        assert_clear(stats.last_error or "")
        assert stats.sent == 0
    finally:
        await asyncio.to_thread(producer.close, 5)
    assert PASSWORD not in caplog.text

    # Credentials fixed: here, a broker without --authentication and no SASL settings.
    os.environ.pop("SPINE_KAFKA_SECURITY_PROTOCOL")
    for key in ("MECHANISM", "USERNAME", "PASSWORD"):
        os.environ.pop(f"SPINE_KAFKA_SASL_{key}")
    with TansuBroker() as fixed:
        await ensure_topic(fixed.bootstrap_servers, topic, 4)
        restarted = producer_for(
            fixed.bootstrap_servers, topic, transport=transport, spill_dir=str(spill)
        )
        try:
            assert await asyncio.to_thread(restarted.flush, 60)
        finally:
            await asyncio.to_thread(restarted.close, 10)
        records = await read_topic(fixed.bootstrap_servers, topic, len(ids))
    assert len(records) == len(ids)  # nothing lost, nothing doubled
