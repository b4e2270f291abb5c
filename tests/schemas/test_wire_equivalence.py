"""The msgspec wire codec and the pydantic model accept and reject the same documents."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_spine.errors import EventRejected, EventValidationError
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.schemas import StreamEvent, decode_record, encode_record, event_from_record
from support.events import WIRE_DOC
from support.pipeline import ctx
from support.strategies import json_values

VALID = WIRE_DOC

candidate_values = (
    st.sampled_from(
        [
            "",
            "t_acme",
            "t_",
            "T_acme",
            "p_x",
            "p_",
            "dev",
            "prod",
            "qa",
            "lab",
            "saas",
            "system",
            "beta",
            "orders/o_1",
            "has space",
            "9bad",
            "a.b",
            "01a2139c-3f25-78db-8d5e-d839e4ff5d5c",
            "01A2139C-3F25-78DB-8D5E-D839E4FF5D5C",
            "2026-11-25T16:45:10Z",
            "2026-11-25T16:45:10",
            "2026-11-25T16:45:10+02:00",
            "2026-11-25",
            "x" * 300,
            "t_acme\n",
            "p_x\n",
            "orders/o_1\n",
            "01a2139c-3f25-78db-8d5e-d839e4ff5d5c\n",
        ]
    )
    | json_values
)
paths = st.sampled_from(
    [
        ("schema_version",),
        ("event_id",),
        ("ts",),
        ("event_type",),
        ("stream_id",),
        ("routing",),
        ("routing", "tenant_id"),
        ("routing", "env"),
        ("routing", "mode"),
        ("routing", "project_id"),
        ("metadata",),
        ("metadata", "request_id"),
        ("metadata", "user_id"),
        ("payload",),
        ("extra_field",),
        ("routing", "extra"),
    ]
)


def mutate(doc: dict[str, Any], path: tuple[str, ...], value: Any, delete: bool) -> dict[str, Any]:
    out = orjson.loads(orjson.dumps(doc))
    target = out
    for part in path[:-1]:
        if not isinstance(target.get(part), dict):
            return out
        target = target[part]
    if delete:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return out


def accepts_pydantic(data: bytes) -> bool:
    try:
        StreamEvent.from_wire(data)
    except ValueError:
        return False
    return True


def accepts_wire(data: bytes) -> bool:
    try:
        decode_record(data)
    except EventRejected:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(paths, candidate_values, st.booleans()), min_size=0, max_size=3))
def test_same_verdict_on_mutated_documents(mutations) -> None:
    doc = VALID
    for path, value, delete in mutations:
        doc = mutate(doc, path, value, delete)
    data = orjson.dumps(doc)
    assert accepts_pydantic(data) == accepts_wire(data), doc


@settings(max_examples=200, deadline=None)
@given(json_values.filter(lambda v: isinstance(v, dict)), st.text(max_size=20))
def test_emitted_bytes_decode_identically_in_both(payload, text) -> None:
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False)
    producer.emit_event(ctx(), "x.y", "s", {"p": payload, "t": text})
    ((_, value, _),) = producer._buffer.drain(1)
    record = decode_record(value)
    event = StreamEvent.model_validate_json(value)
    assert event_from_record(record) == event
    assert orjson.loads(encode_record(record)) == orjson.loads(value)


NEWLINE_ENDED = [
    (("event_id",), "01a2139c-3f25-78db-8d5e-d839e4ff5d5c\n"),
    (("event_type",), "order.created\n"),
    (("stream_id",), "orders/o_1\n"),
    (("routing", "tenant_id"), "t_acme\n"),
    (("routing", "project_id"), "p_x\n"),
]


@pytest.mark.parametrize(("path", "value"), NEWLINE_ENDED)
def test_a_final_newline_is_refused_by_both(path: tuple[str, ...], value: str) -> None:
    """Python's ``$`` matches before a final newline; pydantic's does not. Both refuse."""
    data = orjson.dumps(mutate(VALID, path, value, delete=False))
    assert not accepts_pydantic(data)
    assert not accepts_wire(data)


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("event_type", ("x.y\n", "s")),
        ("stream_id", ("x.y", "s\n")),
    ],
)
def test_emit_refuses_a_final_newline(field: str, args: tuple[str, str]) -> None:
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False)
    with pytest.raises(EventValidationError) as raised:
        producer.emit_event(ctx(), *args, {"a": 1})
    assert raised.value.field == field
    assert len(producer._buffer) == 0
