"""read_dead_letter_page: bounded pages of a two-partition DLQ, newest first and
forward, each letter exactly once across the pages, a reason filter, bad positions."""

from __future__ import annotations

import pytest

from event_spine.dlq import DeadLetterPage, DeadLetterRecord, read_dead_letter_page
from event_spine.errors import InvalidQuery
from event_spine.kafka.clients import make_producer
from event_spine.kafka.settings import as_kafka
from event_spine.pipeline.dead_letters import REASON
from support.pipeline import new_topic

#: (partition, reason) of each letter, in the order (and timestamp order) written.
LETTERS = [(i % 3 % 2, "poison" if i % 4 == 0 else "route_missing") for i in range(35)]


@pytest.fixture
async def dlq(broker) -> str:
    topic = await new_topic(broker.bootstrap_servers, 2)
    producer = make_producer(as_kafka(broker.bootstrap_servers), acks="all")
    await producer.start()
    try:
        for n, (partition, reason) in enumerate(LETTERS):
            await producer.send_and_wait(
                topic,
                f"letter {n}".encode(),
                partition=partition,
                timestamp_ms=1_700_000_000_000 + n,
                headers=[(REASON, reason.encode())],
            )
    finally:
        await producer.stop()
    return topic


def numbers(letters: list[DeadLetterRecord]) -> list[int]:
    return [int((x.value or b"").split()[1]) for x in letters]


async def all_pages(bootstrap: str, topic: str, **kw: object) -> list[DeadLetterPage]:
    pages = [await read_dead_letter_page(bootstrap, topic, **kw)]
    while pages[-1].next_before is not None:
        before = pages[-1].next_before
        pages.append(await read_dead_letter_page(bootstrap, topic, before=before, **kw))
        assert len(pages) < 20
    return pages


async def test_newest_first_pages_hold_every_letter_once(broker, dlq: str) -> None:
    pages = await all_pages(broker.bootstrap_servers, dlq, limit=8)
    assert [len(p.letters) for p in pages] == [8, 8, 8, 8, 3]
    got = [n for p in pages for n in numbers(p.letters)]
    assert got == list(range(34, -1, -1))  # newest first across both partitions


async def test_a_reason_filters_what_each_page_read(broker, dlq: str) -> None:
    pages = await all_pages(broker.bootstrap_servers, dlq, limit=8, reason="poison")
    assert all(len(p.letters) <= 8 for p in pages)
    got = [n for p in pages for n in numbers(p.letters)]
    assert got == [n for n in range(34, -1, -1) if LETTERS[n][1] == "poison"]


async def test_forward_from_a_position_then_to_the_end(broker, dlq: str) -> None:
    ones = [n for n, (partition, _) in enumerate(LETTERS) if partition == 1]
    page = await read_dead_letter_page(broker.bootstrap_servers, dlq, limit=5, start=(1, 2))
    assert numbers(page.letters) == ones[2:7]
    assert [x.offset for x in page.letters] == [2, 3, 4, 5, 6]
    assert page.next_start == (1, 7)
    last = await read_dead_letter_page(
        broker.bootstrap_servers, dlq, limit=100, start=page.next_start
    )
    assert numbers(last.letters) == ones[7:]
    assert last.next_start is None


async def test_positions_of_unknown_partitions_are_refused(broker, dlq: str) -> None:
    with pytest.raises(InvalidQuery) as before:
        await read_dead_letter_page(broker.bootstrap_servers, dlq, before={5: 1})
    assert before.value.field == "before"
    with pytest.raises(InvalidQuery) as start:
        await read_dead_letter_page(broker.bootstrap_servers, dlq, start=(2, 0))
    assert start.value.field == "from"
    with pytest.raises(InvalidQuery) as limit:
        await read_dead_letter_page(broker.bootstrap_servers, dlq, limit=1001)
    assert limit.value.field == "limit"
