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

from benchmarks.common import RESULTS_DIR, log, machine_info
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


def run(smoke: bool, cap_s: float) -> dict[str, Any]:
    """Every cell on one broker, each on its own one-partition topic."""
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
    return {
        "benchmark": "broker-fetch",
        "started_at": started_at,
        "size": "smoke" if smoke else "full",
        "commit": machine["git_commit"],
        "dirty": machine["git_dirty"],
        "cap_s": cap_s,
        "machine": machine,
        "cells": cells,
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
