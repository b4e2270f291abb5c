"""Every benchmark runs at tiny sizes through `spine bench NAME --smoke`, so none can rot.

No timing thresholds and no goal assertions: the numbers of a smoke run mean
nothing. Checked: the JSON result has its fields, numbers are finite and
non-negative, ratio fields exist, and the report (table, chart) builds from them.
Each benchmark runs in a subprocess: they start brokers, threads and emulators and
set a default producer, none of which may leak into the rest of the test session.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NAMES = [
    "emit",
    "producer",
    "sink",
    "pg_write",
    "scaling",
    "e2e",
    "replay",
    "list_after",
    "backends",
    "recovery",
    "api",
]
EMULATED = {"dynamodb", "firestore", "cosmos"}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-smoke")


def _bench(out_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.bench", *args, "--out", str(out_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


def _result(out_dir: Path, name: str) -> dict[str, Any]:
    files = sorted(out_dir.glob(f"*-{name}.json"))
    assert files, f"no result file for {name} in {out_dir}"
    return json.loads(files[-1].read_text())


def _sane(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def test_list_names_every_benchmark(out_dir: Path) -> None:
    done = _bench(out_dir, "--list")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert listed == NAMES


def test_unknown_name_is_refused(out_dir: Path) -> None:
    done = _bench(out_dir, "nosuch", "--smoke", "--no-chart")
    assert done.returncode != 0
    assert "unknown benchmark" in done.stderr + done.stdout


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_writes_a_sane_result(out_dir: Path, name: str) -> None:
    done = _bench(out_dir, name, "--smoke", "--no-chart")
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = _result(out_dir, name)

    assert result["schema"] == "event-spine-bench/1"
    assert result["benchmark"] == name
    assert result["size"] == "smoke"
    assert result["repeats"] == 1
    assert len(result["commit"]) == 40
    assert isinstance(result["dirty"], bool)
    machine = result["machine"]
    assert machine["cpu_model"]
    assert machine["cores"] >= 1
    assert machine["python"]
    for package in ("aiokafka", "faststream", "msgspec"):
        assert machine["packages"][package]
    assert result["params"]
    assert result["metrics"]
    for metric, stats in result["metrics"].items():
        for key in ("median", "min", "max", "spread_pct"):
            assert _sane(stats[key]), f"{metric}.{key} = {stats[key]!r}"
        assert all(_sane(v) for v in stats["runs"]), metric

    if name == "api":  # the server's memory is part of the figures (issue 16)
        for metric in ("server_peak_sse_1_mib", "server_peak_sse_many_mib"):
            assert result["metrics"][metric]["median"] > 0, metric
        assert result["info"]["server_peak_mib"] > 0
        assert len(result["info"]["load_avg_at_end"]) == 3

    skipped = result["info"].get("skipped", {})
    assert result["comparisons"]
    for comp in result["comparisons"]:
        for key in ("label", "ours", "baseline", "ratio", "ratio_runs", "goal", "meets_goal"):
            assert key in comp, f"{comp.get('label')}: no {key!r}"
        backend = comp["ours_metric"].split("_")[0]
        if comp["ours"] is None:
            # Only an emulator (or PostgreSQL where it does not run) may be missing,
            # and then the result says why.
            assert backend in EMULATED | {"postgres"}, comp["label"]
            assert backend in skipped, f"{comp['label']} missing without a reason"
            continue
        assert _sane(comp["ours"]), comp
        if comp["baseline_metric"] is not None:
            assert _sane(comp["baseline"]), comp
            assert _sane(comp["ratio"]), comp
        else:
            assert comp["ratio"] is None


def test_report_builds_from_the_results(out_dir: Path) -> None:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.report import write_summary  # noqa: PLC0415
    finally:
        sys.path.remove(str(REPO))
    written = write_summary(out_dir)
    readme = (out_dir / "README.md").read_text()
    assert "| benchmark | figure |" in readme
    if importlib.util.find_spec("matplotlib") is None:
        assert written["chart"] is None
    elif list(out_dir.glob("*.json")):
        assert written["chart"] is not None
        assert (out_dir / "summary.png").stat().st_size > 0


def test_broker_fetch_smoke_reads_every_record(tmp_path: Path) -> None:
    """`python -m benchmarks.broker_fetch --smoke`: each cell's records are all read back,
    and the round-trip cells timed every event after the warm-up."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.broker_fetch", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (path,) = tmp_path.glob("*-broker-fetch.json")
    result = json.loads(path.read_text())
    assert result["commit"]
    assert isinstance(result["dirty"], bool)
    for cell in result["cells"]:
        assert cell["complete"], cell
        assert (
            cell["records_read"] == cell["records"] == cell["batches"] * cell["records_per_batch"]
        )
    (round_trip,) = result["round_trip"]
    assert round_trip["events"] == round(0.3 * round_trip["rate_per_s"])
    assert 0 < round_trip["p50_ms"] <= round_trip["p99_ms"] <= round_trip["max_ms"]


def test_sqlite_statements_every_shape_writes_every_row(tmp_path: Path) -> None:
    """`benchmarks.sqlite_statements`: each shape stores every row (and, where it keeps
    watermarks, each stream's last position), so its per-row costs compare like work."""
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import sqlite_statements as probe  # noqa: PLC0415
    finally:
        sys.path.remove(str(REPO))
    rows = probe._rows(4_100)  # two full batches and a short one
    for shape in probe.SHAPES:
        path = tmp_path / f"{shape}.db"
        assert probe.us_per_row(path, shape, rows) > 0
        db = sqlite3.connect(path)
        events, cursors = (
            ("raw_events", "raw_cursors")
            if shape == "executemany"
            else ("spine_events", "spine_cursors")
        )
        assert db.execute(f"SELECT count(*) FROM {events}").fetchone()[0] == len(rows)
        marks = dict(db.execute(f"SELECT stream_id, position FROM {cursors}").fetchall())
        if shape == "no_trigger":
            assert marks == {}
        else:
            assert marks == {f"orders/o_{s:03d}": (len(rows) - 1 - s) // 8 for s in range(8)}
        db.close()
