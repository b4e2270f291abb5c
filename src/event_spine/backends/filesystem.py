"""Filesystem EventStore: JSON lines on local disk, for lab mode only.

Layout under ``root``::

    streams/<tenant>/<env>/<mode>/<project>/<quoted stream_id>/events.jsonl
    streams/.../cursor.json      the watermark, replaced atomically (write, fsync, rename)
    by-id/<tenant>/<env>/<mode>/<project>/<event_id>
                                 one line per stored event: the identity index for get()
    layout.json                  {"version": 2}; layout 1 (unmarked) kept one global
                                 ``ids/<first 2 hex>/<event_id>`` index: refused at
                                 open until ``spine migrate`` rebuilds the index

Every id that becomes a path component (tenant, env, mode, project, event id,
stream id, table name) is checked against its format on every read and write, and
the joined path must stay under ``root``: a hostile id cannot escape it.

A crash between appending lines and writing the id index can leave a line twice
after redelivery; readers keep the first line of each event id, so nothing is
returned twice. Refused in saas/enterprise/system modes: it is neither shared
between hosts nor backed up.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field

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
from event_spine.backends.factory import refuse_outside_lab
from event_spine.backends.querying import Scan, bounds
from event_spine.errors import (
    ConcurrentUpdate,
    EventValidationError,
    StoreLayoutOutdated,
    StorePermanentError,
    StoreUnavailable,
)
from event_spine.schemas.formats import (
    ENVS,
    EVENT_ID_RE,
    MODES,
    PROJECT_ID_RE,
    STREAM_ID_RE,
    TENANT_ID_RE,
)
from event_spine.schemas.query import EventQuery
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import EventRecord, StoredEvent

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: none. Every query reads the stream's whole events.jsonl once (as
list_after does), filters and orders it in memory; a prefix page lists the scope's
stream folders and reads each stream it visits (at most 100 per page). list_streams:
one folder listing and a cursor.json read per stream returned. Counts: one read of
the stream's file. Lab data only: fine up to a few hundred thousand events a stream.
"""


class FilesystemConfig(BaseModel):
    """Route config of the filesystem backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field(description="Folder holding the store; created if missing.")


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


def _checked_scope(scope: ScopeKey) -> ScopeKey:
    tenant, env, mode, project = scope
    for field, ok in (
        ("tenant_id", TENANT_ID_RE.match(tenant)),
        ("env", env in ENVS),
        ("mode", mode in MODES),
        ("project_id", PROJECT_ID_RE.match(project)),
    ):
        if not ok:
            raise EventValidationError(field, "not a valid id: refused as a path component")
    return scope


def _checked(field: str, value: str, pattern: Any) -> str:
    if not pattern.match(value):
        raise EventValidationError(field, "not a valid id: refused as a path component")
    return value


def _inside(root: Path, path: Path) -> Path:
    """The last guard: whatever the checks above allowed must stay under root."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise EventValidationError("id", f"path {str(path)!r} would leave the store's root")
    return path


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


def _append_durably(path: Path, data: bytes) -> None:
    if not data:
        return
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_durably(path: Path, data: bytes, *, fsync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    tmp.replace(path)
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (two sink workers may share a folder)."""
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _mapped_errors(root: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"Filesystem store {str(root)!r} is unavailable: {exc}") from exc


class FilesystemRegistryStore:
    """RegistryStore as one JSON file per route, written atomically (fsync, rename).

    Compare-and-set holds an exclusive lock file, so processes sharing the folder
    cannot lose each other's switches.
    """

    def __init__(self, config: FilesystemConfig) -> None:
        self.root = Path(config.root) / "routes"

    async def open(self) -> None:
        """Create the folder."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing held open."""

    def _path(self, key: RouteKey) -> Path:
        scope = _checked_scope((key.tenant_id, key.env, key.mode, key.project_id))
        path = self.root.joinpath(
            key.resource_kind.value, scope[0], scope[1], scope[3], f"{key.mode}.json"
        )
        return _inside(self.root, path)

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        return await asyncio.to_thread(self._load_sync, key)

    def _load_sync(self, key: RouteKey) -> ResourceRoute | None:
        path = self._path(key)
        with _mapped_errors(self.root):
            if not path.exists():
                return None
            return ResourceRoute.model_validate_json(path.read_bytes())

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""

        def read() -> list[ResourceRoute]:
            _checked_scope((tenant_id, env, "lab", project_id))
            folder = self.root.joinpath(resource_kind.value, tenant_id, env, project_id)
            with _mapped_errors(self.root):
                return [
                    ResourceRoute.model_validate_json(p.read_bytes())
                    for p in sorted(folder.glob("*.json"))
                ]

        return await asyncio.to_thread(read)

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""

        def read() -> list[ResourceRoute]:
            with _mapped_errors(self.root):
                return [
                    ResourceRoute.model_validate_json(p.read_bytes())
                    for p in sorted(self.root.glob("*/*/*/*/*.json"))
                ]

        return await asyncio.to_thread(read)

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set under the folder's lock."""

        def write() -> None:
            with _mapped_errors(self.root):
                self.root.mkdir(parents=True, exist_ok=True)
                with _locked(self.root / ".lock"):
                    current = self._load_sync(route.key())
                    if (current.version if current else 0) != expected_version:
                        raise ConcurrentUpdate(
                            f"{route.describe()} changed since it was read "
                            f"(expected version {expected_version})"
                        )
                    data = route.model_dump_json(indent=2).encode()
                    _replace_durably(self._path(route.key()), data, fsync=True)

        await asyncio.to_thread(write)


class FilesystemTabularStore:
    """TabularStore as one JSON file per row (lab mode only, like the event store)."""

    def __init__(self, config: FilesystemConfig) -> None:
        self.root = Path(config.root) / "tables"

    async def open(self) -> None:
        """Create the folder."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing held open."""

    def _folder(self, scope: Scope, table: str) -> Path:
        if not table or quote(table, safe="") != table or table in {".", ".."}:
            raise EventValidationError("table", "not a valid name: refused as a path component")
        return _inside(self.root, self.root.joinpath(*_checked_scope(scope.key()), table))

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace, atomically."""
        refuse_outside_lab(scope.mode)
        path = self._folder(scope, table) / quote(key, safe="")
        data = orjson.dumps(value)
        with _mapped_errors(self.root):
            await asyncio.to_thread(_replace_durably, path, data, fsync=True)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        path = self._folder(scope, table) / quote(key, safe="")

        def read() -> dict[str, Any] | None:
            with _mapped_errors(self.root):
                return orjson.loads(path.read_bytes()) if path.exists() else None

        return await asyncio.to_thread(read)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row."""
        path = self._folder(scope, table) / quote(key, safe="")

        def remove() -> bool:
            with _mapped_errors(self.root):
                try:
                    path.unlink()
                except FileNotFoundError:
                    return False
                return True

        return await asyncio.to_thread(remove)

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order."""
        folder = self._folder(scope, table)

        def read() -> list[tuple[str, dict[str, Any]]]:
            with _mapped_errors(self.root):
                if not folder.exists():
                    return []
                keys = sorted(
                    unquote(p.name) for p in folder.iterdir() if not p.name.startswith(".")
                )
                keys = [k for k in keys if k.startswith(prefix) and k > (after_key or "")][:limit]
                return [(k, orjson.loads((folder / quote(k, safe="")).read_bytes())) for k in keys]

        return await asyncio.to_thread(read)
