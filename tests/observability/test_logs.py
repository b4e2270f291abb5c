"""Logs: every line JSON under --log-format json, dead letters counted, storms collapsed.

The worker test runs a real `spine worker` process against the local broker and parses
every line it wrote; the storm test drives the real handler with a stepped clock.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson

from event_spine.demo.job import worker_command
from event_spine.dlq import read_dead_letters
from event_spine.observability.logs import configure_logging
from event_spine.observability.ratelimit import RepeatFilter
from support.pipeline import new_topic, raw_send, registry_at
from support.waiting import wait_until

POISON = 100


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line as JSON (raises on the first line that is not)."""
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


async def test_json_worker_logs_every_line_as_json_and_counts_every_dead_letter(
    broker, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=2)
    registry = await registry_at(tmp_path / "registry.db")
    await registry.store.close()
    await raw_send(bootstrap, topic, [(b"k%d" % n, b"{not json") for n in range(POISON)])
    stderr, stdout = (tmp_path / "stderr.log").open("wb"), (tmp_path / "stdout.log").open("wb")
    worker = subprocess.Popen(
        worker_command(
            bootstrap,
            tmp_path / "registry.db",
            "--topic",
            topic,
            "--group",
            f"{topic}-sink",
            "--http-port",
            "0",
            "--session-timeout-ms",
            "2000",
            "--heartbeat-interval-ms",
            "200",
            "--log-format",
            "json",
            "--verbose",
        ),
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, "SPINE_SINK_AUDIT_ROUTE_LOOKUPS": "false"},
    )
    try:

        async def all_parked() -> bool:
            return len(await read_dead_letters(bootstrap, f"{topic}.dlq")) >= POISON

        await wait_until(all_parked, 90, 0.5, f"{POISON} dead letters")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        stderr.close()
        stdout.close()
    lines = parse_lines((tmp_path / "stderr.log").read_text())
    assert parse_lines((tmp_path / "stdout.log").read_text()) == []  # nothing on stdout
    loggers = {line["logger"].split(".")[0] for line in lines}
    assert "aiokafka" in loggers  # a library's lines go through the project's handler too
    parked = [
        line
        for line in lines
        if line["message"].startswith(("dead letter", f"{POISON}"))
        or "dead letter(s) not logged" in line["message"]
    ]
    assert all(line["level"] == "warning" for line in parked)
    assert sum(line["count"] for line in parked) == POISON
    assert len(parked) <= 12  # 10 one by one, then counted summaries
    singles = [line for line in parked if line["count"] == 1]
    assert singles
    for line in singles:
        assert line["reason"] == "invalid_event"
        assert line["topic"] == topic
        assert {"partition", "offset"} <= set(line)


def test_a_storm_of_one_client_error_becomes_one_line_per_window(capsys) -> None:
    now = [0.0]
    configure_logging("json", "INFO", storm_window_s=10)
    handler = logging.getLogger().handlers[0]
    handler.filters[:] = [RepeatFilter(10, clock=lambda: now[0])]
    client = logging.getLogger("aiokafka.conn")
    for second in range(30):  # a 30 s outage, 20 retries a second
        now[0] = float(second)
        for _ in range(20):
            client.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    logging.getLogger("event_spine.sink_workers.worker").warning("not a client line")
    now[0] = 60.0  # the next failure after the outage carries the last window's count
    client.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    lines = parse_lines(capsys.readouterr().err)
    storm = [line for line in lines if line["logger"] == "aiokafka.conn"]
    assert len(storm) == 4  # at 0 s, 10 s, 20 s, then 60 s
    assert sum(line.get("suppressed", 0) for line in storm) + len(storm) == 30 * 20 + 1
    assert "suppressed in the last 10s" in storm[1]["message"]
    assert any(line["message"] == "not a client line" for line in lines)


def test_pretty_format_still_routes_faststream_through_the_root_handler() -> None:
    stream = io.StringIO()
    configure_logging("pretty", "INFO")
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("faststream").info("from faststream")
    assert "from faststream" in stream.getvalue()
    assert logging.getLogger("faststream").handlers == []
