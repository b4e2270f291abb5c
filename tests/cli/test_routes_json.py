"""`spine routes` and `spine verify` with --json, and switching writers without losing readers.

Real SQLite registry and stores; in-process through the `spine` entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from event_spine.cli.failures import ExitCode
from support.cli import invoke

TENANT = ["t_acme", "dev", "p_core", "saas"]


def cfg(path: Path) -> str:
    return orjson.dumps({"path": str(path)}).decode()


def show(kind: str, registry: str) -> dict[str, Any]:
    got = invoke(["routes", "show", kind, *TENANT, "--registry", registry, "--json"])
    assert got.code == 0, got.err
    parsed: dict[str, Any] = orjson.loads(got.out)
    return parsed


def switch(registry: str, path: Path, *flags: str) -> Any:
    return invoke(
        [
            "routes", "switch", "event_spine", *TENANT, "--backend", "sqlite",
            "--config", cfg(path), "--reason", "disk move", "--registry", registry, *flags,
        ]
    )  # fmt: skip


def test_switching_writers_refuses_to_strand_readers_unless_told(tmp_path: Path) -> None:
    registry = f"sqlite:{tmp_path / 'r.db'}"
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    for kind in ("event_spine", "event_stream"):  # the state a finished cutover leaves
        made = invoke(
            ["routes", "set", kind, *TENANT, "--backend", "sqlite", "--config", cfg(a),
             "--registry", registry]
        )  # fmt: skip
        assert made.code == 0, made.err

    refused = switch(registry, b)
    assert refused.code == ExitCode.CONFIGURATION
    assert "--move-readers" in refused.err
    assert "--split-readers" in refused.err
    assert "event_stream" in refused.err
    assert show("event_spine", registry)["config"] == {"path": str(a)}  # nothing moved

    moved = switch(registry, b, "--move-readers")
    assert moved.code == 0, moved.err
    assert show("event_spine", registry)["config"] == {"path": str(b)}
    assert show("event_stream", registry)["config"] == {"path": str(b)}

    split = switch(registry, c, "--split-readers")
    assert split.code == 0, split.err
    assert show("event_spine", registry)["config"] == {"path": str(c)}
    assert show("event_stream", registry)["config"] == {"path": str(b)}

    # Writers back where readers are: nothing is stranded, no flag needed.
    assert switch(registry, b).code == 0

    history = invoke(
        ["routes", "history", "event_stream", *TENANT, "--registry", registry, "--json"]
    )
    assert history.code == 0, history.err
    entries = orjson.loads(history.out)
    assert [e["to_config"]["path"] for e in entries] == [str(a), str(b)]
    assert entries[-1]["reason"] == "disk move"
    assert entries[-1]["from_backend"] == "sqlite"

    listed = invoke(["routes", "list", "--registry", registry, "--json"])
    assert listed.code == 0, listed.err
    routes = orjson.loads(listed.out)
    assert sorted(r["resource_kind"] for r in routes) == ["event_spine", "event_stream"]
    assert {r["config"]["path"] for r in routes} == {str(b)}


def test_verify_json_reports_the_verdict_and_every_stream(tmp_path: Path) -> None:
    got = invoke(
        [
            "verify", "--tenant", "t_acme", "--env", "dev", "--mode", "saas",
            "--project", "p_core", "--source", f"sqlite:{tmp_path / 'a.db'}",
            "--target", f"sqlite:{tmp_path / 'b.db'}", "--stream", "orders/1",
            "--stream", "orders/2", "--json",
        ]
    )  # fmt: skip
    assert got.code == 0, got.err
    report = orjson.loads(got.out)
    assert report["identical"] is True
    assert report["verdict"].startswith("identical")
    assert [s["stream_id"] for s in report["streams"]] == ["orders/1", "orders/2"]
    assert report["scope"]["tenant_id"] == "t_acme"
