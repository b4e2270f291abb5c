"""Every user error of `spine` ends in a short message and its documented exit code.

Table-driven: each row is one bad invocation, the exit code docs/operations.md gives
its class, and what the message must name (the argument, field, path or route).
In-process through the same entry point as the `spine` script (``failures.run``),
against real files, a real PostgreSQL and an unreachable broker port; a few rows run
as subprocesses of the installed entry point to check the whole path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from event_spine.cli.failures import EXIT_CODES, ExitCode, exit_code_table
from support.cli import invoke

ROOT = Path(__file__).resolve().parents[2]
SCOPE = ["event_spine", "t_acme", "dev", "p_core", "saas"]
DEAD_BROKER = "127.0.0.1:1"
PG = "postgresql://127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An existing SQLite registry holding one event_spine route for t_acme."""
    where = tmp_path_factory.mktemp("registry")
    location = f"sqlite:{where / 'r.db'}"
    config = orjson.dumps({"path": str(where / "events.db")}).decode()
    made = invoke(
        ["routes", "set", *SCOPE, "--backend", "sqlite", "--config", config, "--registry", location,
         "--no-audit"]
    )  # fmt: skip
    assert made.code == 0, made.err
    return location


def rows(tmp: Path, registry: str) -> list[tuple[list[str], ExitCode, list[str]]]:
    """(args, exit code, substrings the message must hold)."""
    missing = f"sqlite:{tmp / 'no' / 'such' / 'r.db'}"
    cfg = orjson.dumps({"path": str(tmp / "x.db")}).decode()
    other = ["event_spine", "t_other", "dev", "p_core", "saas"]
    other_route = "event_spine:t_other:dev:p_core:saas"
    into = ["--into-backend", "sqlite", "--into-config", cfg, "--include-unrouted"]
    scope = ["--tenant", "t_acme", "--env", "dev", "--mode", "saas", "--project", "p_core"]
    bad_pg = orjson.dumps({"dsn": "postgresql://127.0.0.1:1/x", "connect_timeout_s": 1}).decode()
    role_pg = orjson.dumps({"dsn": "postgresql://no_such_role_x@127.0.0.1:5432/postgres"}).decode()
    u, c, r = ExitCode.USAGE, ExitCode.CONFIGURATION, ExitCode.UNREACHABLE
    reg = ["--registry", registry]
    # routes show/set/switch/update audit through Kafka by default: none here, so opt out.
    rreg = [*reg, "--no-audit"]
    set_ = ["routes", "set"]
    sw = ["routes", "switch", *SCOPE, "--backend", "sqlite"]
    rl = ["routes", "list", "--registry"]
    rp = ["replay", "--bootstrap", DEAD_BROKER]
    cut = ["cutover", "--bootstrap", DEAD_BROKER, "--actor", "a", "--reason", "r"]
    sqlite_set = ["--backend", "sqlite", "--config", cfg, *rreg]
    # fmt: off
    return [
        # routes set
        ([*set_, "event_spine", "BAD T", "dev", "p", "saas", *sqlite_set],
            u, ["tenant_id", "--tenant"]),
        ([*set_, *SCOPE, "--backend", "sqlite", "--config", "{path:", *rreg], u, ["--config"]),
        ([*set_, *SCOPE, "--backend", "sqlite", "--config", "[1]", *rreg], u, ["--config"]),
        ([*set_, "nokind", *SCOPE[1:], *sqlite_set], u, ["KIND", "nokind"]),
        ([*set_, *SCOPE, "--backend", "nosuch", "--config", cfg, *rreg], u, ["backend_type"]),
        ([*set_, *SCOPE[:4], "weird", *sqlite_set], u, ["mode"]),
        ([*set_, *SCOPE, "--backend", "filesystem", "--config", '{"root": "/tmp/x"}', *rreg],
            c, ["filesystem"]),
        ([*set_, *SCOPE, "--config", cfg, *rreg], u, ["--backend"]),
        ([*set_, *SCOPE, "--backend", "sqlite", "--registry", "nocolon", "--no-audit"],
            u, ["--registry"]),
        ([*set_, *SCOPE, "--backend", "sqlite", "--registry", "nosuch:/x", "--no-audit"],
            u, ["--registry", "nosuch"]),
        # routes list / show / history / switch / update
        ([*rl, missing], c, [str(tmp / "no"), "--create"]),
        (["routes", "show", *other, *rreg], c, ["t_other", "spine routes set"]),
        (["routes", "show", "nokind", *SCOPE[1:], *rreg], u, ["KIND"]),
        (["routes", "history", *other, *reg], c, ["t_other"]),
        (["routes", "switch", *other, "--backend", "sqlite", "--reason", "x", *rreg],
            c, ["t_other"]),
        ([*sw, "--config", "{", "--reason", "x", *rreg], u, ["--config"]),
        ([*sw, "--reason", "x", "--move-readers", "--split-readers", *rreg],
            u, ["--move-readers", "--split-readers"]),
        ([*sw, *rreg], u, ["--reason"]),
        (["routes", "update", *SCOPE, "--health", "nonsense", *rreg], u, ["--health"]),
        ([*rl, f"postgres:{bad_pg}"], r, ["127.0.0.1:1"]),
        ([*rl, f"postgres:{role_pg}"], ExitCode.AUTH, ["no_such_role_x", "access refused"]),
        ([*rl, 'postgres:{"dsn": "postgresql://u:pw@127.0.0.1/db"}'], c, ["dsn", "password"]),
        ([*rl, f'sqlite:{{"path": "{tmp}/a.db", "bogus": 1}}'], c, ["bogus"]),
        (["routes", "list", "--bogus", *reg], u, ["--bogus"]),
        # replay
        ([*rp, *into], r, ["--bootstrap", DEAD_BROKER]),
        (["replay", *into], u, ["--bootstrap"]),
        ([*rp, *into[:4]], c, ["--registry", "--include-unrouted"]),
        ([*rp, "--into-route", "a:b", *reg], u, ["--into-route"]),
        ([*rp, "--into-route", other_route], u, ["--registry"]),
        ([*rp], u, ["--into-route", "--into-backend"]),
        ([*rp, "--into-backend", "sqlite", "--into-config", "{bad"], u, ["--into-config"]),
        ([*rp, *into, "--from-offsets", "x"], u, ["--from-offsets"]),
        ([*rp, *into, "--from-time", "yesterday"], u, ["--from-time"]),
        ([*rp, *into, "--from-beginning", "--from-time", "2025-01-01T00:00:00Z"],
            u, ["--from-beginning"]),
        ([*rp, "--into-backend", "nosuch"], c, ["nosuch"]),
        ([*rp, "--into-route", other_route, "--registry", missing], c, ["--create"]),
        ([*rp, "--into-route", other_route, *reg], c, ["t_other"]),
        ([*rp, *into, "--max-records", "0"], u, ["--max-records"]),
        # verify
        (["verify", "--tenant", "BAD ID", *scope[2:], "--stream", "s"], u, ["tenant_id"]),
        (["verify", *scope], u, ["--stream", "--bootstrap"]),
        (["verify", *scope, "--stream", "s", "--source", f"sqlite:{tmp}/a.db",
          "--source-route", other_route],
            u, ["--source"]),
        (["verify", *scope[:4], "--mode", "weird", *scope[6:], "--stream", "s"], u, ["mode"]),
        # cutover
        ([*cut, "--route", other_route, "--into-backend", "nosuch", *reg],
            u, ["--into-backend", "nosuch"]),
        ([*cut, "--route", "bad", "--into-backend", "sqlite", *reg], u, ["--route"]),
        ([*cut, "--route", other_route, "--resume", "--abort", *reg], u, ["--resume", "--abort"]),
        ([*cut, "--route", other_route, *reg], u, ["--into-backend"]),
        ([*cut, "--route", other_route, *into[:4], "--registry", missing], c, ["--create"]),
        # dlq
        (["dlq", "list", "--bootstrap", DEAD_BROKER], r, ["--bootstrap", DEAD_BROKER]),
        (["dlq", "show", "12", "--bootstrap", DEAD_BROKER], u, ["POSITION"]),
        (["dlq", "list", "--bootstrap", DEAD_BROKER, "--limit", "0"], u, ["--limit"]),
        (["dlq", "replay", "--bootstrap", DEAD_BROKER, *reg, "--letter", "x"], u, ["--letter"]),
        (["dlq", "replay", "--bootstrap", DEAD_BROKER], u, ["--registry"]),
        (["dlq", "replay", "--bootstrap", DEAD_BROKER, "--registry", missing], c, ["--create"]),
        (["dlq", "replay", "--bootstrap", DEAD_BROKER, "--registry", f"filesystem:{tmp}"],
            c, ["SQLite or PostgreSQL"]),
        (["dlq", "replay", "--bootstrap", DEAD_BROKER, *reg], r, ["--bootstrap", DEAD_BROKER]),
        # audit, tail
        (["audit", "verify", *reg, *scope], u, ["--bootstrap", "--no-audit"]),
        (["audit", "verify", "--registry", missing, *scope, "--no-audit"], c, ["--create"]),
        (["audit", "verify", *reg, "--tenant", "bad id", *scope[2:]], u, ["tenant_id"]),
        (["audit", "verify", *reg, "--tenant", "t_other", *scope[2:], "--no-audit"],
            c, ["t_other"]),
        (["tail", "--bootstrap", DEAD_BROKER, *reg, "--tenant", "bad id", *scope[2:]],
            u, ["tenant_id"]),
        # serve, keys
        (["serve", "--bootstrap", DEAD_BROKER, "--registry", missing], c, ["--create"]),
        (["serve", "--bootstrap", DEAD_BROKER, *reg, "--port", "70000"], u, ["--port"]),
        (["keys", "list", "--registry", missing], c, ["--create"]),
        (["keys", "list", "--registry", f"filesystem:{tmp}"], c, ["SQLite or PostgreSQL"]),
        (["keys", "create", *reg, "--name", "k", "--tenant", "t_acme"], u, ["--project"]),
        (["keys", "create", *reg, "--name", "k", "--admin", *scope], u, ["--admin"]),
        (["keys", "create", *reg, "--name", "k", "--tenant", "BAD ID", *scope[2:]],
            u, ["tenant_id"]),
        (["keys", "revoke", "nosuchkey", *reg], u, ["KEY_ID"]),
        # config, worker, bench, broker, the app itself
        (["config", "show", "nope"], u, ["component"]),
        (["config", "show", "sink"], u, ["BOOTSTRAP_SERVERS"]),
        (["worker"], u, ["BOOTSTRAP_SERVERS"]),
        (["worker", "--bootstrap", DEAD_BROKER, "--registry", missing], c, ["--create"]),
        (["worker", "--bootstrap", DEAD_BROKER, *reg, "--log-format", "xml"], u, ["log_format"]),
        (["bench", "nosuch", "--suite", str(ROOT)], u, ["NAME", "nosuch"]),
        (["broker", "--partitions", "0"], u, ["--partitions"]),
        (["nosuchcmd"], u, ["nosuchcmd"]),
    ]
    # fmt: on


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SPINE_", "PGPASSWORD", "PGUSER")):
            monkeypatch.delenv(name)
    # One attempt at a dead broker, not the 30 s startup retry (tests/kafka/test_startup.py
    # covers the retry).
    monkeypatch.setenv("SPINE_KAFKA_STARTUP_TIMEOUT_S", "0")


