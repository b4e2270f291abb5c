"""The local broker's fetch as its partition grows: records/s by batch count and fetch wait.

``python -m benchmarks.broker_fetch [--smoke] [--out DIR]``

Why: Tansu's memory engine lists a partition's every batch on each fetch, and a fetch
that runs out of its ``max_wait`` comes back empty (docs/operations.md, "The local
broker (Tansu) versus real Kafka"). This measures what a consumer gets: one partition
is filled with ``batches`` record batches of ``per_batch`` records (350 B each, sent
with aiokafka's ``send_batch``, so each batch stays one object), then one consumer
reads it from offset 0 with ``fetch_max_wait_ms`` = ``wait_ms`` until it has every
record or ``cap_s`` passed. Cells: records/s and the records read within the cap.
Not a comparison with a baseline: a fact about the local broker, for the docs.

Then its latency floor (``round_trip``): hand aiokafka clients and nothing else
(``rawloops.raw_round_trip``), a producer ``send()``ing 1k events/s with
``linger_ms`` = L while a consumer reads with ``fetch_max_wait_ms`` = W, over a grid
of (L, W); each cell: p50/p90/p99/max of send -> received, after a 1 s warm-up, on
a fresh 6-partition topic. What no client of this broker can go below at that rate
(``spine bench e2e`` measures its own profiles' pair beside the pipeline).

Writes ``<date>-broker-fetch.json`` (commit, dirty flag, machine) into
``benchmarks/results/broker-fetch/`` (or ``--out``) and prints one line per cell.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.common import RESULTS_DIR, log, machine_info, percentile
from benchmarks.rawloops import raw_round_trip
from event_spine.broker.tansu import TansuBroker
from event_spine.producers.topics import ensure_topic

#: (batches, records per batch, fetch wait ms); the smoke run's are tiny.
CELLS: list[tuple[int, int, int]] = [
    (10_000, 1, 5),
    (10_000, 1, 20),
    (10_000, 1, 100),
    (2_000, 10, 5),
    (60_000, 1, 20),
    (60_000, 1, 100),
]
SMOKE_CELLS: list[tuple[int, int, int]] = [(200, 1, 20), (20, 10, 5)]
#: (producer linger ms, consumer fetch wait ms): both profiles' pairs, then around them.
ROUND_TRIP_CELLS: list[tuple[int, int]] = [
    (0, 25),
    (5, 100),
    (0, 100),
    (5, 25),
    (10, 25),
    (20, 25),
    (5, 50),
    (5, 10),
]
SMOKE_ROUND_TRIP_CELLS: list[tuple[int, int]] = [(5, 25)]
ROUND_TRIP_RATE_PER_S = 1000
VALUE = b"x" * 350


async def _fill(bootstrap: str, topic: str, batches: int, per_batch: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        pending = []
        for _ in range(batches):
            batch = producer.create_batch()
            for _ in range(per_batch):
                batch.append(key=None, value=VALUE, timestamp=None)
            pending.append(await producer.send_batch(batch, topic, partition=0))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _drain(
    bootstrap: str, topic: str, total: int, wait_ms: int, cap_s: float
) -> tuple[int, float]:
    """(records read, seconds) from offset 0 until ``total`` were read or ``cap_s``
    passed (no group: nothing to join)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=wait_ms,
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        started = time.monotonic()
        deadline = started + cap_s
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        read = 0
        while read < total and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500, max_records=2000)
            read += sum(len(records) for records in fetched.values())
        return read, time.monotonic() - started
    finally:
        await consumer.stop()


async def _cell(
    bootstrap: str, batches: int, per_batch: int, wait_ms: int, cap_s: float
) -> dict[str, Any]:
    topic = f"fetch-{uuid.uuid4().hex[:10]}"
    await ensure_topic(bootstrap, topic, 1)
    await _fill(bootstrap, topic, batches, per_batch)
    total = batches * per_batch
    read, elapsed = await _drain(bootstrap, topic, total, wait_ms, cap_s)
    return {
        "batches": batches,
        "records_per_batch": per_batch,
        "fetch_max_wait_ms": wait_ms,
        "records": total,
        "records_read": float(read),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(read / elapsed, 1),
        "complete": read >= total,
    }


async def _round_trip_cell(
    bootstrap: str, linger_ms: int, wait_ms: int, duration_s: float
) -> dict[str, Any]:
    rate = ROUND_TRIP_RATE_PER_S
    values = await raw_round_trip(
        bootstrap, rate, duration_s, 1.0, linger_ms=linger_ms, fetch_max_wait_ms=wait_ms
    )
    return {
        "linger_ms": linger_ms,
        "fetch_max_wait_ms": wait_ms,
        "rate_per_s": rate,
        "events": len(values),
        **{f"p{q}_ms": round(percentile(values, q), 1) for q in (50, 90, 99)},
        "max_ms": round(values[-1], 1),
    }


def run(smoke: bool, cap_s: float) -> dict[str, Any]:
    """Every cell on one broker, each on its own topic."""
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    machine = machine_info()
    cells = []
    with TansuBroker() as broker:
        for batches, per_batch, wait_ms in SMOKE_CELLS if smoke else CELLS:
            cell = asyncio.run(_cell(broker.bootstrap_servers, batches, per_batch, wait_ms, cap_s))
            log(
                f"broker-fetch: {batches} batches of {per_batch}, wait {wait_ms} ms: "
                f"{cell['records_per_s']:,.0f} records/s, {cell['records_read']:,.0f} of "
                f"{cell['records']:,} read in {cell['elapsed_s']} s"
            )
            cells.append(cell)
        round_trip = []
        for linger_ms, wait_ms in SMOKE_ROUND_TRIP_CELLS if smoke else ROUND_TRIP_CELLS:
            cell = asyncio.run(
                _round_trip_cell(broker.bootstrap_servers, linger_ms, wait_ms, 0.3 if smoke else 20)
            )
            log(
                f"broker-fetch: round trip at linger {linger_ms} ms, wait {wait_ms} ms: "
                f"p50 {cell['p50_ms']} ms, p99 {cell['p99_ms']} ms ({cell['events']} events)"
            )
            round_trip.append(cell)
    return {
        "benchmark": "broker-fetch",
        "started_at": started_at,
        "size": "smoke" if smoke else "full",
        "commit": machine["git_commit"],
        "dirty": machine["git_dirty"],
        "cap_s": cap_s,
        "machine": machine,
        "cells": cells,
        "round_trip": round_trip,
    }


def main() -> None:
    """Run the cells, write the result file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny cells (checks it runs)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "broker-fetch")
    parser.add_argument("--cap-s", type=float, default=30.0, help="longest read per cell")
    args = parser.parse_args()
    result = run(args.smoke, args.cap_s)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['started_at'][:10]}-broker-fetch.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    log(f"broker-fetch: wrote {path}")


if __name__ == "__main__":
    main()
