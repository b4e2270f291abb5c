"""GET /v1/streams/{id}/live: stored then live, exactly once and in order across a
sink worker restart and a reconnect with Last-Event-ID; heartbeats; slow clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import orjson

from event_spine.services import EventStreamService
from support.api import A, Api, B, started_api
from support.app import App
from support.sse import Frame, frames
from support.waiting import wait_until

STREAM = "orders/live"
TOTAL = 600


async def events_of(http: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str]):
    async with http.stream(
        "GET", f"/v1/streams/{STREAM}/live", headers=headers, params=params
    ) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        async for frame in frames(r):
            yield frame


async def read_until(source: AsyncIterator[Frame], into: list[Frame], count: int) -> None:
    async with asyncio.timeout(60):
        async for frame in source:
            if frame.comment is None and frame.event == "message":
                into.append(frame)
                if len(into) >= count:
                    return
            assert frame.event == "message" or frame.comment is not None, frame


async def emit_paced(api: Api, start: int, stop: int) -> None:
    """Emit seq start..stop-1 while clients read: 20 at a time, yielding between bursts."""
    for first in range(start, stop, 20):
        api.emit(A, STREAM, min(20, stop - first), first)
        await asyncio.sleep(0.01)


async def test_every_event_once_in_order_across_worker_restart_and_reconnect(
    api: Api,
) -> None:
    api.emit(A, STREAM, 50)  # stored before anyone listens: the catch-up part
    await api.app.wait_stored(A, STREAM, 50)
    got: list[Frame] = []
    reader = EventStreamService(A, api.app.registry, api.app.stores)
    async with api.client("a") as http:
        first = events_of(http, {}, {"from": "start"})
        await read_until(first, got, 10)
        # Emit while the client reads; the worker stores these.
        phase = asyncio.create_task(emit_paced(api, 0, 200))
        await read_until(first, got, 250)
        await phase
        await api.app.wait_stored(A, STREAM, 250)
        # The sink worker goes down; the client keeps getting events live.
        await api.app.stop_worker(api.app.workers[0])
        phase = asyncio.create_task(emit_paced(api, 200, 400))
        await read_until(first, got, 350)
        await first.aclose()  # the client drops the connection mid-burst
        last_id = got[-1].id
        assert last_id is not None
        assert await reader.get(last_id.split(".")[1]) is None  # sent live, not stored
        second = events_of(http, {"Last-Event-ID": last_id}, {})
        await read_until(second, got, 450)
        await phase
        phase = asyncio.create_task(emit_paced(api, 400, TOTAL - 50))
        await api.app.start_worker()  # the worker comes back while the client reads
        await read_until(second, got, TOTAL)
        await second.aclose()
        await phase
    seqs = [f.json()["payload"]["seq"] for f in got]
    # 0..49 first (stored), then 0..549 of the paced burst: each exactly once, in order.
    assert seqs == list(range(50)) + list(range(TOTAL - 50))
    ids = [f.id for f in got]
    assert len(set(ids)) == len(ids)
    positions = [int(i.split(".")[0]) for i in ids]
    assert positions == sorted(positions)
    # Both connections were closed by the client: nothing is left running for them.
    await wait_until(lambda: api.server.state.counters.sse_active == 0, 30)
    stored = await api.app.wait_stored(A, STREAM, TOTAL)
    assert [f"{e.position}.{e.event_id}" for e in stored] == ids


async def test_resume_after_a_position_reads_the_store_above_it(api: Api) -> None:
    """An id whose event the store lacks (say, dead-lettered) resumes by its position."""
    ids = api.emit(A, STREAM, 10)
    stored = await api.app.wait_stored(A, STREAM, 10)
    crafted = f"{stored[4].position}.00000000-0000-4000-8000-000000000000"
    got: list[Frame] = []
    async with api.client("a") as http:
        source = events_of(http, {"Last-Event-ID": crafted}, {})
        await read_until(source, got, 5)
        await source.aclose()
    assert [f.json()["event_id"] for f in got] == ids[5:]


async def test_another_tenants_stream_is_never_sent(api: Api) -> None:
    api.emit(B, STREAM, 5)
    await api.app.wait_stored(B, STREAM, 5)
    got: list[Frame] = []
    async with api.client("a") as http:
        source = events_of(http, {}, {"from": "start"})
        api.emit(B, STREAM, 5, 5)
        mine = api.emit(A, STREAM, 1)
        await read_until(source, got, 1)
        await source.aclose()
    assert [f.json()["event_id"] for f in got] == mine
    assert got[0].json()["routing"]["tenant_id"] == A.tenant_id


async def test_resume_from_a_stored_event_id_and_unknown_ids(api: Api) -> None:
    ids = api.emit(A, STREAM, 10)
    await api.app.wait_stored(A, STREAM, 10)
    got: list[Frame] = []
    async with api.client("a") as http:
        source = events_of(http, {}, {"last_event_id": ids[3]})
        await read_until(source, got, 6)
        await source.aclose()
        unknown = await http.get(
            f"/v1/streams/{STREAM}/live",
            params={"last_event_id": "00000000-0000-4000-8000-000000000000"},
        )
        assert unknown.status_code == 400
        assert unknown.json()["type"].endswith("/unknown-cursor")
    assert [f.json()["event_id"] for f in got] == ids[4:]


async def test_heartbeats_while_idle_and_token_in_query(pipeline: App) -> None:
    async with started_api(pipeline, sse_heartbeat_s=0.2) as api, api.client(None) as http:
        source = events_of(http, {}, {"access_token": api.tokens["a"]})
        comments = 0
        async with asyncio.timeout(30):
            async for frame in source:
                comments += frame.comment == "heartbeat"
                if comments >= 2:
                    break
        await source.aclose()


async def test_slow_client_is_told_and_disconnected(pipeline: App) -> None:
    async with started_api(
        pipeline, sse_buffer_events=20, sse_stall_s=0.5, sse_overflow_grace_s=60
    ) as api:
        sock = _stalled_client(api)
        await wait_until(lambda: api.server.state.counters.sse_connections >= 1, 30)
        filler = {"blob": "x" * 4000}
        overflowed = api.server.state.counters

        async def flood() -> bool:
            for _ in range(50):
                api.app.producer.emit_event(A, "order.placed", STREAM, filler)
            return overflowed.sse_overflows >= 1

        await wait_until(flood, 60, 0.05, "the server to report an overflow")
        # Now read: what was buffered, then the overflow event, then the end.
        received = bytearray()
        sock.settimeout(30)
        while chunk := await asyncio.to_thread(sock.recv, 65536):
            received.extend(chunk)
        sock.close()
        text = received.decode(errors="replace")
        assert text.endswith("\r\n0\r\n\r\n")  # the chunked body ended cleanly
        last_frame = text[text.rindex("event: ") :]
        assert last_frame.startswith("event: overflow\ndata: ")  # the last thing sent
        sent_ids = [line[4:] for line in text.split("\n") if line.startswith("id: ")]
        assert sent_ids, "events flowed before the client stalled"
        notice = orjson.loads(last_frame.split("data: ", 1)[1].split("\n", 1)[0])
        assert notice["last_event_id"] == sent_ids[-1]  # where to resume
        assert overflowed.sse_overflows == 1


async def test_concurrent_clients_share_one_consumer(api: Api) -> None:
    """N connections on one stream: one Kafka consumer in the server, not N."""
    clients = 8
    api.emit(A, STREAM, 40)
    await api.app.wait_stored(A, STREAM, 40)
    live = api.server.state.live
    got: list[list[Frame]] = [[] for _ in range(clients)]
    async with api.client("a", limits=httpx.Limits(max_connections=clients)) as http:
        sources = [events_of(http, {}, {"from": "start"}) for _ in range(clients)]
        await asyncio.gather(*(read_until(s, g, 40) for s, g in zip(sources, got, strict=True)))
        # Every client is past its catch-up and follows the stream's partition live.
        await wait_until(lambda: [t.count for t in live.tails.values()] == [clients], 30)
        api.emit(A, STREAM, 20, 40)
        await asyncio.gather(*(read_until(s, g, 60) for s, g in zip(sources, got, strict=True)))
        assert live.stats.consumers_open == 1
        assert live.stats.fell_behind == 0  # all joined the head: no history reader either
        for source in sources:
            await source.aclose()
    for frames_of_one in got:
        assert [f.json()["payload"]["seq"] for f in frames_of_one] == list(range(60))
    await wait_until(lambda: api.server.state.counters.sse_active == 0, 30)
    await wait_until(lambda: sum(t.count for t in live.tails.values()) == 0, 30)


async def test_a_slow_client_is_cut_while_the_others_get_every_event(pipeline: App) -> None:
    async with started_api(
        pipeline, sse_buffer_events=20, sse_stall_s=0.5, sse_overflow_grace_s=60
    ) as api:
        counters = api.server.state.counters
        sock = _stalled_client(api)
        await wait_until(lambda: counters.sse_connections >= 1, 30)
        got: list[list[Frame]] = [[], []]
        sent = 0
        async with api.client("a") as http:
            readers = [asyncio.create_task(_follow_like_a_browser(http, g)) for g in got]

            async def flood() -> bool:
                nonlocal sent
                for _ in range(50):
                    payload = {"seq": sent, "blob": "x" * 4000}
                    api.app.producer.emit_event(A, "order.placed", STREAM, payload)
                    sent += 1
                return counters.sse_overflows >= 1

            await wait_until(flood, 60, 0.05, "the server to report an overflow")
            await wait_until(lambda: all(len(g) >= sent for g in got), 60, message="every event")
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        # The stalled client: what was buffered, the overflow event last, then the end.
        received = bytearray()
        sock.settimeout(30)
        while chunk := await asyncio.to_thread(sock.recv, 65536):
            received.extend(chunk)
        sock.close()
        text = received.decode(errors="replace")
        assert text.endswith("\r\n0\r\n\r\n")
        assert text[text.rindex("event: ") :].startswith("event: overflow\ndata: ")
        for frames_of_one in got:
            assert [f.json()["payload"]["seq"] for f in frames_of_one] == list(range(sent))


async def _follow_like_a_browser(http: httpx.AsyncClient, into: list[Frame]) -> None:
    """Read the stream from its start; after an overflow (the machine may starve this
    reader too), reconnect with the last id as EventSource does."""
    headers: dict[str, str] = {}
    while True:
        async with http.stream(
            "GET", f"/v1/streams/{STREAM}/live", headers=headers, params={"from": "start"}
        ) as r:
            async for frame in frames(r):
                if frame.event == "message":
                    into.append(frame)  # noqa: PERF401 (read while it grows)
        if into:
            headers = {"Last-Event-ID": str(into[-1].id)}


def _stalled_client(api: Api) -> socket.socket:
    """A raw connection with a small receive buffer that reads nothing after the
    request (until the test reads it all: the server closes it after the response)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", api.server.port))
    request = (
        f"GET /v1/streams/{STREAM}/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {api.tokens['a']}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock
