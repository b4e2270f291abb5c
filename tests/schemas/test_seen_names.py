"""decode_record's name checks: a memo of names seen valid, never of names refused."""

from __future__ import annotations

import orjson
import pytest

from event_spine.errors import EventValidationError
from event_spine.schemas import decode_record
from event_spine.schemas.formats import STREAM_ID_PATTERN
from event_spine.schemas.wire import _SeenNames
from support.events import WIRE_DOC as DOC


def with_value(path: tuple[str, ...], value: str) -> bytes:
    doc = orjson.loads(orjson.dumps(DOC))
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("event_id",), "event_id"),
        (("event_type",), "event_type"),
        (("stream_id",), "stream_id"),
        (("routing", "tenant_id"), "routing.tenant_id"),
        (("routing", "project_id"), "routing.project_id"),
    ],
)
def test_a_bad_name_is_refused_every_time_even_after_good_ones(
    path: tuple[str, ...], field: str
) -> None:
    decode_record(orjson.dumps(DOC))  # every good name of DOC is now remembered
    for _ in range(2):  # a refused name is never remembered
        with pytest.raises(EventValidationError) as raised:
            decode_record(with_value(path, "Bad Name\n"))
        assert raised.value.field == field
    assert decode_record(orjson.dumps(DOC)).stream_id == "orders/o_1"


def test_the_memo_is_bounded_and_keeps_checking_after_it_empties() -> None:
    names = _SeenNames("stream_id", STREAM_ID_PATTERN, limit=3)
    for i in range(10):
        names.check(f"s{i}")
        assert len(names.seen) <= 3
    with pytest.raises(EventValidationError, match="stream_id"):
        names.check("/starts-with-a-slash")
    assert "/starts-with-a-slash" not in names.seen
