"""The chain across a real `spine cutover` and a real plain switch, through the broker.

A sink worker (keys and anchors from SPINE_AUDIT_*) writes the audit events; the
cutover replays the topic into the new store (keyed, as the sink linked them) and
switches; a plain switch follows. `spine audit verify`'s code then checks the
whole history, and the exported bundle verifies in `python -I -S`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from event_spine.audit.chain import AUDIT_STREAM
from event_spine.audit.export import Window
from event_spine.cli import audit as cli_audit
from event_spine.replay import CutoverPlan, run_cutover
from event_spine.schemas import ResourceRoute
from event_spine.schemas.routes import BackendType, ResourceKind, RouteKey
from event_spine.schemas.scope import Scope
from support.audit_chain import audit_env
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
)
from support.waiting import wait_until


def audit_rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM spine_events WHERE stream_id=?", (AUDIT_STREAM,)
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


async def test_cutover_then_plain_switch_keep_one_chain(
    broker: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_env(monkeypatch, tmp_path, 4)
    bootstrap = broker.bootstrap_servers  # type: ignore[attr-defined]
    topic = await new_topic(bootstrap, partitions=1)
    c = ctx("t_switch")
    scope = Scope(tenant_id=c.tenant_id, env=c.env, mode=c.mode, project_id=c.project_id)
    key = RouteKey(ResourceKind.EVENT_SPINE, c.tenant_id, c.env, c.project_id, c.mode)
    dbs = [tmp_path / f"{n}.db" for n in "abc"]
    registry = await registry_at(tmp_path / "registry.db")
    await route_to_sqlite(registry, c, dbs[0])
    anchors = {"path": str(tmp_path / "anchors.db")}
    await registry.set_route(
        ResourceRoute.for_scope(c, "object_store", "sqlite", anchors), actor="test"
    )
    settings = sink_settings(bootstrap, topic, tmp_path / "registry.db", route_cache_ttl_s=0.2)
    producer = producer_for(bootstrap, topic)
    sent = 0

    def emit(count: int) -> None:
        nonlocal sent
        for n in range(sent, sent + count):
            producer.emit_event(c, "audit.step", AUDIT_STREAM, {"n": n})
        sent += count
        assert producer.flush(10.0)

    worker = await started_worker(settings)
    try:
        emit(10)
        await wait_until(lambda: audit_rows(dbs[0]) == 10, message="10 in store a")
        plan = CutoverPlan(
            kafka=bootstrap,
            topic=topic,
            route=key,
            backend_type=BackendType.SQLITE,
            config={"path": str(dbs[1])},
            actor="ops",
            reason="cutover a->b",
            live_group=settings.group_id,
            live_route_ttl_s=0.2,
        )
        report = await run_cutover(plan, registry)
        assert report.ok, (report.failed, report.steps)
        emit(6)
        await wait_until(lambda: audit_rows(dbs[1]) == 16, message="16 in store b")
    finally:
        await worker.stop()
    await registry.switch_route(
        key, "sqlite", {"path": str(dbs[2])}, actor="ops", reason="plain switch b->c"
    )
    worker = await started_worker(settings)
    try:
        emit(5)
        await wait_until(lambda: audit_rows(dbs[2]) == 5, message="5 in store c")
    finally:
        await worker.stop()
        producer.close()
    history = await registry.history(key)
    assert [len(s.audit_links) for s in history] == [0, 1, 1]
    assert [s.audit_links[0].count for s in history[1:]] == [10, 16]
    await registry.store.close()
    location = f"sqlite:{tmp_path / 'registry.db'}"
    shown = subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", "routes", "history", *key, "--registry",
         location],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "audit@9 #10" in shown.stdout
    assert "audit@15 #16" in shown.stdout
    unaudited = cli_audit._Audit(None, "spine.events")
    verified = await cli_audit._verify(location, scope, AUDIT_STREAM, unaudited)
    assert verified.ok, verified.describe()
    assert verified.checked == 21
    assert verified.detail.keyed == 21
    assert verified.detail.anchors_checked == 5  # at 4, 8, 12, 16, 20 across three stores
    assert "the chain spans 3 stores" in verified.describe()
    bundle = tmp_path / "bundle"
    window = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    exported = await cli_audit._export(location, scope, AUDIT_STREAM, window, bundle, unaudited)
    assert exported == 21
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [(s["position"], s["count"]) for s in manifest["switches"]] == [(9, 10), (15, 16)]
    offline = subprocess.run(
        [sys.executable, "-I", "-S", str(bundle / "verify_bundle.py"), str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "OK: 21 audit records" in offline.stdout
