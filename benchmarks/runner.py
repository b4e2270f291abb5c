"""Run benchmarks by name, write their JSON results, then the chart and the table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, log, machine_info, summarize, write_result

#: Name -> module; the order is the suite's order.
BENCHMARKS: dict[str, str] = {
    "emit": "benchmarks.emit",
    "producer": "benchmarks.producer",
    "sink": "benchmarks.sink",
    "pg_write": "benchmarks.pg_write",
    "scaling": "benchmarks.scaling",
    "e2e": "benchmarks.e2e",
    "replay": "benchmarks.replay",
    "list_after": "benchmarks.list_after",
    "backends": "benchmarks.backends",
    "recovery": "benchmarks.recovery",
    "api": "benchmarks.api",
}


def describe() -> dict[str, str]:
    """Name -> one-line description of every benchmark."""
    return {name: importlib.import_module(mod).DESCRIPTION for name, mod in BENCHMARKS.items()}


def quiet_logs() -> None:
    """The console shows one progress line per step: faststream logs every assignment
    (and a warning per subscriber start), aiokafka an error per failed connection
    attempt (the emit benchmark stops the broker on purpose). Failures still surface
    as exceptions and in the result files."""
    logging.getLogger("faststream").setLevel(logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def run_benchmark(
    name: str, *, smoke: bool, repeats: int, out_dir: Path, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one benchmark, write ``<out_dir>/<date>-<name>.json``, return the document."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    module = importlib.import_module(BENCHMARKS[name])
    quiet_logs()
    params = module.params(smoke) | (overrides or {})
    started_at = dt.datetime.now(dt.UTC)
    machine = machine_info()  # load average and git commit before the run, not after
    began = time.perf_counter()
    log(f"{name}: {params}")
    with tempfile.TemporaryDirectory(prefix=f"spine-bench-{name}-") as tmp:
        measured = module.run(params, repeats, Path(tmp))
    result = summarize(
        module,
        params,
        measured,
        smoke=smoke,
        started_at=started_at,
        duration_s=time.perf_counter() - began,
        machine=machine,
    )
    path = write_result(result, out_dir)
    log(f"{name}: wrote {path}")
    return result


def run_suite(
    names: list[str],
    *,
    smoke: bool = False,
    repeats: int = 3,
    out_dir: Path = RESULTS_DIR,
    chart: bool = True,
) -> list[dict[str, Any]]:
    """Run benchmarks in order; then redraw summary.png and README.md from the newest files."""
    results = [run_benchmark(name, smoke=smoke, repeats=repeats, out_dir=out_dir) for name in names]
    if chart:
        from benchmarks.report import write_summary  # noqa: PLC0415 - matplotlib is optional

        write_summary(out_dir)
    return results


def rescore(path: Path) -> dict[str, Any]:
    """Recompute a result file's comparisons with the current COMPARISONS (goals, labels).

    The per-repeat figures are kept in every metric's ``runs``, so a changed goal
    needs no re-run.
    """
    import orjson  # noqa: PLC0415

    from benchmarks.common import compare  # noqa: PLC0415

    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    module = importlib.import_module(BENCHMARKS[doc["benchmark"]])
    runs: list[dict[str, float]] = [{} for _ in range(doc["repeats"])]
    for name, stats in doc["metrics"].items():
        if len(stats["runs"]) == len(runs):  # metrics measured once are not paired
            for k, value in enumerate(stats["runs"]):
                runs[k][name] = value
    doc["comparisons"] = [compare(c, runs) for c in module.COMPARISONS]
    doc["comparison_specs"] = [dataclasses.asdict(c) for c in module.COMPARISONS]
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return doc
