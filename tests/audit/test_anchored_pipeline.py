"""Keys and anchors through real sink workers: rebalance, restart, redelivery, the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from event_spine.audit import emit_audit_event
from event_spine.audit.anchors import load_anchors
from event_spine.audit.chain import AUDIT_STREAM
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.tabular import SqliteTabularStore
from event_spine.schemas import ResourceRoute, Scope
from support.app import App, running_app
from support.audit_chain import SECRET, write_keys
from support.pipeline import ctx
from support.waiting import wait_until

EVERY = 10


@pytest.fixture
async def app(
    broker: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[App]:
    keys = write_keys(tmp_path)
    assert keys.settings.anchor_key_file is not None
    monkeypatch.setenv("SPINE_AUDIT_KEY", SECRET)
    monkeypatch.setenv("SPINE_AUDIT_KEY_ID", "k1")
    monkeypatch.setenv("SPINE_AUDIT_ANCHOR_KEY_FILE", str(keys.settings.anchor_key_file))
    monkeypatch.setenv("SPINE_AUDIT_ANCHOR_EVERY_EVENTS", str(EVERY))
    async with running_app(broker.bootstrap_servers, tmp_path) as running:  # type: ignore[attr-defined]
        yield running


def spine_audit(app: App, *args: str, tenant: str) -> subprocess.CompletedProcess[str]:
    scope = ["--registry", f"sqlite:{app.registry_db}", "--tenant", tenant, "--env", "dev"]
    scope += ["--mode", "lab", "--project", "p_core", "--no-audit"]
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.audit", *args, *scope],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_rebalance_and_restart_keep_one_keyed_anchored_chain(app: App) -> None:
    contexts = [ctx(f"t_anchor{i}") for i in range(4)]  # spread over the 4 partitions
    await app.route(*contexts)
    for c in contexts:
        anchors_db = app.tmp / "anchors.db"
        route = ResourceRoute.for_scope(c, "object_store", "sqlite", {"path": str(anchors_db)})
        await app.registry.set_route(route, actor="test")

    def burst(n: int) -> None:
        for k in range(n):
            for c in contexts:
                emit_audit_event(c, "step.done", input_data={"k": k}, producer=app.producer)

    first = await app.start_worker(max_records=7)
    burst(25)
    await app.wait_stored(contexts[0], AUDIT_STREAM, 10)
    second = await app.start_worker(max_records=7)  # rebalance while events flow
    burst(25)
    await app.stop_worker(first)
    burst(25)
    for c in contexts:
        await app.wait_stored(c, AUDIT_STREAM, 75)
    await app.stop_worker(second)
    burst(25)  # stored after a restart: the new worker reloads the anchors
    await app.start_worker(max_records=7)
    table = SqliteTabularStore(SqliteConfig(path=str(app.tmp / "anchors.db")))
    await table.open()
    due = list(range(EVERY, 101, EVERY))
    try:
        for c in contexts:
            await app.wait_stored(c, AUDIT_STREAM, 100, timeout_s=60)

            async def anchored(scope: Scope = c.scope) -> bool:
                # The anchorer writes after the batch's events are stored, so the last
                # anchor may land a moment after the 100th event is visible.
                anchors = await load_anchors(table, scope, AUDIT_STREAM)
                return [a["count"] for a in anchors] == due

            await wait_until(anchored, timeout_s=30, message=f"anchors {due} of {c.tenant_id}")
            result = spine_audit(app, "verify", tenant=c.tenant_id)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "OK: 100 audit events chained" in result.stdout
            assert "100 keyed, 0 unkeyed, 0 MACs unchecked (no key), 10 anchors" in result.stdout
    finally:
        await table.close()
    bundle = app.tmp / "bundle"
    out = spine_audit(
        app, "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(bundle),
        tenant=contexts[0].tenant_id,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((bundle / "manifest.json").read_text())["records"] == 100


async def test_cli_names_a_record_rewritten_without_the_key(app: App) -> None:
    c = ctx("t_rewrite")
    await app.route(c)
    anchors_db = app.tmp / "anchors.db"
    route = ResourceRoute.for_scope(c, "object_store", "sqlite", {"path": str(anchors_db)})
    await app.registry.set_route(route, actor="test")
    await app.start_worker()
    for n in range(12):
        emit_audit_event(c, "thing.done", input_data={"n": n}, producer=app.producer)
    events = await app.wait_stored(c, AUDIT_STREAM, 12)
    await app.stop_worker(app.workers[0])
    victim = events[11]  # after the last anchor (10): only its HMAC protects it
    with sqlite3.connect(app.events_db) as db:
        body = db.execute("SELECT body FROM spine_events WHERE event_id=?", (victim.event_id,))
        record = json.loads(body.fetchone()[0])
        record["metadata"]["audit_mac"] = "0" * 64
        db.execute(
            "UPDATE spine_events SET body=? WHERE event_id=?",
            (json.dumps(record).encode(), victim.event_id),
        )
    result = spine_audit(app, "verify", tenant=c.tenant_id)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rewritten without the key" in result.stdout
    assert victim.event_id in result.stdout
    # The same object_store route as the events: refused, nothing anchored there.
    same = ResourceRoute.for_scope(c, "object_store", "sqlite", {"path": str(app.events_db)})
    from event_spine.audit.anchors import refuse_same_store  # noqa: PLC0415
    from event_spine.errors import ConfigurationError  # noqa: PLC0415

    events_route = ResourceRoute.for_scope(c, "event_spine", "sqlite", {"path": str(app.events_db)})
    with pytest.raises(ConfigurationError, match="different store"):
        refuse_same_store(same, events_route)
