"""GET /v1/streams/{stream_id}/live: Server-Sent Events, stored then live.

One connection = a catch-up from the store, then a ``Follower`` of the server's
shared ``LiveHub`` (no gap and no duplicate at the seam: the catch-up ends at a store
position, which is the Kafka offset, and the hub feeds the follower only records
above it; see event_spine.subscriptions.hub). Both write into the connection's
bounded mailbox; one writer drains it to the socket:

- Every event frame carries ``id: <position>.<event_id>``. A client that reconnects
  sends it back as ``Last-Event-ID`` (browsers do so themselves); the position lets
  the resume work even when the event was sent live before the sink stored it.
- After ``sse_heartbeat_s`` without an event the writer sends a ``: heartbeat``
  comment line.
- The mailbox holds ``sse_buffer_events`` at most. When it is full the connection
  leaves the hub's shared head for its history reader, which waits for it; when it
  stays full for ``sse_stall_s`` (the client reads slower than events come), the
  writer sends one ``event: overflow`` frame (with the last id delivered, to resume
  from) and the connection ends; if the writer cannot even send that within
  ``sse_overflow_grace_s`` (the client reads nothing), the connection is cut. Memory
  per connection is bounded by the mailbox, never by the client; the Kafka
  consumers are the hub's, at most two per followed partition.
- When the server stops (SIGTERM), every stream ends at once (``ApiState.stopping``),
  so the shutdown does not wait on clients that never leave.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from event_spine.api.auth import scoped_context
from event_spine.api.params import stream_param
from event_spine.api.problems import Problem, invalid
from event_spine.api.render import event_bytes
from event_spine.api.state import ApiState, state_of
from event_spine.errors import SpineError
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import EVENT_ID_RE
from event_spine.schemas.wire import StoredEvent
from event_spine.subscriptions import SubscriptionFilter
from event_spine.subscriptions.catchup import RecentIds, Resume, Seam, catch_up
from event_spine.subscriptions.follower import Follower
from event_spine.subscriptions.mailbox import Mailbox

TYPE_PREFIX_MAX: Final = 128
#: Events sent in one write at most (one socket write per batch, not per event).
_BATCH: Final = 256
#: Stored events read per page during the catch-up.
_PAGE: Final = 500
#: Event ids remembered per connection to drop a producer retry's second copy (its
#: two offsets are a few batches apart); about 150 bytes each.
_DEDUPE_IDS: Final = 4096


@dataclass(frozen=True, slots=True)
class LiveStart:
    """Where a connection starts: after ``last_event_id`` (seen at ``position``),
    from the stream's start (``from_start``), or live only."""

    last_event_id: str | None
    position: int | None
    from_start: bool


def sse_id(event: StoredEvent) -> str:
    """The SSE id of an event: ``<position>.<event_id>``."""
    return f"{event.position}.{event.event_id}"


def parse_start(request: Request) -> LiveStart:
    """Last-Event-ID (header, or ``last_event_id`` parameter) and ``from``."""
    text = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    origin = request.query_params.get("from", "now")
    if origin not in ("now", "start"):
        raise invalid("from", f"must be `now` or `start`, got {origin!r}")
    if not text:
        return LiveStart(None, None, from_start=origin == "start")
    position_text, dot, event_id = text.rpartition(".")
    if not dot:
        position_text, event_id = "", text
    if EVENT_ID_RE.match(event_id) is None or (position_text and not position_text.isdigit()):
        raise invalid(
            "Last-Event-ID", "must be an id this API sent (`<position>.<event_id>`) or an event id"
        )
    return LiveStart(event_id, int(position_text) if position_text else None, from_start=True)


async def live(request: Request) -> Any:
    """Authenticate, check the start, then hand the connection to SseStream."""
    state = state_of(request)
    ctx = scoped_context(await state.auth.key_of(request, query_token=True), request)
    stream_id = stream_param(request.path_params["stream_id"])
    start = parse_start(request)
    type_prefixes = tuple(request.query_params.getlist("type_prefix"))
    if any(not p or len(p) > TYPE_PREFIX_MAX for p in type_prefixes):
        raise invalid("type_prefix", f"must be 1 to {TYPE_PREFIX_MAX} characters")
    service = state.service(ctx)
    await service.route()  # no route: a 404 problem now, not an error frame later
    if start.last_event_id is not None and start.position is None:
        anchor = await service.get(start.last_event_id)
        if anchor is None or anchor.stream_id != stream_id:
            raise Problem(
                "unknown-cursor",
                f"Last-Event-ID {start.last_event_id} is not an event of stream {stream_id!r}.",
            )
    event_filter = SubscriptionFilter(type_prefixes, (), (stream_id,))
    return SseStream(state, ctx, stream_id, start, event_filter)


