"""The tamper matrix of issue 15: every tamper is detected, on SQLite and PostgreSQL,
by the store verifier (`spine audit verify`'s code) and by the bundle's offline verifier.

Each test prints its matrix (run with -s to see it): kind, cases tried, detected.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from event_spine.audit.anchors import ANCHOR_TABLE, anchor_key, load_anchors
from event_spine.audit.chain import AUDIT_STREAM
from event_spine.audit.export import Window, export_bundle
from event_spine.audit.keys import LinkKey, anchor_key_id
from event_spine.audit.offline import anchor_message, verify_bundle
from event_spine.audit.verify import as_link
from event_spine.backends.postgres import PostgresConfig
from event_spine.backends.postgres.events import PostgresEventStore
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from support.audit_chain import (
    COLUMNS,
    MEMBERS,
    OPERATOR_COLUMNS,
    SECRET,
    Chain,
    PostgresRaw,
    Raw,
    SqliteRaw,
    ascii_flips,
    build,
    column_flips,
    flipped,
    position_flips,
    relinked,
    write_keys,
)
from support.events import SCOPE
from support.postgres import temp_database

#: (record, byte stride): every byte of the last record (unanchored: only its HMAC
#: protects it), every 5th of one under an anchor: ~700 body cases, ~10 s on SQLite.
SAMPLE = ((12, 1), (1, 5))
#: PostgreSQL answers a verify in ~90 ms here (38 round trips at ~1.4 ms each in
#: socket.send, measured with cProfile) against ~9 ms for SQLite: there the body is
#: changed at every 4th byte (every 20th under the anchor); the other fields at every byte.
BODY_STRIDE = {"SqliteEventStore": 1, "PostgresEventStore": 4}
HMAC_KEYS = {"k1": SECRET.encode()}
WRONG = LinkKey("k1", b"not-the-key-but-just-as-long-as-it" * 2)


@pytest.fixture(params=["sqlite", "postgres"])
async def chain(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Chain, Raw]]:
    keys = write_keys(tmp_path)
    if request.param == "sqlite":
        store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "events.db")))
        await store.open()
        built = await build(store, tmp_path / "anchors.db", keys)
        raw = SqliteRaw(tmp_path / "events.db")
        yield built, raw
        raw.close()
        await store.close()
        await built.anchors.close()
        return
    import asyncpg  # noqa: PLC0415

    async with temp_database("audit") as dsn:
        pg = PostgresEventStore(PostgresConfig(dsn=dsn))
        await pg.open()
        built = await build(pg, tmp_path / "anchors.db", keys)
        conn = await asyncpg.connect(dsn)
        yield built, PostgresRaw(conn)
        await conn.close()
        await pg.close()
        await built.anchors.close()


class Matrix:
    """Counts cases and detections per kind; remembers the misses."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tried: Counter[str] = Counter()
        self.detected: Counter[str] = Counter()
        self.missed: list[str] = []

    def record(self, kind: str, ok: bool, case: str) -> None:
        self.tried[kind] += 1
        if not ok:
            self.detected[kind] += 1
        else:
            self.missed.append(f"{kind}: {case}")

    def show(self) -> str:
        rows = [
            f"{k:28} tried {self.tried[k]:5}  detected {self.detected[k]:5}" for k in self.tried
        ]
        return f"\n== {self.name}\n" + "\n".join(rows)


async def test_store_verifier_detects_every_tamper(
    chain: tuple[Chain, Raw], tmp_path: Path
) -> None:
    built, raw = chain
    m = Matrix(f"store verifier ({type(built.events).__name__})")
    await byte_flips(built, raw, m)
    snapshot = [await raw.row(e.event_id) for e in built.members]
    await structural(built, raw, m, snapshot)
    await anchor_tampers(built, m, built.verify)
    print(m.show())
    assert not m.missed, m.missed


async def byte_flips(built: Chain, raw: Raw, m: Matrix) -> None:
    for i, stride in SAMPLE:
        eid = built.members[i].event_id
        for column in COLUMNS:
            original = await raw.get(eid, column)
            for value in ascii_flips(original):
                await raw.set(eid, column, value)
                key = value if column == "event_id" else eid
                m.record(f"byte:{column}", (await built.verify()).ok, f"record {i} {value}")
                await raw.set(key, column, original)
        # The operator columns beside the body (gap d): a changed one must be named.
        for column in OPERATOR_COLUMNS:
            original = await raw.get(eid, column)
            for value in column_flips(original):
                await raw.set(eid, column, value)
                report = await built.verify()
                named = report.broken is not None and report.broken.event_id == eid
                m.record(f"byte:{column}", report.ok or not named, f"record {i} {value}")
                await raw.set(eid, column, original)
        original = await raw.get(eid, "position")
        for value in position_flips(original):
            await raw.set(eid, "position", value)
            m.record("byte:position", (await built.verify()).ok, f"record {i} {value}")
            await raw.set(eid, "position", original)
        body = bytes(await raw.get(eid, "body"))
        for index in range(0, len(body), stride * BODY_STRIDE[type(built.events).__name__]):
            await raw.set(eid, "body", flipped(body, index))
            report = await built.verify()
            m.record("byte:body", report.ok, f"record {i} byte {index}")
        await raw.set(eid, "body", body)
        await raw.set(eid, "body", b"{not json")
        report = await built.verify()
        m.record(
            "malformed body",
            report.ok or report.broken is None or report.broken.kind != "malformed",
            f"record {i}",
        )
        await raw.set(eid, "body", body)


