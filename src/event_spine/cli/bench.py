"""`spine bench [NAME]`: run the benchmark suite of a source checkout.

The suite lives in ``benchmarks/`` at the repository root (it is not part of the
installed package: it needs the local broker, PostgreSQL and the test emulators),
so this command finds it next to the sources, or where ``--suite`` or
``SPINE_BENCH_SUITE`` says. Results: ``benchmarks/results/<date>-<name>.json``,
then ``summary.png`` (needs matplotlib: the ``bench`` extra) and ``README.md``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Protocol, cast

import typer

ALL = "all"


class _Runner(Protocol):
    BENCHMARKS: dict[str, str]

    def describe(self) -> dict[str, str]: ...

    def run_suite(
        self, names: list[str], *, smoke: bool, repeats: int, out_dir: Path, chart: bool
    ) -> list[dict[str, Any]]: ...


def default_suite_root() -> Path:
    """The checkout holding ``benchmarks/``: SPINE_BENCH_SUITE, else next to ``src/``."""
    configured = os.environ.get("SPINE_BENCH_SUITE")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3]


def load_runner(root: Path) -> _Runner:
    """Import ``benchmarks.runner`` from ``root`` (put first on sys.path)."""
    if not (root / "benchmarks" / "runner.py").is_file():
        raise typer.BadParameter(
            f"No benchmark suite at {root / 'benchmarks'}: `spine bench` runs from a source "
            f"checkout of event-spine; pass `--suite /path/to/checkout` or set SPINE_BENCH_SUITE."
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return cast("_Runner", importlib.import_module("benchmarks.runner"))


def run_bench(
    name: str = typer.Argument(ALL, help="A benchmark name, or `all`."),
    repeats: int | None = typer.Option(
        None, min=1, help="Repeats of each benchmark (default: 3; 1 with --smoke)."
    ),
    smoke: bool = typer.Option(
        False, "--smoke", help="Tiny sizes (CI): checks the code runs, the numbers mean nothing."
    ),
    out: Path | None = typer.Option(
        None, help="Results folder (default: benchmarks/results of the suite)."
    ),
    chart: bool = typer.Option(True, "--chart/--no-chart", help="Redraw summary.png/README.md."),
    suite: Path | None = typer.Option(None, help="Checkout holding benchmarks/ (see above)."),
    list_only: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
) -> None:
    """Run benchmarks (emit, producer, sink, pg_write, scaling, e2e, replay, list_after,
    backends, recovery, api)."""
    root = suite or default_suite_root()
    runner = load_runner(root)
    if list_only:
        for bench_name, text in runner.describe().items():
            typer.echo(f"{bench_name:<11} {text}")
        return
    names = list(runner.BENCHMARKS) if name == ALL else [name]
    unknown = [n for n in names if n not in runner.BENCHMARKS]
    if unknown:
        known = ", ".join([*runner.BENCHMARKS, ALL])
        raise typer.BadParameter(f"`NAME`: unknown benchmark {unknown[0]!r} (known: {known})")
    results = runner.run_suite(
        names,
        smoke=smoke,
        repeats=repeats or (1 if smoke else 3),
        out_dir=out or root / "benchmarks" / "results",
        chart=chart,
    )
    for result in results:
        for comp in result["comparisons"]:
            ratio = "" if comp["ratio"] is None else f"  ratio {comp['ratio']:.2f}"
            goal = ""
            if comp["meets_goal"] is not None:
                goal = f"  goal {comp['goal']}: {'met' if comp['meets_goal'] else 'MISSED'}"
            ours = "n/a" if comp["ours"] is None else f"{comp['ours']:,.2f} {comp['unit']}"
            typer.echo(f"{result['benchmark']:<11} {comp['label']}: {ours}{ratio}{goal}")


app = typer.Typer(help=__doc__)
app.command("bench")(run_bench)

if __name__ == "__main__":
    app()
