"""api: the HTTP API beside the in-process Python calls it wraps.

Setup (once per run): the local broker, a topic, a SQLite store of ``events``
events over ``streams`` streams built with append_batch (as list_after does), a
SQLite registry routing the bench scope there, one API key, and `spine serve` in
its own process (rate limit lifted).

- SSE to 1 client: ``sse_events`` events of one stream are in the topic only (no
  sink runs, so the store holds none of that stream); a client opens
  ``/live?from=start`` and reads until it has them all. Baseline: the in-process
  ``subscribe()`` the endpoint wraps, same stream, same start.
- SSE to 100 clients: the same with ``clients`` concurrent connections, each
  reading ``sse_events_many`` events (aggregate events/s); baseline: as many
  concurrent in-process subscriptions.
- Query p99: ``GET /v1/streams/{id}/events?limit=100`` (first page of a random
  stream) over a keep-alive connection, vs ``EventStreamService.query`` of the same
  page, interleaved query by query.

The clients run in this process (httpx, a byte scan for frame ends): at 100
clients the figure includes their cost.

Server memory: the peak RSS of the `spine serve` process during each SSE phase
(``server_peak_sse_1_mib``, ``server_peak_sse_many_mib``; the kernel's high-water
mark, reset before the phase; the highest of them in ``info.server_peak_mib``), with
the load average at the end (``info.load_avg_at_end``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    Comparison,
    Measured,
    PeakRss,
    latency_summary,
    load_average,
    log,
)
from benchmarks.pipeline import CTX, make_record
from event_spine.api.keys import create_key
from event_spine.api.keystores import key_store_for
from event_spine.backends.factory import StoreFactory
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.broker.tansu import TansuBroker, free_port
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.producers.topics import ensure_topic
from event_spine.routing import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.query import EventQuery
from event_spine.schemas.routes import BackendType, ResourceRoute
from event_spine.schemas.wire import StoredEvent
from event_spine.services.event_stream import EventStreamService
from event_spine.subscriptions import SubscriptionFilter, subscribe

NAME = "api"
DESCRIPTION = (
    "HTTP API: SSE events/s to 1 and to 100 clients, query p99, each beside the "
    "in-process Python call"
)
_PY = "in-process Python call"
COMPARISONS = [
    Comparison(
        "SSE to 1 client (events/s)",
        "sse_1_per_s",
        "py_1_per_s",
        "higher",
        None,
        "GET /live (SSE)",
        "subscribe() " + _PY,
    ),
    Comparison(
        "SSE to 100 clients, aggregate (events/s)",
        "sse_many_per_s",
        "py_many_per_s",
        "higher",
        None,
        "GET /live x clients",
        "subscribe() x clients " + _PY,
    ),
    Comparison(
        "query(100) p99",
        "http_p99_us",
        "py_p99_us",
        "lower",
        None,
        "GET /events?limit=100",
        "EventStreamService.query " + _PY,
    ),
]
LIVE_STREAM = "live/bench"


def params(smoke: bool) -> dict[str, Any]:
    """Full: the 1M-event store; smoke: tiny."""
    if smoke:
        return {
            "events": 5_000,
            "streams": 20,
            "batch": 2_000,
            "queries": 50,
            "sse_events": 500,
            "clients": 5,
            "sse_events_many": 100,
        }
    return {
        "events": 1_000_000,
        "streams": 1_000,
        "batch": 20_000,
        "queries": 2_000,
        "sse_events": 20_000,
        "clients": 100,
        "sse_events_many": 2_000,
    }


async def _build_store(path: Path, p: dict[str, Any]) -> list[str]:
    store = SqliteEventStore(SqliteConfig(path=str(path)))
    await store.open()
    try:
        for start in range(0, p["events"], p["batch"]):
            chunk = [
                StoredEvent(make_record(i, f"orders/o_{i % p['streams']:04d}"), i)
                for i in range(start, min(start + p["batch"], p["events"]))
            ]
            await store.append_batch(chunk)
    finally:
        await store.close()
    return [f"orders/o_{s:04d}" for s in range(p["streams"])]


async def _setup(tmp: Path, bootstrap: str, topic: str, p: dict[str, Any]) -> str:
    """Store, registry, route, key, and the live stream in the topic; returns the token."""
    await _build_store(tmp / "events.db", p)
    registry_store = await open_registry_store("sqlite", {"path": str(tmp / "registry.db")})
    try:
        await RoutingRegistry(registry_store, None).set_route(
            ResourceRoute.for_scope(CTX, "event_spine", "sqlite", {"path": str(tmp / "events.db")}),
            actor="bench",
        )
    finally:
        await registry_store.close()
    keys = key_store_for(BackendType.SQLITE, {"path": str(tmp / "registry.db")})
    await keys.open()
    try:
        _, token = await create_key(keys, "bench", CTX.scope)
    finally:
        await keys.close()
    await ensure_topic(bootstrap, topic, 6)
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers=bootstrap, topic=topic))
    for i in range(p["sse_events"]):
        producer.emit_event(CTX, "order.placed", LIVE_STREAM, {"seq": i})
    report = producer.close(30)
    log(f"api: produced the live stream ({report})")
    return token


@contextlib.contextmanager
def _server(tmp: Path, bootstrap: str, topic: str) -> Iterator[tuple[str, PeakRss]]:
    port = free_port()
    args = [
        sys.executable, "-m", "event_spine.cli.main", "serve",
        "--registry", f"sqlite:{tmp / 'registry.db'}", "--bootstrap", bootstrap,
        "--topic", topic, "--port", str(port), "--rate-per-s", "1000000",
        "--rate-burst", "1000000",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"spine serve did not start: {proc.stderr}")
            time.sleep(0.05)
        yield url, PeakRss(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            raise


async def _sse_client(http: httpx.AsyncClient, count: int) -> None:
    seen = 0
    tail = b""
    async with http.stream("GET", f"/v1/streams/{LIVE_STREAM}/live?from=start") as r:
        async for chunk in r.aiter_bytes():
            data = tail + chunk
            seen += data.count(b"\nid: ")
            # Keep the last bytes: a marker may straddle two chunks (never counted twice:
            # a marker in the kept tail is not complete at its end).
            tail = data[-5:]
            seen -= tail.count(b"\nid: ")
            if seen >= count:
                return


async def _sse(url: str, token: str, clients: int, count: int) -> float:
    limits = httpx.Limits(max_connections=clients + 1)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(_sse_client(http, count) for _ in range(clients)))
        return clients * count / (time.perf_counter() - began)


async def _py_subscriber(
    registry: RoutingRegistry, stores: StoreFactory, bootstrap: str, topic: str, count: int
) -> None:
    events = subscribe(
        CTX,
        SubscriptionFilter(stream_prefixes=(LIVE_STREAM,)),
        registry=registry,
        stores=stores,
        kafka=bootstrap,
        topic=topic,
        after={LIVE_STREAM: None},
        streams=(LIVE_STREAM,),  # as the SSE endpoint does
    )
    seen = 0
    async with contextlib.aclosing(events):
        async for _ in events:
            seen += 1
            if seen >= count:
                return


async def _py(tmp: Path, bootstrap: str, topic: str, clients: int, count: int) -> float:
    registry_store = await open_registry_store("sqlite", {"path": str(tmp / "registry.db")})
    stores = StoreFactory()
    try:
        registry = RoutingRegistry(registry_store, None)
        began = time.perf_counter()
        await asyncio.gather(
            *(_py_subscriber(registry, stores, bootstrap, topic, count) for _ in range(clients))
        )
        return clients * count / (time.perf_counter() - began)
    finally:
        await stores.close()
        await registry_store.close()


async def _queries(tmp: Path, url: str, token: str, streams: list[str], n: int) -> dict[str, float]:
    registry_store = await open_registry_store("sqlite", {"path": str(tmp / "registry.db")})
    stores = StoreFactory()
    service = EventStreamService(CTX, RoutingRegistry(registry_store, None), stores)
    rng = random.Random(11)
    http_ns: list[int] = []
    py_ns: list[int] = []
    clock = time.perf_counter_ns
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            for k in range(n):
                stream = rng.choice(streams)
                for side in ("http", "py") if k % 2 == 0 else ("py", "http"):
                    began = clock()
                    if side == "http":
                        r = await http.get(f"/v1/streams/{stream}/events", params={"limit": 100})
                        got = len(r.json()["events"])
                        http_ns.append(clock() - began)
                    else:
                        page = await service.query(EventQuery(stream_id=stream, limit=100))
                        got = len(page.events)
                        py_ns.append(clock() - began)
                    if got == 0:
                        raise RuntimeError(f"{side}: empty page of {stream}")
    finally:
        await stores.close()
        await registry_store.close()
    return {**latency_summary(http_ns, "http"), **latency_summary(py_ns, "py")}


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """Set up once, then ``repeats`` rounds of the three comparisons."""
    measured = Measured(info={"clients": p["clients"], "note": "clients run in the bench process"})
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = "bench.api"
        log(f"api: building a {p['events']:,}-event store")
        token = asyncio.run(_setup(workdir, bootstrap, topic, p))
        streams = [f"orders/o_{s:04d}" for s in range(p["streams"])]
        with _server(workdir, bootstrap, topic) as (url, rss):
            for k in range(repeats):
                log(f"api: repeat {k + 1}/{repeats}")
                run_metrics: dict[str, float] = {}
                log("api: SSE to 1 client, and subscribe()")
                run_metrics["py_1_per_s"] = asyncio.run(
                    _py(workdir, bootstrap, topic, 1, p["sse_events"])
                )
                rss.reset()
                run_metrics["sse_1_per_s"] = asyncio.run(_sse(url, token, 1, p["sse_events"]))
                _record_peak(run_metrics, "server_peak_sse_1_mib", rss)
                many = p["clients"], p["sse_events_many"]
                log(f"api: SSE to {many[0]} clients, and as many subscribe()")
                rss.reset()
                run_metrics["sse_many_per_s"] = asyncio.run(_sse(url, token, *many))
                _record_peak(run_metrics, "server_peak_sse_many_mib", rss)
                run_metrics["py_many_per_s"] = asyncio.run(_py(workdir, bootstrap, topic, *many))
                log(f"api: {p['queries']} queries over HTTP and in-process")
                run_metrics |= asyncio.run(_queries(workdir, url, token, streams, p["queries"]))
                measured.runs.append(run_metrics)
            peaks = [v for r in measured.runs for k, v in r.items() if k.startswith("server_peak")]
            measured.info["server_peak_mib"] = max(peaks, default=None)
            measured.info["rss_peak_per_phase"] = rss.resettable
            measured.info["load_avg_at_end"] = load_average()
    return measured


def _record_peak(metrics: dict[str, float], name: str, rss: PeakRss) -> None:
    peak = rss.peak_mib()
    if peak is not None:
        metrics[name] = peak
        log(f"api: {name} = {peak:,.0f} MiB")
