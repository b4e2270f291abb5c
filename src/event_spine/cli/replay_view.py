"""What `spine replay`, `spine verify` and `spine cutover` print: progress and reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from event_spine.replay.cutover import CutoverReport
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.verify import VerifyReport

console = Console()


class ReplayProgressView:
    """A rich progress bar: all partitions, then one line per partition."""

    def __init__(self, progress: Progress) -> None:
        self.bar = progress
        self._replay: ReplayProgress | None = None
        self._total = TaskID(0)
        self._parts: dict[int, TaskID] = {}

    def __call__(self, p: ReplayProgress) -> None:
        rate = f"{p.events_per_s:,.0f} ev/s"
        stats = (
            f"written {p.written} dup {p.duplicates} filtered {p.filtered} "
            f"skipped {p.skipped_total}"
        )
        if p is not self._replay:  # a new run (a cutover makes two): new lines
            self._replay = p
            self._total = self.bar.add_task(p.name, total=p.total, rate=rate, stats=stats)
            self._parts = {
                n: self.bar.add_task(f"  partition {n}", total=None, rate="", stats="")
                for n in sorted(p.partitions)
            }
        self.bar.update(self._total, total=p.total, completed=p.completed, rate=rate, stats=stats)
        for n, part in p.partitions.items():
            self.bar.update(
                self._parts[n],
                total=part.end - part.start,
                completed=part.position - part.start,
                stats=f"at {part.position} of {part.end}",
            )


@contextmanager
def progress_bar() -> Iterator[ReplayProgressView]:
    """The replay progress display."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        yield ReplayProgressView(bar)


def print_report(report: VerifyReport, *, allow_extra_in_target: bool = False) -> None:
    """Differences stream by stream, then a verdict line saying whether that is fine."""
    for line in report.lines():
        console.print(line, markup=False, highlight=False)
    fine = report.consistent(allow_extra_in_target=allow_extra_in_target)
    colour = "green" if fine else "red"
    console.print(
        f"{len(report.streams)} stream(s) of {report.scope.describe()}: source "
        f"{report.total('source')} events, target {report.total('target')}: "
        f"[{colour}]{report.verdict(allow_extra_in_target=allow_extra_in_target)}[/{colour}]"
    )


def print_cutover(report: CutoverReport) -> None:
    """The verify reports that are not identical, then the outcome."""
    if report.verify is not None and not report.verify.identical:
        print_report(report.verify)
    if report.final_verify is not None and not report.final_verify.identical:
        print_report(report.final_verify, allow_extra_in_target=True)
    if not report.ok:
        console.print(f"[red]cutover failed:[/red] {report.failed}")
    elif report.settled:
        console.print(f"[green]nothing to do[/green]: {report.steps[-1][1]}")
    else:
        assert report.switched is not None
        console.print(
            f"[green]cutover done[/green]: readers and writers on "
            f"{report.switched.backend_type.value} {report.switched.config}"
        )