def test_every_bad_invocation_ends_in_its_code_and_a_message_naming_the_fix(
    tmp_path: Path, registry: str, clean_env: None
) -> None:
    table = rows(tmp_path, registry)
    assert len(table) >= 40
    commands = {args[0] for args, _, _ in table}
    assert commands >= {
        "routes",
        "replay",
        "verify",
        "cutover",
        "dlq",
        "audit",
        "tail",
        "config",
        "worker",
        "bench",
        "broker",
        "serve",
        "keys",
    }
    failures = []
    for args, code, needles in table:
        got = invoke(args)
        text = got.out + got.err
        problems = []
        if got.code != code:
            problems.append(f"exit {got.code}, want {int(code)}")
        if "Traceback" in text:
            problems.append("traceback")
        problems += [f"no {n!r}" for n in needles if n not in got.err]
        if len(got.err.strip().splitlines()) > 8:
            problems.append("message longer than a short block")
        if problems:
            failures.append(f"spine {' '.join(args)}: {problems}\n{text}")
    assert not failures, "\n\n".join(failures)
    # Nothing was created by the commands pointed at a missing registry.
    assert not (tmp_path / "no").exists()


def test_a_missing_registry_is_created_only_when_asked(tmp_path: Path) -> None:
    location = tmp_path / "new" / "r.db"
    refused = invoke(["routes", "list", "--registry", f"sqlite:{location}"])
    assert refused.code == ExitCode.CONFIGURATION
    assert str(location) in refused.err
    assert "--create" in refused.err
    assert not location.parent.exists()
    created = invoke(["routes", "list", "--registry", f"sqlite:{location}", "--create", "--json"])
    assert created.code == 0, created.err
    assert orjson.loads(created.out) == []
    assert location.exists()
    # Now it exists: no --create needed any more.
    assert invoke(["routes", "list", "--registry", f"sqlite:{location}"]).code == 0


