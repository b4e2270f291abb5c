"""The stdlib pieces: Ed25519 verify against `cryptography`, old records, key rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from event_spine.audit.chain import AUDIT_KEY_ID, AUDIT_STREAM, link_audit_chain
from event_spine.audit.keys import AuditKeySettings, LocalAuditKeys
from event_spine.audit.offline import anchor_due, ed25519_verify
from event_spine.audit.verify import verify_chain
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from support.audit_chain import SECRET
from support.events import SCOPE, stored


def test_pure_ed25519_agrees_with_cryptography() -> None:
    for n in range(40):
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        message = os.urandom(n * 5)
        signature = private.sign(message)
        assert ed25519_verify(public, message, signature)
        bad = bytearray(signature)
        bad[n % 64] ^= 1 << (n % 8)
        assert not ed25519_verify(public, message, bytes(bad))
        assert not ed25519_verify(public, message + b"!", signature)
        other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert not ed25519_verify(other, message, signature)
    assert not ed25519_verify(b"\x00" * 31, b"", b"\x00" * 64)  # wrong sizes: no crash


def test_anchor_rule_counts_and_event_time() -> None:
    assert anchor_due(100, 5.0, 0.0, 100, 60.0)
    assert not anchor_due(99, 5.0, 0.0, 100, 60.0)
    assert anchor_due(7, 70.0, 10.0, 100, 60.0)  # a minute of event time since the last


def keys(key_id: str, secret: str, retired: Path | None = None) -> LocalAuditKeys:
    return LocalAuditKeys(AuditKeySettings(key=SecretStr(secret), key_id=key_id, keys_file=retired))


async def test_old_records_verify_as_unkeyed_and_rotated_keys_keep_verifying(
    tmp_path: Path,
) -> None:
    store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "events.db")))
    await store.open()
    try:
        batches = [
            [stored(p, AUDIT_STREAM, event_type="audit.thing") for p in range(s, s + 3)]
            for s in (0, 10, 20)
        ]
        second = "a-second-hmac-key-also-32-bytes-long"
        for batch, key in zip(batches, (None, keys("k1", SECRET), keys("k2", second)), strict=True):
            linked = await link_audit_chain(store, batch, key.link_key() if key else None)
            await store.append_batch(linked)
        retired = tmp_path / "retired.json"
        retired.write_text(json.dumps({"k1": SECRET}), encoding="utf-8")
        report = await verify_chain(store, SCOPE, keys=keys("k2", second, retired))
        assert report.ok, report.describe()
        assert (report.detail.unkeyed, report.detail.keyed, report.detail.macs_unchecked) == (
            3,
            6,
            0,
        )
        assert "3 unkeyed" in report.describe()
        # Without the retired key, the k1 records are named.
        report = await verify_chain(store, SCOPE, keys=keys("k2", second))
        assert not report.ok
        assert report.broken is not None
        assert report.broken.kind == "rewritten without the key"
        assert report.broken.position == 10
        page = await store.list_after(SCOPE, AUDIT_STREAM, None, 10)
        assert [AUDIT_KEY_ID in e.record.metadata for e in page] == [False] * 3 + [True] * 6
    finally:
        await store.close()
