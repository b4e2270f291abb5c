"""EventStore: JSON lines per stream, an identity index file per event, a cursor file."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote

import msgspec
import orjson

from event_spine.backends.base import (
    AppendResult,
    EventIdConflict,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    repeat_conflict,
    without_conflicts,
)
from event_spine.backends.filesystem.config import FilesystemConfig
from event_spine.backends.filesystem.files import (
    _append_durably,
    _checked,
    _checked_scope,
    _inside,
    _locked,
    _mapped_errors,
    _replace_durably,
)
from event_spine.backends.querying import Scan, bounds
from event_spine.backends.spec import refuse_outside_lab
from event_spine.errors import StoreLayoutOutdated, StorePermanentError
from event_spine.schemas.formats import EVENT_ID_RE, STREAM_ID_RE
from event_spine.schemas.query import EventQuery
from event_spine.schemas.wire import EventRecord, StoredEvent


class _Line(msgspec.Struct, frozen=True):
    position: int
    record: EventRecord


class _Cursor(msgspec.Struct, frozen=True):
    position: int
    last_event_id: str


_line_codec: Final = msgspec.json.Decoder(_Line)
_cursor_codec: Final = msgspec.json.Decoder(_Cursor)
_encode: Final = msgspec.json.Encoder().encode
LAYOUT_VERSION: Final = 2


class FilesystemEventStore(EventStoreBase):
    """EventStore on plain files; lab mode only."""

    def __init__(self, config: FilesystemConfig) -> None:
        # Routes in production modes are refused by the factory and the registry;
        # each written event's mode is checked again in _write.
        self.root = Path(config.root)

    async def open(self) -> None:
        """Refuse layout 1, create the folders."""
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        with _mapped_errors(self.root):
            if _layout(self.root) < LAYOUT_VERSION:
                raise StoreLayoutOutdated(
                    f"Filesystem store {str(self.root)!r} holds events in layout 1 (one "
                    f"index by event_id alone); this release reads layout {LAYOUT_VERSION}. "
                    f"Migrate it first: `spine migrate filesystem:{self.root}`."
                )
            self._mkdirs()

    def _mkdirs(self) -> None:
        (self.root / "streams").mkdir(parents=True, exist_ok=True)
        (self.root / "by-id").mkdir(parents=True, exist_ok=True)
        marker = self.root / "layout.json"
        if not marker.exists():
            _replace_durably(marker, _encode({"version": LAYOUT_VERSION}), fsync=True)

    def _stream_dir(self, key: StreamKey) -> Path:
        _checked("stream_id", key.stream_id, STREAM_ID_RE)
        folder = self.root.joinpath(
            "streams", *_checked_scope(key.scope_key()), quote(key.stream_id, safe="")
        )
        return _inside(self.root, folder)

    def _id_path(self, scope: ScopeKey, event_id: str) -> Path:
        _checked("event_id", event_id, EVENT_ID_RE)
        return _inside(self.root, self.root.joinpath("by-id", *_checked_scope(scope), event_id))

    async def migrate(self) -> str:
        """Rebuild the identity index from the streams' files (layout 1 -> 2)."""
        return await asyncio.to_thread(self._migrate_sync)

    def _migrate_sync(self) -> str:
        if _layout(self.root) >= LAYOUT_VERSION:
            return f"already at layout {LAYOUT_VERSION}: nothing to do"
        count = 0
        with _mapped_errors(self.root):
            for path in sorted(self.root.glob("streams/*/*/*/*/*/events.jsonl")):
                for raw in path.read_bytes().splitlines(keepends=True):
                    if raw.endswith(b"\n"):
                        line = _line_codec.decode(raw)
                        index = self._id_path(line.record.routing.key(), line.record.event_id)
                        if not index.exists():  # the first line of an id wins, as in reads
                            _replace_durably(index, raw, fsync=False)
                            count += 1
            self._mkdirs()
        return f"indexed {count} event(s) by scope; now at layout {LAYOUT_VERSION}"

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        return await asyncio.to_thread(self._write_sync, groups)

    def _write_sync(self, groups: list[StreamBatch]) -> AppendResult:
        written = duplicates = 0
        with _mapped_errors(self.root):
            self._open_sync()  # never writes layout 2 entries into a layout-1 store
            conflicts: list[EventIdConflict] = []
            for group in groups:
                refuse_outside_lab(group.key.mode)
                folder = self._stream_dir(group.key)
                folder.mkdir(parents=True, exist_ok=True)
                with _locked(folder / ".lock"):
                    fresh = self._fresh(group, conflicts)
                    _refuse_collisions(folder / "events.jsonl", fresh)
                    lines = [_encode(_Line(e.position, e.record)) + b"\n" for e in fresh]
                    _append_durably(folder / "events.jsonl", b"".join(lines))
                    scope = group.key.scope_key()
                    for event, line in zip(fresh, lines, strict=True):
                        _replace_durably(self._id_path(scope, event.event_id), line, fsync=False)
                    for settled in without_conflicts([group], conflicts):
                        self._advance(folder, settled)
                    written += len(fresh)
            duplicates = sum(len(g.events) for g in groups) - written - len(conflicts)
        return AppendResult(written, duplicates, tuple(conflicts))

    def _fresh(self, group: StreamBatch, conflicts: list[EventIdConflict]) -> list[StoredEvent]:
        """The group's events whose identity is not stored; conflicts appended."""
        fresh = []
        scope = group.key.scope_key()
        for event in group.events:
            path = self._id_path(scope, event.event_id)
            if not path.exists():
                fresh.append(event)
                continue
            conflict = repeat_conflict(event, _line_codec.decode(path.read_bytes()).record)
            if conflict is not None:
                conflicts.append(conflict)
        return fresh

    def _advance(self, folder: Path, group: StreamBatch) -> None:
        current = _read_cursor(folder / "cursor.json")
        last = group.watermark
        if current is None or last.position > current.position:
            data = _encode(_Cursor(last.position, last.record.event_id))
            _replace_durably(folder / "cursor.json", data, fsync=True)

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        def read() -> StreamCursor | None:
            with _mapped_errors(self.root):
                cursor = _read_cursor(self._stream_dir(key) / "cursor.json")
            if cursor is None:
                return None
            return StreamCursor(key.stream_id, cursor.position, cursor.last_event_id)

        return await asyncio.to_thread(read)

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        path = self._id_path(scope, event_id)

        def read() -> StoredEvent | None:
            with _mapped_errors(self.root):
                if not path.exists():
                    return None
                line = _line_codec.decode(path.read_bytes())
            return StoredEvent(line.record, line.position)

        return await asyncio.to_thread(read)

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        def read() -> list[StoredEvent]:
            events = self._read_stream(key)
            return [e for e in events if after_position < e.position <= upto_position][:limit]

        return await asyncio.to_thread(read)

    async def _scan_stream(
        self, key: StreamKey, q: EventQuery, start: int | None, upto: int, limit: int
    ) -> Scan:
        """The file is read whole anyway: filter and order it in one pass."""
        low, high = bounds(q, start, upto)

        def read() -> Scan:
            events = [e for e in self._read_stream(key) if low < e.position <= high]
            if q.descending:
                events.reverse()
            out = []
            for event in events:
                if q.matches(event):
                    out.append(event)
                    if len(out) == limit:
                        return Scan(out, event.position, done=False)
            return Scan(out, events[-1].position if events else None, done=True)

        return await asyncio.to_thread(read)

    async def _count_types(self, key: StreamKey) -> dict[str, int]:
        cursor = await self._load_cursor(key)
        if cursor is None:
            return {}
        events = await asyncio.to_thread(self._read_stream, key)
        return dict(Counter(e.record.event_type for e in events if e.position <= cursor.position))

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        def read() -> list[StreamCursor]:
            home = _inside(self.root, self.root.joinpath("streams", *_checked_scope(scope)))
            with _mapped_errors(self.root):
                names = [unquote(p.name) for p in home.iterdir()] if home.is_dir() else []
            ids = sorted((n for n in names if n.startswith(prefix)), reverse=descending)
            if after is not None:
                ids = [i for i in ids if (i < after if descending else i > after)]
            out = []
            for stream_id in ids:
                if not STREAM_ID_RE.match(stream_id):
                    continue  # not a folder this store wrote
                with _mapped_errors(self.root):
                    cursor = _read_cursor(
                        self._stream_dir(StreamKey(*scope, stream_id)) / "cursor.json"
                    )
                if cursor is not None:
                    out.append(StreamCursor(stream_id, cursor.position, cursor.last_event_id))
                    if len(out) == limit:
                        break
            return out

        return await asyncio.to_thread(read)

    def _read_stream(self, key: StreamKey) -> list[StoredEvent]:
        """Every stored event of a stream, first line of each id, by position."""
        path = self._stream_dir(key) / "events.jsonl"
        out: list[StoredEvent] = []
        seen: set[str] = set()
        with _mapped_errors(self.root):
            if not path.exists():
                return out
            with path.open("rb") as handle:
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break  # a torn last line from a crash mid-append
                    line = _line_codec.decode(raw)
                    if line.record.event_id in seen:
                        continue
                    seen.add(line.record.event_id)
                    out.append(StoredEvent(line.record, line.position))
        out.sort(key=lambda e: e.position)
        return out


def _refuse_collisions(path: Path, fresh: list[StoredEvent]) -> None:
    """New ids at taken positions mean reused offsets: refuse rather than shadow an event.

    Scans the stream's file: the lab store trades write speed for this check."""
    if not fresh or not path.exists():
        return
    wanted = {e.position: e.event_id for e in fresh}
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            line = _line_codec.decode(raw)
            holder = wanted.get(line.position)
            if holder is not None and holder != line.record.event_id:
                raise StorePermanentError(
                    f"Event {holder!r} collides with {line.record.event_id!r} at stream "
                    f"position {line.position}: were the topic's offsets reset?"
                )


def _layout(root: Path) -> int:
    """The store's layout: from its marker; 1 for an unmarked store holding ids/."""
    marker = root / "layout.json"
    if marker.exists():
        return int(orjson.loads(marker.read_bytes())["version"])
    legacy = root / "ids"
    return 1 if legacy.is_dir() and any(legacy.iterdir()) else LAYOUT_VERSION


def _read_cursor(path: Path) -> _Cursor | None:
    return _cursor_codec.decode(path.read_bytes()) if path.exists() else None
