"""The console's DLQ replay and audit check over plain HTTP, on a real pipeline:
what they leave in the stores, the ledger and the topic, and that they match the CLI."""

from __future__ import annotations

import html
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from event_spine.audit.chain import AUDIT_STREAM
from event_spine.dlq import read_letters
from event_spine.dlq.records import REPLAYED_FROM
from event_spine.schemas.routes import ResourceKind, RouteKey
from support.api import A, Api
from support.console_http import console_client, csrf_of, log_in_http
from support.pipeline import ctx
from support.waiting import wait_until

_LETTER = re.compile(r'name="letter" value="(\d+:\d+)"')
_RESULT = re.compile(r'id="audit-result">(.*?)</p>', re.DOTALL)


def _rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _stored_count(api: Api, tenant: str) -> int:
    [(count,)] = _rows(
        api.app.events_db,
        "SELECT count(*) FROM spine_events WHERE tenant_id=? AND stream_id='s'",
        tenant,
    )
    return int(str(count))


async def _republished(api: Api) -> list[str]:
    """The DLQ positions each record re-published into the source topic came from."""
    records = await read_letters(api.app.bootstrap, api.app.topic, None)
    return [r.headers[REPLAYED_FROM] for r in records if REPLAYED_FROM in r.headers]


async def test_replay_selected_letters_once_then_skip_them(api: Api) -> None:
    late = ctx("t_late")
    ids = [api.app.producer.emit_event(late, "x", "s", {"n": n}) for n in range(3)]
    assert api.app.producer.flush(30)
    worker = api.app.workers[0]
    await wait_until(lambda: worker.stats.dead_lettered.get("route_missing") == 3, 30)
    await api.app.route_late(late)
    by = f"console:{api.key_ids['admin']}"
    async with console_client(api) as admin:
        await log_in_http(admin, api, "admin")
        page = await admin.get("/console/dlq")
        letters = _LETTER.findall(page.text)
        assert len(letters) == 3
        chosen = letters[:2]
        form = {"letter": chosen, "csrf": csrf_of(page.text)}
        done = await admin.post("/console/dlq/replay", data=form)
        assert (done.status_code, done.headers["location"]) == (303, "/console/dlq")
        after = await admin.get("/console/dlq")
        assert "Replay: replayed 2." in after.text
        await api.app.wait_stored(late, "s", 2)
        assert _stored_count(api, "t_late") == 2
        # The page marks the replayed letters (no box to tick); the third stays open.
        for letter in chosen:
            row = re.search(
                rf'<tr data-letter="{letter}" class="replayed">(.*?)</tr>', after.text, re.DOTALL
            )
            assert row is not None, letter
            assert "disabled" in row.group(1)
            assert f"by {by}" in row.group(1)
        assert _LETTER.findall(after.text) == letters  # every letter is still listed
        assert f'<tr data-letter="{letters[2]}">' in after.text
        # The same selection again: nothing is re-published, the page says why.
        again = await admin.post("/console/dlq/replay", data={**form, "csrf": csrf_of(after.text)})
        assert again.status_code == 303
        said = (await admin.get("/console/dlq")).text
        assert f"replayed 0; skipped 2 already replayed ({', '.join(chosen)})" in said
        assert sorted(await _republished(api)) == sorted(chosen)
        # One letter's page says who replayed it.
        partition, offset = chosen[0].split(":")
        one = await admin.get(f"/console/dlq/{partition}/{offset}")
        assert f"by {by}" in one.text
        # A position the topic lacks is named; a malformed one is refused, naming the field.
        missing = await admin.post(
            "/console/dlq/replay", data={"letter": "0:999999", "csrf": csrf_of(said)}
        )
        assert missing.status_code == 303
        assert "1 not in the topic (0:999999" in (await admin.get("/console/dlq")).text
        bad = await admin.post(
            "/console/dlq/replay", data={"letter": "zero", "csrf": csrf_of(said)}
        )
        assert bad.status_code == 400
        assert "`letter`" in bad.text
    ledger = _rows(
        api.app.registry_db,
        "SELECT dlq_topic, dlq_partition || ':' || dlq_offset, replayed_by FROM spine_dlq_replays",
    )
    dlq = f"{api.app.topic}.dlq"
    assert sorted(ledger) == sorted((dlq, letter, by) for letter in chosen)
    assert {e.event_id for e in await api.app.read(late, "s")} < set(ids)


def _tamper(db: Path, event_id: str, old: bytes, new: bytes) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        (body,) = conn.execute(
            "SELECT body FROM spine_events WHERE event_id=?", (event_id,)
        ).fetchone()
        assert old in bytes(body)
        conn.execute(
            "UPDATE spine_events SET body=? WHERE event_id=?",
            (bytes(body).replace(old, new), event_id),
        )
    finally:
        conn.close()


def _cli_verify(api: Api) -> subprocess.CompletedProcess[str]:
    scope = ["--tenant", A.tenant_id, "--env", A.env, "--mode", A.mode, "--project", A.project_id]
    registry = ["--registry", f"sqlite:{api.app.registry_db}", "--no-audit"]
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", "audit", "verify", *scope, *registry],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "1000"},
    )


def _result(page: str) -> str:
    found = _RESULT.search(page)
    assert found is not None
    return " ".join(html.unescape(found.group(1)).split())


async def test_audit_shows_the_first_broken_record_as_the_cli_verifies(api: Api) -> None:
    ids = [api.app.producer.emit_event(A, "audit.thing", AUDIT_STREAM, {"n": n}) for n in range(3)]
    await api.app.wait_stored(A, AUDIT_STREAM, 3)
    # The route moves to another store: the chain now spans two (checked across the switch).
    key = RouteKey(ResourceKind.EVENT_SPINE, A.tenant_id, A.env, A.project_id, A.mode)
    moved = api.app.tmp / "moved.db"
    await api.app.registry.switch_route(key, "sqlite", {"path": str(moved)}, actor="t", reason="r")
    async with console_client(api) as http:
        await log_in_http(http, api, "a")
        ok = await http.get("/console/audit", params={"verify": "1"})
        assert _result(ok.text).startswith("OK: 3 audit events")
        # Tamper the first store, which the route no longer names.
        _tamper(api.app.events_db, ids[1], b'"n":1', b'"n":7')
        broken = await http.get("/console/audit", params={"verify": "1"})
        cli = _cli_verify(api)
        assert cli.returncode == 1, cli.stderr
        assert _result(broken.text) == " ".join(cli.stdout.split())
        assert "BROKEN" in _result(broken.text)
        assert "in store 1 of 2" in _result(broken.text)
        first = re.search(r'<dl id="broken">(.*?)</dl>', broken.text, re.DOTALL)
        assert first is not None
        assert ids[1] in first.group(1)
        body = re.search(r'<pre id="broken-body">(.*?)</pre>', broken.text, re.DOTALL)
        assert body is not None  # read from the old store, as tampered
        assert "&#34;n&#34;: 7" in body.group(1) or '"n": 7' in html.unescape(body.group(1))
    async with console_client(api) as other:
        await log_in_http(other, api, "b")
        theirs = await other.get("/console/audit", params={"verify": "1", "tenant_id": A.tenant_id})
        assert _result(theirs.text).startswith("OK: 0 audit events")
        assert "t_alpha" not in theirs.text
        assert ids[1] not in theirs.text
