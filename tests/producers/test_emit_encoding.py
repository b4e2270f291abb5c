"""emit_event's fast path writes exactly what the general path (build_record +
encode_record) writes, and accepts and refuses exactly the same arguments.

The fast path joins per-context parts encoded once with the per-event parts
(producers/encoding.py); these tests hold it to the record encoder byte for byte.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_spine.errors import EventRejected
from event_spine.kafka.keys import kafka_key
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.producers.records import build_record
from event_spine.schemas import RequestContext, decode_record, encode_record, request_context
from support.pipeline import ctx
from support.strategies import json_values

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# Every character class the patterns allow (formats.py).
stream_ids = st.text("ABCXYZabcxyz0189_.:/@-", max_size=12).map(lambda s: "s" + s)
event_types = st.text("ABCXYZabcxyz0189_.:-", max_size=12).map(lambda s: "e" + s)
metadata_values = st.none() | st.text(max_size=6) | st.sampled_from(['q"uote', "back\\slash", "ü"])
contexts = st.builds(
    lambda tenant, user, run, traced: ctx(
        tenant, user_id=user, run_id=run, traceparent=TRACEPARENT if traced else None
    ),
    st.sampled_from(["t_acme", "t_b", "t_" + "x" * 62]),
    metadata_values,
    metadata_values,
    st.booleans(),
)


def _producer() -> EventSpineProducer:
    return EventSpineProducer(ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False)


def _emitted(producer: EventSpineProducer) -> tuple[bytes, bytes, bytes]:
    ((key, value, traceparent),) = producer._buffer.drain(10)
    return key, value, traceparent


def _expected(
    c: RequestContext,
    event_type: Any,
    stream_id: Any,
    payload: Any,
    value: bytes,
    metadata: Any = None,
) -> bytes:
    """What the general path encodes for the same event (its id and ts taken from
    ``value``: both are generated per emit)."""
    got = decode_record(value)
    record = build_record(c, event_type, stream_id, payload, metadata, event_id=got.event_id)
    return encode_record(msgspec.structs.replace(record, ts=got.ts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contexts,
    event_types,
    stream_ids,
    json_values.filter(lambda v: isinstance(v, dict)),
    st.booleans(),
)
def test_fast_path_bytes_equal_the_record_encoder(c, event_type, stream_id, payload, given_id):
    producer = _producer()
    event_id = "01a2139c-3f25-78db-8d5e-d839e4ff5d5c" if given_id else None
    returned = producer.emit_event(c, event_type, stream_id, payload, event_id=event_id)
    key, value, traceparent = _emitted(producer)
    assert value == _expected(c, event_type, stream_id, payload, value)
    assert key == kafka_key(c.tenant_id, stream_id)
    assert traceparent == (TRACEPARENT.encode() if c.traceparent else b"")
    assert decode_record(value).event_id == returned
    if given_id:
        assert returned == event_id


# Arguments at the edges of the fast path's checks: each must be refused with the same
# field, or accepted with the same bytes, as the general path (build_record).
EDGES: list[tuple[Any, Any, Any, Any]] = [
    ("x", "s\n", {}, None),  # `$` also matches before a final newline
    ("x\n", "s", {}, None),
    ("", "s", {}, None),
    ("x", "", {}, None),
    ("x", "a" * 256, {}, None),
    ("x", "a" * 257, {}, None),
    ("e" * 128, "s", {}, None),
    ("e" * 129, "s", {}, None),
    ("x", "ü", {}, None),
    ("x", 'a"b', {}, None),
    ("x", "-s", {}, None),
    (b"x", "s", {}, None),
    ("x", b"s", {}, None),
    (type("S", (str,), {})("x"), "s", {}, None),
    ("x", type("S", (str,), {})("s"), {}, None),
    ("x", "s", [1], None),
    ("x", "s", type("D", (dict,), {})(), None),
    ("x", "s", {"k": object()}, None),
    ("x", "s", {1: "int key"}, None),
    ("x", "s", {}, {"trace_id": 5}),
    ("x", "s", {}, {"extra": [1]}),
    ("x", "s", {}, {}),
]


def _general_verdict(c: RequestContext, *args: Any) -> Exception | None:
    """The error the general path raises for these arguments, None if it accepts."""
    try:
        encode_record(build_record(c, *args))
    except (EventRejected, TypeError, msgspec.EncodeError) as exc:
        return exc
    return None


@pytest.mark.parametrize(("event_type", "stream_id", "payload", "metadata"), EDGES)
def test_edges_get_the_general_paths_verdict(event_type, stream_id, payload, metadata) -> None:
    c = ctx(request_id="r-1")
    producer = _producer()
    general = _general_verdict(c, event_type, stream_id, payload, metadata)
    if general is None:
        producer.emit_event(c, event_type, stream_id, payload, metadata)
        _, value, _ = _emitted(producer)
        assert value == _expected(c, event_type, stream_id, payload, value, metadata)
        return
    with pytest.raises(EventRejected) as fast:
        producer.emit_event(c, event_type, stream_id, payload, metadata)
    if isinstance(general, EventRejected):
        assert str(fast.value) == str(general)
    else:  # the encoder's own error, named as the payload field by the producer
        assert getattr(fast.value, "field", None) == "payload"
        assert str(general) in str(fast.value)


def test_each_context_keeps_its_own_envelope_past_the_cache_bound() -> None:
    producer = _producer()
    first = ctx("t_a", user_id="u_1")
    other = first.model_copy(update={"user_id": "u_2"})  # same scope, new object
    for n in range(1_100):  # past the per-context cache's bound
        c = [first, other][n % 2] if n % 3 else ctx(f"t_n{n}", run_id=str(n))
        producer.emit_event(c, "x", "s", {"n": n})
        ((key, value, _),) = producer._buffer.drain(1)
        record = decode_record(value)
        assert record.metadata == c.metadata()
        assert (record.routing.key(), key) == (c.key(), kafka_key(c.tenant_id, "s"))


def test_many_event_types_stay_checked_past_the_cache_bound() -> None:
    producer = _producer()
    c = ctx()
    for n in range(4_200):
        producer.emit_event(c, f"type.n{n}", "s", {})
    assert len(producer._buffer) == 4_200
    with pytest.raises(EventRejected, match="event_type"):
        producer.emit_event(c, "type n", "s", {})


def test_the_context_variable_is_used_when_ctx_is_none() -> None:
    producer = _producer()
    a, b = ctx("t_a"), ctx("t_b")
    producer.emit_event(a, "x", "s", {})
    with request_context(b):
        producer.emit_event(None, "x", "s", {})
    keys = [key for key, _, _ in producer._buffer.drain(2)]
    assert keys == [b"t_a:s", b"t_b:s"]
