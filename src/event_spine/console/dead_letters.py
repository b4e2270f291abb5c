"""The console's dead-letter pages: counts by reason, the list, one letter with its
headers, and *Replay selected* (admin keys only, like every DLQ page).

A replay goes through ``dlq.replay.replay_dead_letters``, the code of `spine dlq
replay`: it reads exactly the selected (partition, offset) positions without a
consumer group, skips letters the replay ledger holds and records the rest, so a
second submit of the same letters publishes nothing again and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from event_spine.api.params import optional_text
from event_spine.api.problems import Problem, invalid
from event_spine.console.guard import Need, Who, form_of, page, render
from event_spine.dlq.ledger import ReplayLedger
from event_spine.dlq.records import DeadLetterRecord, Position, parse_position
from event_spine.dlq.replay import replay_dead_letters
from event_spine.dlq.scan import read_dead_letters, read_letters

#: Letters the list reads at most (the page is for looking; `spine dlq` for bulk).
LIST_LIMIT = 1000


def _ledger(request: Request) -> ReplayLedger:
    ledger: ReplayLedger = request.app.state.console_ledger
    return ledger


def _text(data: bytes | None) -> str:
    if data is None:
        return ""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return f"<{len(data)} bytes, not UTF-8>"


def _pretty(text: str) -> str:
    with contextlib.suppress(orjson.JSONDecodeError):
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    return text


def _letter_id(r: DeadLetterRecord) -> str:
    return f"{r.partition}:{r.offset}"


@page(Need.ADMIN)
async def dlq_page(request: Request, who: Who) -> Response:
    """GET /console/dlq: dead letters counted by reason, listed (of one reason); each
    one replayed before is marked (when, by whom) and cannot be ticked."""
    reason = optional_text(request.query_params, "reason") or None
    topic = who.state.settings.dead_letter_topic
    every = await read_dead_letters(who.state.settings.kafka, topic, limit=LIST_LIMIT)
    shown = [r for r in every if reason is None or r.reason == reason]
    done = await _ledger(request).replayed(topic, [r.position for r in shown])
    return render(
        request,
        "dlq.html",
        who,
        topic=topic,
        reasons=sorted(Counter(r.reason for r in every).items()),
        reason=reason or "",
        letters=[(_letter_id(r), r, _text(r.value)[:120], done.get(r.position)) for r in shown],
        outcome=who.session.take_flash(),
    )


@page(Need.ADMIN)
async def dlq_record(request: Request, who: Who) -> Response:
    """GET /console/dlq/{partition}/{offset}: one dead letter with its headers."""
    at: Position = (request.path_params["partition"], request.path_params["offset"])
    topic = who.state.settings.dead_letter_topic
    found = await read_letters(who.state.settings.kafka, topic, [at])
    if not found:
        raise Problem("not-found", f"No dead letter at {at[0]}:{at[1]} of the DLQ topic.")
    r = found[0]
    done = await _ledger(request).replayed(topic, [at])
    return render(
        request,
        "dlq_record.html",
        who,
        letter_id=_letter_id(r),
        letter=r,
        headers=sorted(r.headers.items()),
        key=_text(r.key),
        value=_pretty(_text(r.value)),
        replayed=done.get(at),
    )


def _selected(values: list[str]) -> list[Position]:
    if not values:
        raise invalid("letter", "select at least one dead letter")
    out = []
    for value in values:
        position = parse_position(value)
        if position is None:
            raise invalid("letter", f"must look like PARTITION:OFFSET, e.g. 0:42; got {value!r}")
        out.append(position)
    return out


@page(Need.ADMIN)
async def dlq_replay(request: Request, who: Who) -> Response:
    """POST /console/dlq/replay: re-publish the selected dead letters, each once (the
    replay ledger); the outcome line is shown on the DLQ page."""
    positions = _selected((await form_of(request)).getlist("letter"))
    s = who.state.settings
    lock: asyncio.Lock = request.app.state.console_replaying
    async with lock:
        report = await replay_dead_letters(
            s.kafka,
            s.dead_letter_topic,
            _ledger(request),
            by=f"console:{who.key.key_id}",
            positions=positions,
        )
    who.session.flash = report.describe()
    return RedirectResponse("/console/dlq", 303)
