"""summary.png (each figure beside its baseline, goals marked) and README.md (the table).

Both are rebuilt from the newest full-size result file of each benchmark in the
results folder (smoke results are used only where no full-size one exists, and
say so). matplotlib is optional (``pip install matplotlib``): without it only the
table is written.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import SCHEMA
from benchmarks.runner import BENCHMARKS

_NONE = "-"
_PASS = "yes"
_FAIL = "NO"


def newest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The newest result per benchmark, full-size preferred over smoke."""
    best: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("*.json")):
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError):
            doc = orjson.loads(path.read_bytes())
            if doc.get("schema") != SCHEMA:
                continue
            doc["_file"] = path.name
            old = best.get(doc["benchmark"])
            rank = (doc["size"] == "full", doc["started_at"])
            if old is None or rank >= (old["size"] == "full", old["started_at"]):
                best[doc["benchmark"]] = doc
    order = list(BENCHMARKS)
    return dict(sorted(best.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return _NONE
    if unit == "events/s" or abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _verdict(met: bool | None) -> str:
    return _NONE if met is None else (_PASS if met else _FAIL)


def rows(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per comparison that has a measured figure."""
    out = []
    for name, doc in docs.items():
        for comp in doc["comparisons"]:
            if comp["ours"] is None:
                continue
            ours_stats = doc["metrics"].get(comp["ours_metric"], {})
            out.append(
                {
                    "benchmark": name,
                    "size": doc["size"],
                    "comp": comp,
                    "spread": ours_stats.get("spread_pct"),
                    "ours_min": ours_stats.get("min"),
                    "ours_max": ours_stats.get("max"),
                    "base_stats": doc["metrics"].get(comp["baseline_metric"] or "", {}),
                }
            )
    return out


def table(docs: dict[str, dict[str, Any]]) -> str:
    """The markdown table of every figure beside its baseline."""
    lines = [
        "| benchmark | figure | ours (median; spread) | baseline (median) | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows(docs):
        c = row["comp"]
        unit = c["unit"]
        ours = f"{_fmt(c['ours'], unit)} ({row['spread']:.0f}%)"
        base = _NONE
        if c["baseline"] is not None:
            base = f"{_fmt(c['baseline'], unit)} ({c['baseline_label']})"
        ratio = _NONE if c["ratio"] is None else f"{c['ratio']:.2f}"
        size = "" if row["size"] == "full" else " (smoke)"
        lines.append(
            f"| {row['benchmark']}{size} | {c['label']} | {ours} | {base} | {ratio} | "
            f"{c['goal'] or _NONE} | {_verdict(c['meets_goal'])} |"
        )
    return "\n".join(lines)


def machine_text(docs: dict[str, dict[str, Any]]) -> str:
    """The machine of the newest result."""
    if not docs:
        return "(no results yet)"
    doc = max(docs.values(), key=lambda d: d["started_at"])
    m = doc["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return (
        f"{m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"load {m.get('load_avg_at_start', '?')} at start, "
        f"{m['mem_total_gib']} GiB, {m['os']}, Python {m['python']}, SQLite {m['sqlite']}; "
        f"{packages}. Broker: {m['broker']}."
    )


def write_readme(docs: dict[str, dict[str, Any]], out_dir: Path) -> Path:
    """README.md: how to run, the machine, the table, per-benchmark notes."""
    notes = []
    for name, doc in docs.items():
        facts = "; ".join(
            f"{k}: {_fmt(v) if isinstance(v, float) else v}"
            for k, v in doc["info"].items()
            if isinstance(v, str | int | float)
        )
        skipped = doc["info"].get("skipped")
        if skipped:
            facts += "; skipped: " + "; ".join(f"{k} ({v[:120]})" for k, v in skipped.items())
        commit = doc.get("commit") or doc["machine"].get("git_commit")
        where = "commit not recorded" if not commit else f"commit {commit[:10]}"
        dirty = {True: ", dirty tree", False: "", None: ""}[doc.get("dirty")]
        notes.append(
            f"- **{name}** ({doc['_file']}, {where}{dirty}, "
            f"{doc['repeats']} repeats, {doc['duration_s']} s): "
            f"{doc['description']}. {facts}"
        )
    text = f"""# Benchmark results

Generated by `spine bench` from the newest result file of each benchmark in this folder
(`<date>-<name>.json`, which hold every repeat, the parameters and the machine).
Medians of the repeats; spread = (max - min) / median. Each repeat runs our path and
its baseline interleaved (same broker, same data, alternating order), and ratios are
the median of the per-repeat paired ratios, oriented so that **above 1 means ours is
better** (ours/baseline for throughput, baseline/ours for latency). The machine is
shared and noisy: read the spread before reading a ratio.

Machine: {machine_text(docs)}

![summary](summary.png)

{table(docs)}

## Notes per benchmark

{chr(10).join(notes)}

Profiles of the hot paths and ranked suggestions: [PROFILE.md](PROFILE.md).

Run: `spine bench [NAME] [--repeats 3] [--smoke]` (NAME: one of the benchmarks above,
or all). Smoke sizes are for CI (`tests/benchmarks/test_bench_smoke.py`), never for
numbers.
"""
    path = out_dir / "README.md"
    path.write_text(text)
    return path


def write_chart(docs: dict[str, dict[str, Any]], out_dir: Path) -> Path | None:
    """summary.png: one panel per figure, ours beside its baseline, goal lines dashed."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional dependency

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    panels = rows(docs)
    if not panels:
        return None
    cols = 4
    lines = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4.2 * cols, 3.4 * lines), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, row in zip(axes.flat, panels, strict=False):
        _panel(ax, row)
    fig.suptitle("event-spine benchmarks: ours beside its baseline (median, min-max bars)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = out_dir / "summary.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _panel(ax: Any, row: dict[str, Any]) -> None:
    c = row["comp"]
    labels = [c["ours_label"]]
    values = [c["ours"]]
    lows = [c["ours"] - (row["ours_min"] if row["ours_min"] is not None else c["ours"])]
    highs = [(row["ours_max"] if row["ours_max"] is not None else c["ours"]) - c["ours"]]
    colors = ["tab:blue"]
    if c["baseline"] is not None:
        b = row["base_stats"]
        labels.append(c["baseline_label"])
        values.append(c["baseline"])
        lows.append(c["baseline"] - b.get("min", c["baseline"]))
        highs.append(b.get("max", c["baseline"]) - c["baseline"])
        colors.append("tab:gray")
    short = [label if len(label) <= 22 else label[:20] + "…" for label in labels]
    ax.bar(short, values, color=colors, yerr=[lows, highs], capsize=4)
    goal = None
    if c["goal_kind"] in {"max", "min"}:
        goal = c["goal_value"]
    elif c["goal_kind"] == "ratio_min" and c["baseline"] is not None:
        goal = c["goal_value"] * c["baseline"]
    if goal is not None:
        color = "tab:green" if c["meets_goal"] else "tab:red"
        ax.axhline(goal, linestyle="--", color=color, linewidth=1.5, label=f"goal: {c['goal']}")
        ax.legend(fontsize=7, loc="upper right")
    ratio = "" if c["ratio"] is None else f"ratio {c['ratio']:.2f}  "
    verdict = {True: "goal met", False: "goal MISSED", None: ""}[c["meets_goal"]]
    size = "" if row["size"] == "full" else " [smoke]"
    ax.set_title(f"{c['label']}{size}\n{ratio}{verdict}", fontsize=8)
    ax.set_ylabel(c["unit"], fontsize=8)
    ax.tick_params(axis="both", labelsize=7)


def write_summary(out_dir: Path) -> dict[str, Path | None]:
    """Rebuild summary.png and README.md from the result files in ``out_dir``."""
    docs = newest(out_dir)
    return {"chart": write_chart(docs, out_dir), "readme": write_readme(docs, out_dir)}