async def restore(raw: Raw, built: Chain, snapshot: list[dict[str, Any]]) -> None:
    for row in snapshot:
        await raw.delete(row["event_id"])
    for row in snapshot:
        await raw.insert_row(row)
    last = built.members[-1]
    await raw.set_cursor(last.position, last.event_id)
    assert (await built.verify()).ok


async def structural(built: Chain, raw: Raw, m: Matrix, snapshot: list[dict[str, Any]]) -> None:
    members = built.members
    for i, event in enumerate(members):
        await raw.delete(event.event_id)
        report = await built.verify()
        m.record("delete", report.ok, f"record {i}")
        await restore(raw, built, snapshot)
    for i in range(MEMBERS):
        for j in range(i + 1, MEMBERS):
            a, b = members[i], members[j]
            await raw.set(a.event_id, "position", -1)
            await raw.set(b.event_id, "position", a.position)
            await raw.set(a.event_id, "position", b.position)
            m.record("swap", (await built.verify()).ok, f"{i}<->{j}")
            await restore(raw, built, snapshot)
    for k in range(1, MEMBERS + 1):
        for event in members[-k:]:
            await raw.delete(event.event_id)
        m.record("truncate (watermark kept)", (await built.verify()).ok, f"last {k}")
        rest = members[: MEMBERS - k]
        if rest:
            await raw.set_cursor(rest[-1].position, rest[-1].event_id)
            kind = (
                "truncate anchored (moved wm)" if k > MEMBERS % 4 else "LIMIT: unanchored tail cut"
            )
            report = await built.verify()
            if kind.startswith("LIMIT"):
                m.tried[kind] += 1
                m.detected[kind] += 0 if report.ok else 1
            else:
                m.record(kind, report.ok, f"last {k}")
        await restore(raw, built, snapshot)
    for j in range(MEMBERS):
        for label, key in (("rewrite tail, wrong key", WRONG), ("rewrite tail, unkeyed", None)):
            for event in await relinked(built, members[j:], key):
                from event_spine.backends.base import event_body  # noqa: PLC0415

                await raw.set(event.event_id, "body", event_body(event))
            m.record(label, (await built.verify()).ok, f"from record {j}")
            await restore(raw, built, snapshot)


async def anchor_tampers(built: Chain, m: Matrix, verify: Any, rewrite: Any = None) -> None:
    """Delete or forge anchors in the anchor store (or, with ``rewrite``, in a bundle)."""
    anchors = await load_anchors(built.anchors, SCOPE, AUDIT_STREAM)
    other = Ed25519PrivateKey.generate()

    written = {a["position"] for a in anchors}

    async def put_all(new: list[dict[str, Any]]) -> None:
        if rewrite is not None:
            rewrite(new)
            return
        for position in written:
            await built.anchors.delete(SCOPE, ANCHOR_TABLE, anchor_key(AUDIT_STREAM, position))
        written.update(a["position"] for a in new)
        for a in new:
            await built.anchors.put(SCOPE, ANCHOR_TABLE, anchor_key(AUDIT_STREAM, a["position"]), a)

    def signed(anchor: dict[str, Any], claim: str | None = None) -> dict[str, Any]:
        anchor = {**anchor, "key_id": claim or anchor_key_id(other.public_key().public_bytes_raw())}
        anchor["signature"] = base64.b64encode(other.sign(anchor_message(anchor))).decode()
        return anchor

    cases: list[tuple[str, list[dict[str, Any]]]] = []
    for i in range(len(anchors)):
        cases.append(("anchor deleted", anchors[:i] + anchors[i + 1 :]))
        cases.append(
            (
                "anchor forged (edited)",
                [*anchors[:i], {**anchors[i], "count": 99}, *anchors[i + 1 :]],
            )
        )
        cases.append(
            (
                "anchor forged (other key)",
                [*anchors[:i], signed(anchors[i], anchors[i]["key_id"]), *anchors[i + 1 :]],
            )
        )
    tail = built.members[-1]
    extra = {
        **anchors[-1],
        "position": tail.position,
        "event_id": tail.event_id,
        "count": MEMBERS,
        "prev_signature": anchors[-1]["signature"],
    }
    cases.append(("anchor forged (added)", [*anchors, signed(extra)]))
    for kind, new in cases:
        await put_all(new)
        m.record(kind, (await verify()).ok, kind)
    await put_all(anchors)
    assert (await verify()).ok