class SseStream:
    """The ASGI response of one SSE connection (see the module docstring)."""

    def __init__(
        self,
        state: ApiState,
        ctx: RequestContext,
        stream_id: str,
        start: LiveStart,
        event_filter: SubscriptionFilter,
    ) -> None:
        self.state = state
        self.settings = state.settings
        self.ctx = ctx
        self.stream_id = stream_id
        self.start = start
        self.mailbox: Mailbox[StoredEvent] = Mailbox(self.settings.sse_buffer_events)
        self.follower = Follower(
            ctx,
            stream_id,
            event_filter,
            RecentIds(_DEDUPE_IDS),
            self.mailbox,
            from_end=not start.from_start,
        )
        self.overflowed = asyncio.Event()
        self.last_sent: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the connection until the client leaves, overflows, or an error."""
        counters = self.state.counters
        counters.sse_connections += 1
        counters.sse_active += 1
        try:
            await self._serve(send, receive)
        finally:
            self.state.live.leave(self.follower)
            counters.sse_active -= 1

    async def _serve(self, send: Send, receive: Receive) -> None:
        counters = self.state.counters
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
                ],
            }
        )
        pump = asyncio.create_task(self._pump())
        writer = asyncio.create_task(self._writer(send))
        gone = asyncio.create_task(_disconnected(receive))
        overflow = asyncio.create_task(self.overflowed.wait())
        stopping = asyncio.create_task(self.state.stopping.wait())
        close_body = False
        try:
            await asyncio.wait(
                {writer, gone, overflow, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            if overflow.done():
                counters.sse_overflows += 1
                await asyncio.wait(
                    {writer, gone},
                    timeout=self.settings.sse_overflow_grace_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            # End the chunked body cleanly when the writer finished its last frame or
            # the server is stopping (the client reconnects elsewhere); not when the
            # client left or its writer was cut mid-send.
            wrote_all = writer.done() and writer.exception() is None
            close_body = not gone.done() and (wrote_all or stopping.done())
        finally:
            for task in (pump, writer, gone, overflow, stopping):
                task.cancel()
            for task in (pump, writer, gone, overflow, stopping):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if close_body:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self) -> None:
        """Catch up from the store, then follow through the hub until that ends."""
        f = self.follower
        try:
            if self.start.from_start:
                await self._catch_up()
            if not f.ended.is_set():
                await self.state.live.follow(f)
                await f.ended.wait()
        except Exception as exc:  # reported to the client as a frame
            f.fail(exc)
        if f.overflowed:
            self.overflowed.set()
        self.mailbox.close()  # the writer sends what is left, then ends

    async def _catch_up(self) -> None:
        f, start = self.follower, self.start
        seam = Seam(self.ctx, f.event_filter, {}, f.ids)
        resume = Resume(self.stream_id, start.last_event_id, start.position)
        stall_s = self.settings.sse_stall_s
        service = self.state.service(self.ctx)
        async for event in catch_up(service, resume, seam, _PAGE):
            while not self.mailbox.offer(event):
                if not await self.mailbox.wait_space(stall_s):
                    f.overflow()
                    return
        f.after = seam.last_position[self.stream_id]

    async def _writer(self, send: Send) -> None:
        heartbeat_s = self.settings.sse_heartbeat_s
        mailbox = self.mailbox
        await _chunk(send, b"retry: 2000\n\n")
        while True:
            if not await mailbox.wait_readable(heartbeat_s):
                await _chunk(send, b": heartbeat\n\n")
                continue
            if self.follower.overflowed:
                await _chunk(send, self._overflow_frame())
                return
            events = mailbox.take(_BATCH)
            if events:
                await _chunk(send, b"".join(self._frame(e) for e in events))
                self.state.counters.sse_events_sent += len(events)
            elif mailbox.closed:
                if self.follower.failure is not None:
                    await _chunk(send, _problem_frame(self.follower.failure))
                return

    def _frame(self, event: StoredEvent) -> bytes:
        self.last_sent = sse_id(event)
        data = event_bytes(event)
        return b"id: " + self.last_sent.encode() + b"\ndata: " + data + b"\n\n"

    def _overflow_frame(self) -> bytes:
        body = {
            "detail": f"The client fell {self.settings.sse_buffer_events} events behind; "
            f"reconnect with Last-Event-ID to resume.",
            "last_event_id": self.last_sent,
        }
        return b"event: overflow\ndata: " + orjson.dumps(body) + b"\n\n"


def _problem_frame(exc: BaseException) -> bytes:
    retriable = isinstance(exc, SpineError) and exc.retriable
    body = {"detail": str(exc) or type(exc).__name__, "retriable": retriable}
    return b"event: problem\ndata: " + orjson.dumps(body) + b"\n\n"


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
