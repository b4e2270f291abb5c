"""A keyed, anchored audit chain in a real store, and raw access to tamper with it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from pydantic import SecretStr

from event_spine.audit.anchors import ANCHOR_TABLE, Anchorer, load_anchors
from event_spine.audit.chain import AUDIT_STREAM, Member, link_audit_chain
from event_spine.audit.keys import AuditKeySettings, LinkKey, LocalAuditKeys
from event_spine.audit.verify import ChainReport, verify_chain
from event_spine.backends.seams import EventStore
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.tabular import SqliteTabularStore
from event_spine.schemas import StoredEvent
from support.events import SCOPE, stored

#: 14 members, anchored every 4: anchors at members 4, 8, 12; 13 and 14 form the tail.
MEMBERS = 14
EVERY = 4
SECRET = "an-hmac-key-of-at-least-32-bytes!"
COLUMNS = ("event_id", "tenant_id", "env", "mode", "project_id", "stream_id")
#: Columns kept beside the body for operators' queries (not part of the identity).
OPERATOR_COLUMNS = ("event_type", "ts")


def write_keys(tmp: Path, secret: str = SECRET, key_id: str = "k1") -> LocalAuditKeys:
    """Local keys: an HMAC key and a fresh Ed25519 anchor key in a PEM file."""
    pem = tmp / f"anchor-{key_id}.pem"
    if not pem.exists():
        private = Ed25519PrivateKey.generate()
        pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    settings = AuditKeySettings(
        key=SecretStr(secret),
        key_id=key_id,
        anchor_key_file=pem,
        anchor_every_events=EVERY,
        anchor_every_s=3600.0,
    )
    return LocalAuditKeys(settings)


def audit_env(monkeypatch: pytest.MonkeyPatch, tmp: Path, every: int) -> AuditKeySettings:
    """SPINE_AUDIT_* for the sink and `spine audit` (anchors every ``every``); their settings."""
    keys = write_keys(tmp)
    pem = keys.settings.anchor_key_file
    monkeypatch.setenv("SPINE_AUDIT_KEY", SECRET)
    monkeypatch.setenv("SPINE_AUDIT_KEY_ID", "k1")
    monkeypatch.setenv("SPINE_AUDIT_ANCHOR_KEY_FILE", str(pem))
    monkeypatch.setenv("SPINE_AUDIT_ANCHOR_EVERY_EVENTS", str(every))
    return AuditKeySettings(
        key=SecretStr(SECRET), key_id="k1", anchor_key_file=pem, anchor_every_events=every
    )


@dataclass
class Chain:
    """The stores and what was written."""

    events: EventStore
    anchors: SqliteTabularStore
    keys: LocalAuditKeys
    members: list[StoredEvent] = field(default_factory=list)

    async def verify(self, keys: LocalAuditKeys | None = None) -> ChainReport:
        """What `spine audit verify` computes (it calls this with the same inputs)."""
        anchors = await load_anchors(self.anchors, SCOPE, AUDIT_STREAM)
        return await verify_chain(
            self.events, SCOPE, keys=keys or self.keys, anchors=anchors, expect_anchors=True
        )


async def build(events: EventStore, anchor_db: Path, keys: LocalAuditKeys) -> Chain:
    """MEMBERS audit events (and one note) linked in batches of 3, as the sink does."""
    table = SqliteTabularStore(SqliteConfig(path=str(anchor_db)))
    await table.open()
    chain = Chain(events, table, keys)
    signer = keys.anchor_signer()
    assert signer is not None

    async def store_for(_: Any) -> SqliteTabularStore:
        return table

    anchorer = Anchorer(signer, EVERY, 3600.0, store_for)
    batch = [
        stored(10 * (n + 1), AUDIT_STREAM, event_type="audit.thing", payload={"n": n})
        for n in range(MEMBERS)
    ]
    batch.insert(5, stored(55, AUDIT_STREAM, event_type="note.added"))
    for start in range(0, len(batch), 3):
        members: list[Member] = []
        linked = await link_audit_chain(events, batch[start : start + 3], keys.link_key(), members)
        await events.append_batch(linked)
        await anchorer.record(events, members)
        chain.members += [e for e in linked if e.record.event_type.startswith("audit.")]
    assert anchorer.written == MEMBERS // EVERY
    report = await chain.verify()
    assert report.ok, report.describe()
    return chain


class Raw:
    """Direct SQL on the event store's tables (the attacker's view)."""

    async def get(self, event_id: str, column: str) -> Any: ...
    async def set(self, event_id: str, column: str, value: Any) -> None: ...
    async def delete(self, event_id: str) -> None: ...
    async def insert_row(self, row: dict[str, Any]) -> None: ...
    async def row(self, event_id: str) -> dict[str, Any]: ...
    async def set_cursor(self, position: int, event_id: str) -> None: ...


class SqliteRaw(Raw):
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    async def get(self, event_id: str, column: str) -> Any:
        return self.db.execute(
            f"SELECT {column} FROM spine_events WHERE event_id=?", (event_id,)
        ).fetchone()[0]

    async def set(self, event_id: str, column: str, value: Any) -> None:
        self.db.execute(f"UPDATE spine_events SET {column}=? WHERE event_id=?", (value, event_id))

    async def delete(self, event_id: str) -> None:
        self.db.execute("DELETE FROM spine_events WHERE event_id=?", (event_id,))

    async def row(self, event_id: str) -> dict[str, Any]:
        cur = self.db.execute("SELECT * FROM spine_events WHERE event_id=?", (event_id,))
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))

    async def insert_row(self, row: dict[str, Any]) -> None:
        cols = ",".join(row)
        self.db.execute(
            f"INSERT INTO spine_events ({cols}) VALUES ({','.join('?' * len(row))})",
            tuple(row.values()),
        )

    async def set_cursor(self, position: int, event_id: str) -> None:
        self.db.execute(
            "UPDATE spine_cursors SET position=?, last_event_id=?", (position, event_id)
        )

    def close(self) -> None:
        self.db.close()


class PostgresRaw(Raw):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.db = conn

    async def get(self, event_id: str, column: str) -> Any:
        return await self.db.fetchval(
            f"SELECT {column} FROM spine_events WHERE event_id=$1", event_id
        )

    async def set(self, event_id: str, column: str, value: Any) -> None:
        await self.db.execute(
            f"UPDATE spine_events SET {column}=$1 WHERE event_id=$2", value, event_id
        )

    async def delete(self, event_id: str) -> None:
        await self.db.execute("DELETE FROM spine_events WHERE event_id=$1", event_id)

    async def row(self, event_id: str) -> dict[str, Any]:
        return dict(
            await self.db.fetchrow("SELECT * FROM spine_events WHERE event_id=$1", event_id)
        )

    async def insert_row(self, row: dict[str, Any]) -> None:
        marks = ",".join(f"${i + 1}" for i in range(len(row)))
        await self.db.execute(
            f"INSERT INTO spine_events ({','.join(row)}) VALUES ({marks})", *row.values()
        )

    async def set_cursor(self, position: int, event_id: str) -> None:
        await self.db.execute(
            "UPDATE spine_cursors SET position=$1, last_event_id=$2", position, event_id
        )

    def close(self) -> None:
        pass


def flipped(value: bytes, index: int) -> bytes:
    """``value`` with one byte changed (lowest bit flipped)."""
    return value[:index] + bytes([value[index] ^ 1]) + value[index + 1 :]


def ascii_flips(text: str) -> list[str]:
    """Every single-byte change of an ASCII column value (NUL avoided: PostgreSQL text)."""
    raw = text.encode()
    return [flipped(raw, i).decode() for i in range(len(raw)) if raw[i] != 1]


def column_flips(value: Any) -> list[Any]:
    """Every single-byte change of a text column; a timestamp column (PostgreSQL's
    timestamptz) moved by one unit of each field, microseconds to days."""
    if isinstance(value, datetime):
        units = ("microseconds", "seconds", "minutes", "hours", "days")
        return [value + timedelta(**{unit: 1}) for unit in units]
    return ascii_flips(value)


def position_flips(position: int) -> list[int]:
    """One flipped bit in each of the low 7 bytes of the (positive) int64."""
    return [position ^ (1 << (8 * k)) for k in range(7)]


async def relinked(
    chain: Chain, members: list[StoredEvent], key: LinkKey | None
) -> list[StoredEvent]:
    """Members re-linked after the one before them, with another key (or none)."""
    from event_spine.audit.chain import AUDIT_HASH, GENESIS, linked  # noqa: PLC0415

    index = chain.members.index(members[0])
    prev = chain.members[index - 1].record.metadata[AUDIT_HASH] if index else GENESIS
    out = []
    for event in members:
        record = event.record
        forged = StoredEvent(
            record.__class__(
                **{
                    **{f: getattr(record, f) for f in record.__struct_fields__},
                    "payload": {"n": "rewritten"},
                }
            ),
            event.position,
        )
        new = linked(forged, str(prev), key)
        out.append(new)
        prev = new.record.metadata[AUDIT_HASH]
    return out


__all__ = ["ANCHOR_TABLE", "COLUMNS", "Chain", "PostgresRaw", "SqliteRaw", "build", "write_keys"]