@pytest.fixture
async def exported(chain: tuple[Chain, Raw], tmp_path: Path) -> tuple[Chain, Path]:
    """The chain and a bundle of all of it."""
    bundle = tmp_path / "bundle"
    await export_whole(chain[0], bundle)
    return chain[0], bundle


async def test_offline_verifier_detects_every_tamper(exported: tuple[Chain, Path]) -> None:
    built, bundle = exported
    lines = (bundle / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    anchor_lines = (bundle / "anchors.jsonl").read_text(encoding="utf-8")
    m = Matrix(f"offline verifier (bundle from {type(built.events).__name__})")

    def check(records: list[str]) -> bool:
        (bundle / "records.jsonl").write_text("".join(records), encoding="utf-8")
        return verify_bundle(bundle, HMAC_KEYS).ok

    for i, stride in SAMPLE:
        raw = lines[i].encode()
        for index in range(0, len(raw) - 1, stride):  # the newline ends the line, it is not data
            changed = flipped(raw, index).decode("utf-8", errors="replace")
            m.record(
                "byte:line",
                check([*lines[:i], changed, *lines[i + 1 :]]),
                f"record {i} byte {index}",
            )
    for i in range(MEMBERS):
        m.record("delete", check(lines[:i] + lines[i + 1 :]), f"line {i}")
        for j in range(i + 1, MEMBERS):
            swapped = list(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            m.record("swap", check(swapped), f"{i}<->{j}")
        for label, key in (("rewrite tail, wrong key", WRONG), ("rewrite tail, unkeyed", None)):
            new = [
                json.dumps(as_link(e), ensure_ascii=False) + "\n"
                for e in await relinked(built, built.members[i:], key)
            ]
            m.record(label, check(lines[:i] + new), f"from record {i}")
    for k in range(1, MEMBERS + 1):
        kind = "truncate anchored" if k > MEMBERS % 4 else "LIMIT: unanchored tail cut"
        ok = check(lines[: MEMBERS - k])
        if kind.startswith("LIMIT"):
            m.tried[kind] += 1
            m.detected[kind] += 0 if ok else 1
        else:
            m.record(kind, ok, f"last {k}")
    m.record("malformed line", check([*lines[:3], "{not json\n", *lines[4:]]), "line 3")
    check(lines)

    def rewrite(new: list[dict[str, Any]]) -> None:
        (bundle / "anchors.jsonl").write_text(
            "".join(json.dumps(a) + "\n" for a in new), encoding="utf-8"
        )

    async def verify_now() -> Any:
        return verify_bundle(bundle, HMAC_KEYS)

    await anchor_tampers(built, m, verify_now, rewrite)
    (bundle / "anchors.jsonl").write_text(anchor_lines, encoding="utf-8")
    print(m.show())
    assert not m.missed, m.missed


async def export_whole(built: Chain, bundle: Path) -> None:
    anchors = await load_anchors(built.anchors, SCOPE, AUDIT_STREAM)
    now = datetime.now(UTC)
    window = Window(now - timedelta(days=1), now + timedelta(days=1))
    count = await export_bundle(
        built.events, SCOPE, AUDIT_STREAM, window, anchors, built.keys, bundle
    )
    assert count == MEMBERS


async def test_bundle_verifies_in_a_fresh_interpreter(
    exported: tuple[Chain, Path], tmp_path: Path
) -> None:
    built, bundle = exported
    keys = tmp_path / "hmac.json"
    keys.write_text(json.dumps({"k1": SECRET}), encoding="utf-8")
    alone = tmp_path / "alone"  # nothing of the project beside it
    shutil.copytree(bundle, alone)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        script = str(alone / "verify_bundle.py")
        return subprocess.run(
            [sys.executable, "-I", "-S", script, str(alone), *extra],
            capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip

    result = run("--hmac-keys", str(keys))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {MEMBERS} audit records ({MEMBERS} keyed" in result.stdout
    assert "3 anchors" in result.stdout
    unkeyed = run()  # without the HMAC key: links and anchors, MACs counted unchecked
    assert unkeyed.returncode == 0, unkeyed.stdout + unkeyed.stderr
    assert f"{MEMBERS} MACs unchecked" in unkeyed.stdout
    lines = (alone / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (alone / "records.jsonl").write_text("".join(lines[:5] + lines[6:]), encoding="utf-8")
    broken = run("--hmac-keys", str(keys))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert built.members[6].event_id in broken.stdout
