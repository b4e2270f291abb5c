"""API keys on both registry databases that hold them: hashed, listed, revoked."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from event_spine.api.keys import KeyStore, create_key, hash_secret, secret_matches, split_token
from event_spine.api.keystores import key_store_for
from event_spine.errors import KeyStoreUnsupported
from event_spine.schemas.routes import BackendType
from support.pipeline import ctx
from support.postgres import temp_database


@pytest.fixture(params=["sqlite", "postgres"])
async def keys(request, tmp_path: Path) -> AsyncIterator[KeyStore]:
    if request.param == "sqlite":
        store = key_store_for(BackendType.SQLITE, {"path": str(tmp_path / "registry.db")})
        await store.open()
        yield store
        await store.close()
        return
    async with temp_database("spine_keys") as dsn:
        store = key_store_for(BackendType.POSTGRES, {"dsn": dsn})
        await store.open()
        yield store
        await store.close()


async def test_create_lookup_list_revoke(keys: KeyStore) -> None:
    scoped, token = await create_key(keys, "ui", ctx("t_alpha").scope)
    admin, _ = await create_key(keys, "ops", None, admin=True)
    key_id, secret = split_token(token) or ("", "")
    assert key_id == scoped.key_id
    found = await keys.lookup(key_id)
    assert found is not None
    key, stored_hash = found
    assert stored_hash == hash_secret(secret)
    assert secret not in stored_hash
    assert secret_matches(secret, stored_hash)
    other_last = "B" if secret.endswith("A") else "A"  # a real change (1 run in 64 ended in A)
    assert not secret_matches(secret[:-1] + other_last, stored_hash)
    assert key.scope == ctx("t_alpha").scope
    assert key.active
    listed = await keys.list_keys()
    assert [k.key_id for k in listed] == [scoped.key_id, admin.key_id]
    assert listed[1].admin
    assert listed[1].scope is None
    assert await keys.revoke(key_id, datetime.now(UTC))
    assert not await keys.revoke(key_id, datetime.now(UTC))  # already revoked
    again = await keys.lookup(key_id)
    assert again is not None
    assert not again[0].active
    assert await keys.lookup("000000000000") is None


async def test_only_the_hash_is_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    store = key_store_for(BackendType.SQLITE, {"path": str(path)})
    await store.open()
    _, token = await create_key(store, "ui", ctx().scope)
    await store.close()
    assert token.encode() not in path.read_bytes()
    with sqlite3.connect(path) as conn:
        (secret_hash,) = conn.execute("SELECT secret_sha256 FROM spine_api_keys").fetchone()
    assert secret_hash == hash_secret(token[17:])


def test_registries_without_a_key_table_are_refused() -> None:
    with pytest.raises(KeyStoreUnsupported, match="SQLite or PostgreSQL"):
        key_store_for(BackendType.FILESYSTEM, {"root": "/tmp/x"})
