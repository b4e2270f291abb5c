"""Event ids and timestamps from schemas.ids: UUID v7 text and msgspec's time text."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from event_spine.schemas import ids
from event_spine.schemas.formats import EVENT_ID_RE

# Instants (µs since the epoch) at the edges of the per-millisecond and per-second texts.
INSTANTS_US = [
    0,
    1,
    999,
    1_000,
    1_001,
    999_999,
    1_000_000,
    1_764_747_648_000_000,  # a whole second: msgspec writes no fraction
    1_764_747_648_000_001,
    1_764_747_648_120_000,
    1_764_747_648_123_456,
    1_764_747_648_999_999,
    253_402_300_799_999_999,  # 9999-12-31T23:59:59.999999Z
]


@pytest.mark.parametrize("us", INSTANTS_US)
def test_stamp_writes_msgspecs_text_of_the_same_instant(monkeypatch, us: int) -> None:
    monkeypatch.setattr(ids, "_clock_ns", lambda: us * 1000 + 999)
    event_id, ts = ids.stamp()
    instant = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    assert f'"{ts}"'.encode() == msgspec.json.encode(instant)
    parsed = uuid.UUID(event_id)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.int >> 80 == (us // 1000) & ((1 << 48) - 1)  # the id's millisecond
    assert EVENT_ID_RE.fullmatch(event_id)


def test_ids_are_unique_time_ordered_v7() -> None:
    made = [ids.new_event_id() for _ in range(50_000)] + [ids.stamp()[0] for _ in range(50_000)]
    assert len(set(made)) == len(made)
    parsed = [uuid.UUID(i) for i in made]
    assert all((u.version, u.variant) == (7, uuid.RFC_4122) for u in parsed)
    assert all(str(u) == i for u, i in zip(parsed, made, strict=True))  # canonical text
    millis = [u.int >> 80 for u in parsed]
    assert millis[:50_000] == sorted(millis[:50_000])


def test_a_going_back_clock_still_gives_new_ids(monkeypatch) -> None:
    now = 1_764_747_648_123_456_789
    clock = iter([now, now - 5_000_000, now, now - 5_000_000])
    monkeypatch.setattr(ids, "_clock_ns", lambda: next(clock))
    made = [ids.stamp() for _ in range(4)]
    assert len({event_id for event_id, _ in made}) == 4
    assert made[0][1] == made[2][1] == "2025-12-03T07:40:48.123456Z"
    assert made[1][1] == "2025-12-03T07:40:48.118456Z"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids.new_event_id()  # the parent's millisecond and generator state, as the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, "\n".join(ids.new_event_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    parent = {ids.new_event_id() for _ in range(100)}
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child) == 100
    assert not parent & child
