"""What one SQLite batch write costs per row, by statement shape, alone and beside a busy thread.

``python -m benchmarks.sqlite_statements [--rows N] [--busy]``

Why: the sink overlaps decoding (event-loop thread) with the store's write (its
database thread), so the write runs while another Python thread wants the GIL, and
each statement hands the GIL back and must take it again. This times the shapes a
batch of 2,000 events can be written in, on a fresh WAL file with synchronous=FULL,
the same rows for each (about 420-byte bodies, 8 streams):

- ``store``: the store's own write (one multi-row ``INSERT ... ON CONFLICT DO
  NOTHING``, autocommit; a trigger moves each stream's watermark per inserted row);
- ``no_trigger``: the same statement on the same tables without the trigger (no
  watermark: the lower bound of what the trigger costs);
- ``transaction``: ``BEGIN IMMEDIATE``, the multi-row insert without the trigger, one
  multi-row watermark upsert, ``COMMIT`` (the trigger's alternative);
- ``executemany``: the hand loop's ``BEGIN IMMEDIATE`` + ``executemany`` + watermark
  ``executemany`` + ``COMMIT`` on its own tables (``rawloops``).

``--busy`` runs a Python thread that never blocks beside it (the worst case of the
sink's event loop). Prints µs per row for each shape, twice, interleaved. Not a
result file: a probe behind ``benchmarks/results/PROFILE.md``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import rawloops
from event_spine.backends.sqlite import events
from event_spine.backends.sqlite.database import insert_rows
from event_spine.schemas.ids import new_event_id

Row = tuple[object, ...]
BATCH = 2000


def _rows(count: int) -> list[Row]:
    body = b"x" * 420
    scope = ("t_bench", "dev", "lab", "p_bench")
    ts = "2026-12-03T10:00:00+00:00"
    return [
        (new_event_id(), *scope, f"orders/o_{i % 8:03d}", i // 8, "order.created", ts, body)
        for i in range(count)
    ]


def _marks(chunk: list[Row]) -> list[Row]:
    last: dict[Row, Row] = {row[1:6]: (row[6], row[0]) for row in chunk}
    return [(*key, *mark) for key, mark in last.items()]


def _open(path: Path, schema: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(schema)
    return db


def _autocommit(db: sqlite3.Connection, chunk: list[Row]) -> None:
    insert_rows(db, events._INSERT_EVENTS, chunk)


def _transaction(db: sqlite3.Connection, chunk: list[Row]) -> None:
    db.execute("BEGIN IMMEDIATE")
    insert_rows(db, events._INSERT_EVENTS, chunk)
    insert_rows(db, events._ADVANCE_CURSORS, _marks(chunk))
    db.execute("COMMIT")


def _executemany(db: sqlite3.Connection, chunk: list[Row]) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany(rawloops._SQLITE_INSERT, chunk)
    db.executemany(rawloops._SQLITE_ADVANCE, _marks(chunk))
    db.execute("COMMIT")


SHAPES: dict[str, tuple[str, Callable[[sqlite3.Connection, list[Row]], None]]] = {
    "store": (events._SCHEMA + events._ADVANCE_TRIGGER, _autocommit),
    "no_trigger": (events._SCHEMA, _autocommit),
    "transaction": (events._SCHEMA, _transaction),
    "executemany": (rawloops._SQLITE_DDL, _executemany),
}


def us_per_row(path: Path, shape: str, rows: list[Row]) -> float:
    """Write ``rows`` in batches of 2,000 into a fresh file; µs per row."""
    schema, write = SHAPES[shape]
    db = _open(path, schema)
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            write(db, list(rows[start : start + BATCH]))
        return (time.perf_counter() - started) / len(rows) * 1e6
    finally:
        db.close()


def main() -> None:
    """Each shape twice, interleaved, optionally beside a busy thread."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--busy", action="store_true", help="a spinning thread beside")
    args = parser.parse_args()
    rows = _rows(args.rows)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    if args.busy:
        threading.Thread(target=spin, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(2):
                for shape in SHAPES:
                    cost = us_per_row(Path(tmp) / f"{shape}-{round_}.db", shape, rows)
                    print(f"{shape:12s} {cost:8.2f} us/row", flush=True)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
