"""SQL for queries, shared by the SQLite and PostgreSQL stores (their tables have the
same columns; only placeholders and the time comparison differ).

Plans (the indexes are in each store's DDL and in docs/backends.md):

- one stream: a range on ``events_by_stream`` (scope, stream_id, position), bounded by
  the watermark in a subquery; with one event type a range on ``events_by_type``
  (scope, stream_id, event_type, position) instead, already in position order.
- a prefix: a range on ``events_by_stream`` from the cursor's (stream_id, position)
  row value in page order, each row checked against its stream's watermark (a point
  read on the cursors table's primary key).
- counts: an index-only walk of ``events_by_type`` grouped by type.
- time filters are not indexed: they filter the rows the position range reads (ts
  is not ordered by position, so an index on ts cannot return a position-ordered page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from event_spine.backends.base import record_from_json
from event_spine.backends.keys import ScopeKey, StreamKey
from event_spine.backends.querying import PrefixScan, Scan, prefix_range
from event_spine.schemas.query import EventQuery, Position
from event_spine.schemas.wire import StoredEvent

_SCOPE: Final = ("tenant_id", "env", "mode", "project_id")


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two databases."""

    #: The n-th (1-based) placeholder: ``?`` or ``$n``.
    mark: Callable[[int], str]
    #: SQL comparing ``e.ts`` with a placeholder: (ts expression, placeholder wrapper).
    ts_column: str
    ts_param: Callable[[str], str]
    #: How a datetime is bound.
    ts_value: Callable[[datetime], object]
    #: Whether times compared in SQL are exact; if not, rows are widened there and
    #: filtered exactly in Python (``EventQuery.matches``).
    exact_ts: bool


@dataclass(slots=True)
class _Sql:
    dialect: Dialect
    params: list[object] = field(default_factory=list)

    def bind(self, value: object) -> str:
        self.params.append(value)
        return self.dialect.mark(len(self.params))


def stream_scan(
    d: Dialect,
    events: str,
    cursors: str,
    key: StreamKey,
    q: EventQuery,
    start: int | None,
    limit: int,
) -> tuple[str, list[object]]:
    """(sql, params) selecting ``body, stream_id, position`` of one stream's page."""
    s = _Sql(d)
    where = [_scope_eq(s, "e", key.scope_key()), f"e.stream_id = {s.bind(key.stream_id)}"]
    watermark = (
        f"(SELECT c.position FROM {cursors} c WHERE {_scope_eq(s, 'c', key.scope_key())}"
        f" AND c.stream_id = {s.bind(key.stream_id)})"
    )
    where.append(f"e.position <= {watermark}")
    if start is not None:
        where.append(f"e.position {'<' if q.descending else '>'} {s.bind(start)}")
    where += _filters(s, q)
    order = "DESC" if q.descending else "ASC"
    sql = (
        f"SELECT e.body, e.stream_id, e.position FROM {events} e WHERE {' AND '.join(where)}"
        f" ORDER BY e.position {order} LIMIT {s.bind(limit)}"
    )
    return sql, s.params


def prefix_scan(
    d: Dialect,
    events: str,
    cursors: str,
    scope: ScopeKey,
    q: EventQuery,
    start: Position | None,
    limit: int,
) -> tuple[str, list[object]]:
    """(sql, params) selecting ``body, stream_id, position`` of a prefix page in
    (stream_id, position) order, each stream bounded by its watermark."""
    s = _Sql(d)
    where = [_scope_eq(s, "e", scope)]
    where += _prefix(s, "e", q.stream_prefix or "")
    if start is not None:
        op = "<" if q.descending else ">"
        row = f"({s.bind(start.stream_id)}, {s.bind(start.position)})"
        where.append(f"(e.stream_id, e.position) {op} {row}")
    # The watermark as a correlated point read, not a join: the plan then walks the
    # stream index in page order and stops at the limit (a join let PostgreSQL sort
    # whole streams first: every event of each stream it touched, measured).
    join = " AND ".join(f"c.{c} = e.{c}" for c in (*_SCOPE, "stream_id"))
    where.append(f"e.position <= (SELECT c.position FROM {cursors} c WHERE {join})")
    where += _filters(s, q)
    order = "DESC" if q.descending else "ASC"
    sql = (
        f"SELECT e.body, e.stream_id, e.position FROM {events} e"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY e.stream_id {order}, e.position {order} LIMIT {s.bind(limit)}"
    )
    return sql, s.params


