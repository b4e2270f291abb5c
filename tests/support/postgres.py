"""A throwaway PostgreSQL database on the machine's server (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_DSN = os.environ.get("SPINE_TEST_PG_ADMIN_DSN", "postgresql://127.0.0.1:5432/postgres")


def server_missing(reason: str) -> None:
    """Fail in CI (the server is part of the CI image), skip on a dev machine."""
    message = f"PostgreSQL is not reachable at {ADMIN_DSN}: {reason}"
    if os.environ.get("CI"):
        raise RuntimeError(message)
    pytest.skip(message)


@asynccontextmanager
async def temp_database(prefix: str) -> AsyncIterator[str]:
    """Create a database of its own, yield its DSN, drop it (forcing connections off)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        server_missing(repr(exc))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        # Every connection to it commits without waiting for the WAL flush: the tests
        # commit thousands of small transactions (tamper loops, 100k replays) on a disk
        # the whole machine shares. Visibility and isolation are unchanged; only a crash
        # of the server itself, which no test causes, could lose the last commits.
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
