"""Verify a scope's audit chain over its whole route history, store by store.

The route's switch history (``event_spine.audit.links.segments``) says which
stores the chain lived in and, per switch, where it stood in the old store. One
checker walks the stores in order: each store's part (after the link it was
switched to, up to the link it was switched away at) is fed in position order,
so anchors, counts and ``audit_prev_hash`` run on across stores, and every link
must be passed exactly (same position, same head hash, same count). A store a
``spine cutover`` rebuilt holds the chain from its start: that copy is checked
too, up to the link, by a checker of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from event_spine.audit.chain import is_audit_event
from event_spine.audit.keys import AuditKeys
from event_spine.audit.links import Segment, segments
from event_spine.audit.offline import ChainChecker, Settings
from event_spine.audit.verify import (
    DECODE_ERRORS,
    ChainReport,
    as_chain_report,
    checker_settings,
    tail_problem,
    walk,
)
from event_spine.backends.seams import EventStore
from event_spine.schemas.routes import ResourceRoute
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

OpenStore = Callable[[Segment], Awaitable[EventStore]]


@dataclass(frozen=True, slots=True)
class _Run:
    scope: Scope
    stream: str
    anchors: list[dict[str, Any]]
    settings: Settings
    links: list[dict[str, Any]]


def switch_links(parts: list[Segment]) -> list[dict[str, Any]]:
    """The links between the parts, as the checker (and a bundle's manifest) holds them."""
    out = []
    for part in parts[1:]:
        if part.link_in is not None and part.switch_in is not None:
            link = part.link_in.model_dump()
            out.append({**link, "at": part.switch_in.at.isoformat()})
    return out


async def verify_history(
    route: ResourceRoute,
    open_store: OpenStore,
    scope: Scope,
    stream: str,
    *,
    keys: AuditKeys | None,
    anchors: list[dict[str, Any]],
    expect_anchors: bool,
) -> ChainReport:
    """Check every store's part and the links between them; the first problem names its store."""
    parts, notes = segments(route, stream)
    links = switch_links(parts)
    run = _Run(scope, stream, anchors, checker_settings(keys, expect_anchors), links)
    checker = ChainChecker(anchors, run.settings)
    checker.set_links(links)
    checker.recorded_links(
        {**link.model_dump(), "at": switch.at.isoformat()}
        for switch in route.history
        for link in switch.audit_links
    )
    checker.report.notes.extend(notes)
    broken_in: int | None = None
    for index, part in enumerate(parts):
        label = part.describe(index, len(parts))
        store = await open_store(part)
        if not await _check_part(run, checker, store, part) and checker.report.problem:
            checker.report.problem.message = f"in {label}: {checker.report.problem.message}"
            broken_in = index
            break
    report = checker.finish()
    if len(parts) > 1:
        report.notes.append(f"the chain spans {len(parts)} stores ({len(links)} route switches)")
    chain = as_chain_report(scope, stream, report)
    if chain.broken is None or broken_in is None:
        return chain
    return replace(chain, broken=replace(chain.broken, segment=broken_in))


async def _check_part(run: _Run, checker: ChainChecker, store: EventStore, part: Segment) -> bool:
    lo, hi = part.span()
    if part.link_in is not None and not await _copy_holds(run, checker, store, lo):
        return False
    beyond: list[StoredEvent] = []
    last = await walk(store, run.scope, run.stream, checker, (lo, hi), beyond)
    if checker.report.problem is not None:
        return False
    if hi is None:
        checker.report.problem = await tail_problem(store, run.scope, run.stream, last)
        return checker.report.problem is None
    if beyond:
        checker.report.notes.append(
            f"{len(beyond)} audit record(s) from position {beyond[0].position} on are in a "
            f"store after the point its route was switched away (written by workers whose "
            f"route cache had not expired yet): they are outside the chain"
        )
    return checker.reached(hi)


async def _copy_holds(run: _Run, checker: ChainChecker, store: EventStore, upto: int) -> bool:
    """A store a cutover rebuilt holds the chain up to the link too: it must be the same."""
    first = await _first_audit_position(store, run)
    if first is None or first > upto:
        return True  # the store's part starts after the link: nothing copied
    copy = ChainChecker([a for a in run.anchors if int(a["position"]) <= upto], run.settings)
    copy.set_links([link for link in run.links if int(link["position"]) <= upto])
    await walk(store, run.scope, run.stream, copy, (-1, upto))
    report = copy.finish()
    if report.problem is None:
        return True
    report.problem.message = f"the copy of the chain before the switch: {report.problem.message}"
    checker.report.problem = report.problem
    return False


async def _first_audit_position(store: EventStore, run: _Run) -> int | None:
    """None for none, or when a body cannot be decoded (the walk then names it)."""
    after: str | None = None
    try:
        while page := await store.list_after(run.scope, run.stream, after, 100):
            for event in page:
                if is_audit_event(event.record):
                    return event.position
            after = page[-1].event_id
    except DECODE_ERRORS:
        return None
    return None
