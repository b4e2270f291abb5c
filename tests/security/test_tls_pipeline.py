"""Every component over TLS and mutual TLS, for real: Tansu behind the test TLS
terminator, certificates from the session's test CA.

The security settings reach the components as a deployment gives them:
``SPINE_KAFKA_SECURITY_PROTOCOL=SSL``, ``SPINE_KAFKA_SSL_CAFILE`` (and, for mutual TLS,
``SPINE_KAFKA_SSL_CERTFILE`` / ``SPINE_KAFKA_SSL_KEYFILE``) in the environment, the
bootstrap servers passed as each component takes them; the CLI commands run as
subprocesses with that environment. The proxy's handshake count proves TLS was used.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from event_spine.dlq import read_dead_letters
from event_spine.observability.lag import LagProbe
from event_spine.replay import ReplayConfig, Replayer, ReplayTarget, StartFrom
from event_spine.services import EventStreamService
from support.app import App, running_app
from support.pipeline import ctx, producer_for, unique
from support.tls import Pki
from support.waiting import wait_until

pytestmark = pytest.mark.timeout(240)

EVENTS = 20
LOST = 3  # events of a tenant without a route: dead letters


def tls_env(pki: Pki, *, mutual: bool) -> dict[str, str]:
    """The SPINE_KAFKA_* a deployment sets for this listener."""
    env = {"SPINE_KAFKA_SECURITY_PROTOCOL": "SSL", "SPINE_KAFKA_SSL_CAFILE": str(pki.ca.cafile)}
    if mutual:
        env |= {
            "SPINE_KAFKA_SSL_CERTFILE": str(pki.client.cert),
            "SPINE_KAFKA_SSL_KEYFILE": str(pki.client.key),
        }
    return env


@pytest.fixture(scope="module", params=["tls", "mtls"])
def secured(request: pytest.FixtureRequest, pki: Pki) -> Iterator[Any]:
    """One TLS listener (server-only or mutual) with its SPINE_KAFKA_* in the env."""
    mutual = request.param == "mtls"
    endpoint = request.getfixturevalue("mtls" if mutual else "tls")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in tls_env(pki, mutual=mutual).items():
            patch.setenv(key, value)
        yield endpoint


async def _emit_and_sink(app: App, transport: str) -> list[str]:
    """EVENTS events on one stream through ``transport``, LOST to an unrouted tenant."""
    me, lost = ctx("t_tls"), ctx("t_nowhere")
    await app.route(me)
    producer = producer_for(app.bootstrap, app.topic, transport=transport)
    try:
        ids = [
            producer.emit_event(me, "order.placed", "orders/a", {"seq": n}) for n in range(EVENTS)
        ]
        for n in range(LOST):
            producer.emit_event(lost, "order.placed", "orders/a", {"n": n})
        assert await asyncio.to_thread(producer.flush, 60)
    finally:
        await asyncio.to_thread(producer.close, 10)
    worker = await app.start_worker()
    await wait_until(
        lambda: worker.stats.dead_lettered.get("route_missing") == LOST, 60, message="dead letters"
    )
    stored = await app.wait_stored(me, "orders/a", EVENTS, timeout_s=60)
    assert [e.event_id for e in stored] == ids
    return ids


@pytest.mark.parametrize("transport", ["aiokafka", "confluent"])
async def test_emit_worker_store_list_after_over_tls(
    secured: Any, transport: str, tmp_path: Path
) -> None:
    handshakes = secured.proxy.connections
    async with running_app(secured.bootstrap_servers, tmp_path) as app:
        await _emit_and_sink(app, transport)
        service = EventStreamService(ctx("t_tls"), app.registry, app.stores)
        page = await service.list_after("orders/a", None, 5)
        assert [e.record.payload["seq"] for e in page] == list(range(5))
    assert secured.proxy.connections > handshakes


@dataclass(frozen=True)
class Loaded:
    """A topic the aiokafka producer and a sink worker went through over TLS."""

    app: App
    ids: list[str]


@pytest.fixture(scope="module")
async def loaded(secured: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Loaded]:
    async with running_app(secured.bootstrap_servers, tmp_path_factory.mktemp("tls")) as app:
        ids = await _emit_and_sink(app, "aiokafka")
        yield Loaded(app, ids)


async def test_replay_over_tls(loaded: Loaded, tmp_path: Path) -> None:
    config = ReplayConfig(
        kafka=loaded.app.bootstrap,
        topic=loaded.app.topic,
        name=unique("tls-replay"),
        target=ReplayTarget.of_backend("sqlite", {"path": str(tmp_path / "replayed.db")}),
        start=StartFrom.beginning(),
        include_unrouted=True,  # no registry here: every scope read is written
        fetch_max_wait_ms=50,
    )
    progress = await Replayer(config).run()
    assert progress.done
    assert progress.written == EVENTS + LOST  # a replay target takes every scope


async def test_lag_probe_over_tls(loaded: Loaded) -> None:
    group = f"{loaded.app.topic}-sink"
    probe = LagProbe(loaded.app.bootstrap, loaded.app.topic, group, max_age_s=0)
    try:

        async def all_committed() -> bool:
            lags = await probe.measure()
            return sum(p.high_watermark for p in lags.values()) == EVENTS + LOST and not any(
                p.lag for p in lags.values()
            )

        await wait_until(all_committed, 30, message="lag 0 at the high watermarks")
    finally:
        await probe.close()


def _spine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_dlq_read_and_spine_dlq_list_over_tls(loaded: Loaded) -> None:
    dlq = f"{loaded.app.topic}.dlq"
    letters = await read_dead_letters(loaded.app.bootstrap, dlq)
    assert [x.reason for x in letters] == ["route_missing"] * LOST
    listed = await asyncio.to_thread(
        _spine, "dlq", "list", "--bootstrap", loaded.app.bootstrap, "--topic", dlq
    )
    assert listed.returncode == 0, listed.stderr
    assert f"{LOST} dead letter(s)" in listed.stdout


async def test_spine_tail_over_tls(loaded: Loaded) -> None:
    app = loaded.app
    args = ["tail", "--bootstrap", app.bootstrap, "--registry", f"sqlite:{app.registry_db}"]
    args += ["--tenant", "t_tls", "--env", "dev", "--mode", "lab", "--project", "p_core"]
    args += ["--topic", app.topic, "--catch-up", "orders/a", "--limit", str(EVENTS)]
    result = await asyncio.to_thread(_spine, *args)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [line["event_id"] for line in lines] == loaded.ids


@pytest.mark.parametrize("transport", ["aiokafka", "confluent"])
async def test_producer_reports_an_untrusted_ca_by_its_setting(
    untrusted_tls: Any, pki: Pki, transport: str
) -> None:
    """The producer keeps retrying (it never drops what it accepted) and shows the one
    clear error; it sends nothing through a listener it cannot trust."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in tls_env(pki, mutual=False).items():
            patch.setenv(key, value)
        producer = producer_for(untrusted_tls.bootstrap_servers, unique("t"), transport=transport)
    try:
        producer.emit_event(ctx("t_tls"), "x", "s", {"n": 1})

        def named() -> bool:
            return "SPINE_KAFKA_SSL_CAFILE" in (producer.stats.last_error or "")

        await wait_until(named, 60, message="the producer's clear TLS error")
        assert producer.stats.sent == 0
    finally:
        await asyncio.to_thread(producer.close, 2)
