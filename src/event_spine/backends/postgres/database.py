"""The pool, the schema DDL, and asyncpg errors mapped to the spine's tree."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Final

import asyncpg

from event_spine.backends.postgres.config import PostgresConfig
from event_spine.errors import StorePermanentError, StoreUnavailable

log = logging.getLogger("event_spine.backends.postgres")

# Fixed key of the DDL advisory lock; per database, shared by every store.
_DDL_LOCK_KEY: Final = 0x5E_5B_1E_DD_1000_0001
# Column type of every id: byte order is code point order (see the package docstring).
_ID = 'text COLLATE "C" NOT NULL'

# --- errors ------------------------------------------------------------------

# SQLSTATE classes a retry can cure: connection (08), rollback by serialization
# or deadlock (40), resources (53), operator intervention incl. statement timeout
# and shutdown (57), system I/O (58), auth (28) and a missing database (3D): the
# last two are configuration, but dead-lettering every batch while a password
# rotates would be worse than pausing.
_RETRIABLE_CLASSES: Final = frozenset({"08", "40", "53", "57", "58", "28", "3D"})
# Lock not available, object in use, no privilege, table dropped under us.
_RETRIABLE_STATES: Final = frozenset({"55P03", "55006", "42501", "42P01"})
_THROTTLED_STATES: Final = frozenset({"53300", "57P03"})


def _mapped_error(exc: Exception, where: str) -> Exception | None:
    """The spine's error for an SDK error, or None when ``exc`` is not one."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state[:2] in _RETRIABLE_CLASSES or state in _RETRIABLE_STATES:
            retry = 1.0 if state in _THROTTLED_STATES else None
            return StoreUnavailable(f"{where} is unavailable [{state}]: {exc}", retry)
        return StorePermanentError(f"{where} refused the operation [{state}]: {exc}")
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        # Client-side encoding refused a value: the same data can never pass.
        return StorePermanentError(f"{where} refused a value: {exc}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # Pool or connection closed, stale statement cache after a schema change.
        return StoreUnavailable(f"{where} is unavailable: {exc}")
    if isinstance(exc, OSError | TimeoutError):
        return StoreUnavailable(f"{where} is unreachable: {exc!r}")
    return None


@contextmanager
def _mapped(where: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except Exception as exc:
        mapped = _mapped_error(exc, where)
        if mapped is None:
            raise
        raise mapped from exc


# --- pool and schema ---------------------------------------------------------


class _Database:
    """One pool, and the tables one store needs (created on open when missing)."""

    def __init__(
        self,
        config: PostgresConfig,
        table: str,
        ddl: str,
        names: Sequence[str],
        check: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
        optional: Sequence[str] = (),
    ) -> None:
        self.config = config
        # Runs before any DDL: may refuse tables an older release wrote.
        self._check = check
        self.where = config.where(table)
        self._ddl = ddl
        # Schema-qualified names, as to_regclass reads them.
        self._names = [f"{config.db_schema}.{config.table_prefix}{n}" for n in names]
        # Objects a role without DDL rights may go without (indexes a later release
        # added): created when the role may, else by `spine migrate`.
        self._optional = [f"{config.db_schema}.{config.table_prefix}{n}" for n in optional]
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()  # two open() calls must not build two pools

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool."""
        if self._pool is None:
            raise StoreUnavailable(f"{self.where}: the store is not open (call open())")
        return self._pool

    async def open(self) -> None:
        """Create the pool, then any missing table. Idempotent."""
        async with self._opening:
            if self._pool is None:
                self._pool = await self._new_pool()

    async def _new_pool(self) -> asyncpg.Pool:
        c = self.config
        with _mapped(self.where):
            pool = await asyncpg.create_pool(
                c.dsn,
                min_size=c.min_pool_size,
                max_size=c.max_pool_size,
                command_timeout=c.command_timeout_s,
                timeout=c.connect_timeout_s,
                statement_cache_size=c.statement_cache_size,
                server_settings={"application_name": "event-spine"},
                reset=_keep_session,
            )
            try:
                await self._create_missing(pool)
            except BaseException:
                pool.terminate()
                raise
        return pool

    async def _create_missing(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire(timeout=self.config.connect_timeout_s) as conn:
            if self._check is not None:
                await self._check(conn)
            missing = await conn.fetchval(
                "SELECT array_agg(n) FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL",
                [*self._names, *self._optional],
            )
            if not missing:
                return
            try:
                await self.create(conn)
            except asyncpg.InsufficientPrivilegeError:
                if not set(missing) <= set(self._optional):
                    raise
                log.warning(
                    "%s: this role may not create %s; reads stay correct but slower until "
                    "`spine migrate` (as the tables' owner) creates it",
                    self.where,
                    ", ".join(missing),
                )

    async def create(self, conn: asyncpg.Connection) -> None:
        """Run the DDL (idempotent), serialized with every other store's."""
        async with conn.transaction():
            # Serializes concurrent open()s: CREATE ... IF NOT EXISTS alone can
            # still fail with a unique violation on the catalog when two race.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK_KEY)
            await conn.execute(self._ddl)

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # Waits for connections in use; a stuck query must not hang shutdown.
            await asyncio.wait_for(pool.close(), self.config.command_timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one READ COMMITTED transaction."""
        pool = self.pool
        async with pool.acquire(timeout=self.config.connect_timeout_s) as conn, conn.transaction():
            yield conn


#: The stores' pool-and-tables type, public for tables kept beside a store in its
#: database: the API keys and the DLQ replay ledger beside the routing registry.
PostgresDatabase = _Database


def side_table(config: PostgresConfig, name: str, columns: str) -> PostgresDatabase:
    """A pool and one table ``<schema>.<table_prefix><name> (columns)``, created with
    its schema on open when missing (``config.table(name)`` is its quoted name)."""
    ddl = _schema_ddl(config) + f"CREATE TABLE IF NOT EXISTS {config.table(name)} ({columns});"
    return _Database(config, name, ddl, [name])


def map_errors(where: str) -> AbstractContextManager[None]:
    """asyncpg's errors as the spine's (StoreUnavailable, StorePermanentError) inside
    the block; ``where`` names the table in the messages (``config.where(name)``)."""
    return _mapped(where)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query when a connection goes back to the pool: one round trip less per
    batch and per read. The stores leave no session state to reset (advisory locks
    are transaction-scoped, no SET, LISTEN or open cursors; the batch staging table
    is meant to stay), and asyncpg still rolls back a transaction left open."""


def _schema_ddl(config: PostgresConfig) -> str:
    # Not CREATE SCHEMA IF NOT EXISTS: that checks the database CREATE privilege
    # even when the schema exists, which a least-privileged role lacks.
    name = config.db_schema
    return (
        f"DO $$ BEGIN IF to_regnamespace('{name}') IS NULL THEN"
        f' CREATE SCHEMA "{name}"; END IF; END $$;\n'
    )


def _rowcount(status: str) -> int:
    """Rows touched, from a command tag such as ``INSERT 0 37`` or ``UPDATE 1``."""
    return int(status.rpartition(" ")[2])