def count_types(d: Dialect, events: str, cursors: str, key: StreamKey) -> tuple[str, list[object]]:
    """(sql, params) selecting ``event_type, count`` of a stream's visible events."""
    s = _Sql(d)
    mine = f"{_scope_eq(s, 'e', key.scope_key())} AND e.stream_id = {s.bind(key.stream_id)}"
    watermark = (
        f"(SELECT c.position FROM {cursors} c WHERE {_scope_eq(s, 'c', key.scope_key())}"
        f" AND c.stream_id = {s.bind(key.stream_id)})"
    )
    sql = (
        f"SELECT e.event_type, count(*) FROM {events} e WHERE {mine}"
        f" AND e.position <= {watermark} GROUP BY e.event_type"
    )
    return sql, s.params


def list_streams(
    d: Dialect,
    cursors: str,
    scope: ScopeKey,
    prefix: str,
    after: str | None,
    limit: int,
    descending: bool,
) -> tuple[str, list[object]]:
    """(sql, params) selecting ``stream_id, position, last_event_id`` from watermarks."""
    s = _Sql(d)
    where = [_scope_eq(s, "c", scope), *_prefix(s, "c", prefix)]
    if after is not None:
        where.append(f"c.stream_id {'<' if descending else '>'} {s.bind(after)}")
    order = "DESC" if descending else "ASC"
    sql = (
        f"SELECT c.stream_id, c.position, c.last_event_id FROM {cursors} c"
        f" WHERE {' AND '.join(where)} ORDER BY c.stream_id {order} LIMIT {s.bind(limit)}"
    )
    return sql, s.params


def _scope_eq(s: _Sql, alias: str, scope: ScopeKey) -> str:
    return " AND ".join(f"{alias}.{c} = {s.bind(v)}" for c, v in zip(_SCOPE, scope, strict=True))


def _prefix(s: _Sql, alias: str, prefix: str) -> list[str]:
    low, high = prefix_range(prefix)
    out = [f"{alias}.stream_id >= {s.bind(low)}"] if low else []
    if high is not None:
        out.append(f"{alias}.stream_id < {s.bind(high)}")
    return out


def _filters(s: _Sql, q: EventQuery) -> list[str]:
    out = []
    if q.event_types:
        marks = ", ".join(s.bind(t) for t in q.event_types)
        out.append(f"e.event_type IN ({marks})")
    d = s.dialect
    # Inexact SQL time (seconds as a double): widened by a second here, then exact
    # in EventQuery.matches.
    low, high = ("", "") if d.exact_ts else (" - 1.0", " + 1.0")
    if q.since is not None:
        out.append(f"{d.ts_column} >= {d.ts_param(s.bind(d.ts_value(q.since)))}{low}")
    if q.until is not None:
        out.append(f"{d.ts_column} < {d.ts_param(s.bind(d.ts_value(q.until)))}{high}")
    return out


Row = tuple[bytes, str, int]


def scanned(
    rows: list[Row], q: EventQuery, limit: int
) -> tuple[list[StoredEvent], Position | None, bool]:
    """Decode a page's rows: (events matching exactly, the last row's place, whether
    the page was full, so more may follow)."""
    events = [StoredEvent(record_from_json(body), position) for body, _, position in rows]
    if q.since is not None or q.until is not None:
        events = [e for e in events if q.matches(e)]
    last = Position(rows[-1][1], rows[-1][2]) if rows else None
    return events, last, len(rows) == limit


def stream_result(rows: list[Row], q: EventQuery) -> Scan:
    """A one-stream page as a Scan."""
    events, last, full = scanned(rows, q, q.limit)
    return Scan(events, None if last is None else last.position, done=not full)


def prefix_result(rows: list[Row], q: EventQuery, start: Position | None) -> PrefixScan:
    """A prefix page as a PrefixScan."""
    events, last, full = scanned(rows, q, q.limit)
    return PrefixScan(events, last or start, more=full)
