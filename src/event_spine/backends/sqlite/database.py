"""One SQLite file, one connection, one thread; multi-row inserts; error mapping."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.errors import StorePermanentError, StoreUnavailable

T = TypeVar("T")

#: Rows per statement at most: 2048 x 10 columns stays under SQLite's default limit
#: of 32766 bound parameters.
_MAX_ROWS_PER_STATEMENT = 2048
_PAD_STEP = 256


class SqliteDatabase:
    """One SQLite file, one connection, one thread: every call runs on that thread."""

    def __init__(
        self,
        config: SqliteConfig,
        schema: str,
        check: Callable[[sqlite3.Connection, str], None] | None = None,
    ) -> None:
        self.config = config
        self._schema = schema
        # Runs before the schema: may refuse a file an older release wrote.
        self._check = check
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spine-sqlite")
        self._conn: sqlite3.Connection | None = None
        # Read connections of the callers' threads (inline_reads), by thread id. A
        # second connection to an in-memory database would see another database.
        self._readers: dict[int, sqlite3.Connection] = {}
        self._inline = config.inline_reads and config.path not in ("", ":memory:")

    async def open(self) -> None:
        """Open the file (WAL) and create the tables."""
        await self.run(lambda: self.db)

    async def close(self) -> None:
        """Close the connections and the thread."""
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()
        if self._conn is not None:
            await self.run(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread, errors mapped to the spine's tree."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._mapped, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run the short read ``fn`` on the caller's thread (``inline_reads``), else on
        the database thread. Inline, SQLite is not told to wait: WAL readers never wait
        for the writer, and in the rare busy case (recovery, a non-WAL file) the read
        goes to the database thread, which waits up to busy_timeout_ms."""
        if self._inline and self._conn is not None:
            try:
                with _mapped_errors(self.config.path, keep=_locked):
                    return fn(self._reader())
            except sqlite3.OperationalError:
                pass  # busy: the database thread waits for it
        return await self.run(lambda: fn(self.db))

    def _reader(self) -> sqlite3.Connection:
        reader = self._readers.get(threading.get_ident())
        if reader is None:
            # Used only by the thread that opened it; check_same_thread=False lets
            # close() run on another.
            reader = sqlite3.connect(
                self.config.path, isolation_level=None, check_same_thread=False
            )
            reader.execute("PRAGMA busy_timeout = 0")
            reader.execute("PRAGMA query_only = ON")
            self._readers[threading.get_ident()] = reader
        return reader

    def _mapped(self, fn: Callable[[], T]) -> T:
        with _mapped_errors(self.config.path):
            return fn()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, opened on first use (only call on the database thread)."""
        if self._conn is None:
            Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.config.path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.config.busy_timeout_ms)}")
            _enable_wal(conn, self.config.busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA synchronous = {self.config.synchronous}")
            if self._check is not None:
                try:
                    self._check(conn, self.config.path)
                except BaseException:
                    conn.close()
                    raise
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: takes the write lock up front, so no upgrade deadlock."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL, retrying "database is locked" within the busy timeout.

    Why: the switch needs an exclusive lock and SQLite does not call the busy handler
    for it, so when several stores open a new file at once (a worker and two readers
    of one route), all but one failed at once (measured: 2-3% of opens, 4 at a time).
    """
    for attempt in Retrying(
        retry=retry_if_exception(_locked),
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(0.01),
        reraise=True,
    ):
        with attempt:
            conn.execute("PRAGMA journal_mode = WAL")


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def insert_rows(db: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> int:
    """Run ``sql`` (an ``INSERT ... VALUES {values} ON CONFLICT ...``) for ``rows``,
    up to ``_MAX_ROWS_PER_STATEMENT`` rows per statement; returns rows inserted.

    Each statement is padded by repeating its last row (``_padded_size``), so only a
    few statement texts exist (sqlite3 caches them prepared). ``sql`` must make a
    repeated row a no-op, as ``ON CONFLICT DO NOTHING`` and a forward-only upsert do.
    """
    if not rows:
        return 0
    width = len(rows[0])
    step = _rows_per_statement(db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    inserted = 0
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        size = _padded_size(len(chunk))
        chunk.extend([chunk[-1]] * (size - len(chunk)))
        cursor = db.execute(_statement(sql, size, width), [v for row in chunk for v in row])
        inserted += cursor.rowcount
    return inserted


def _rows_per_statement(allowed: int) -> int:
    """The largest padded size within ``allowed`` rows (SQLite builds before 3.32
    allow only 999 bound parameters per statement, later ones 32766)."""
    allowed = min(allowed, _MAX_ROWS_PER_STATEMENT)
    if allowed >= _PAD_STEP:
        return allowed // _PAD_STEP * _PAD_STEP
    return 1 << (allowed.bit_length() - 1)


def _padded_size(rows: int) -> int:
    """A power of two up to 256 rows, then a multiple of 256: at most 16 statement
    texts, and at most 255 repeated rows per statement."""
    if rows <= _PAD_STEP:
        return 1 << (rows - 1).bit_length()
    return -(-rows // _PAD_STEP) * _PAD_STEP


@functools.cache
def _statement(sql: str, rows: int, width: int) -> str:
    placeholders = "(" + ",".join("?" * width) + ")"
    return sql.format(values=",".join([placeholders] * rows))


@contextmanager
def _mapped_errors(
    path: str, keep: Callable[[BaseException], bool] = lambda _: False
) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary (those ``keep`` names stay)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if keep(exc):
            raise
        # Locked, busy, disk I/O, unable to open: all may pass.
        raise StoreUnavailable(f"SQLite store {path!r} is unavailable: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StorePermanentError(f"SQLite store {path!r} refused the write: {exc}") from exc