def spine(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env or {**os.environ, "SPINE_KAFKA_STARTUP_TIMEOUT_S": "0"},
    )


def test_the_entry_point_prints_one_line_and_a_traceback_only_with_debug(tmp_path: Path) -> None:
    cfg = orjson.dumps({"path": str(tmp_path / "x.db")}).decode()
    args = ["replay", "--bootstrap", DEAD_BROKER, "--into-backend", "sqlite", "--into-config", cfg]
    args.append("--include-unrouted")
    plain = spine(*args)
    assert plain.returncode == ExitCode.UNREACHABLE
    assert "Traceback" not in plain.stderr + plain.stdout
    assert [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert "--bootstrap" in plain.stderr
    debug = spine("--debug", *args)
    assert debug.returncode == ExitCode.UNREACHABLE
    assert "Traceback" in debug.stderr
    bad_tenant = spine(
        "routes",
        "set",
        "event_spine",
        "BAD",
        "dev",
        "p",
        "saas",
        "--backend",
        "sqlite",
        "--config",
        cfg,
        "--registry",
        f"sqlite:{tmp_path / 'r.db'}",
    )
    assert bad_tenant.returncode == ExitCode.USAGE
    assert "tenant_id" in bad_tenant.stderr
    assert "Traceback" not in bad_tenant.stderr


def test_help_lists_every_exit_code_and_the_operations_page_matches() -> None:
    shown = spine("--help").stdout
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code)}" in shown
        assert meaning.split(":")[0] in shown
    page = (ROOT / "docs" / "operations.md").read_text()
    block = page.split("<!-- generated:exit-codes -->\n")[1].split("<!-- /generated -->")[0]
    assert block.strip() == exit_code_table(markdown=True).strip()
