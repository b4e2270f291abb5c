"""Every ``re`` check of an ``^…$`` pattern refuses a final newline, as pydantic does.

Python's ``$`` also matches just before a final ``\\n``; the published patterns mean the
end of the text (JSON Schema, pydantic). ``formats.compile_anchored`` spells that ``\\Z``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from event_spine.api.keys import split_token
from event_spine.errors import EventValidationError
from event_spine.observability.tracing import traceparents
from event_spine.producers.records import build_record, checked_event_id
from event_spine.schemas.formats import (
    EVENT_TYPE_PATTERN,
    EVENT_TYPE_RE,
    compile_anchored,
    python_pattern,
)
from event_spine.tabular.service import validate_key
from support.pipeline import ctx

TOKEN = "spk_0123456789ab_" + "A" * 43
TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


def test_only_anchored_patterns_are_converted() -> None:
    assert python_pattern(EVENT_TYPE_PATTERN).endswith(r"\Z")
    assert EVENT_TYPE_RE.pattern == python_pattern(EVENT_TYPE_PATTERN)
    with pytest.raises(ValueError, match="anchored"):
        compile_anchored("[a-z]+")


@pytest.mark.parametrize(
    ("field", "event_type", "stream_id"),
    [("event_type", "a.b\n", "s"), ("stream_id", "a.b", "s\n")],
)
def test_build_record_refuses_a_final_newline(field: str, event_type: str, stream_id: str) -> None:
    with pytest.raises(EventValidationError) as raised:
        build_record(ctx(), event_type, stream_id, {})
    assert raised.value.field == field


def test_event_id_with_a_final_newline_is_refused() -> None:
    with pytest.raises(EventValidationError, match="event_id"):
        checked_event_id("01a2139c-3f25-78db-8d5e-d839e4ff5d5c\n")


def test_tabular_names_refuse_a_final_newline() -> None:
    validate_key("orders", "o_1")
    with pytest.raises(EventValidationError) as raised:
        validate_key("orders\n")
    assert raised.value.field == "table"
    assert "\\Z" not in str(raised.value)  # the published pattern, not re's spelling
    with pytest.raises(EventValidationError) as raised:
        validate_key("orders", "o_1\n")
    assert raised.value.field == "key"


def test_api_token_with_a_final_newline_is_malformed() -> None:
    assert split_token(TOKEN) == ("0123456789ab", "A" * 43)
    assert split_token(TOKEN + "\n") is None


def test_traceparent_header_with_a_final_newline_is_ignored() -> None:
    def record(value: str) -> SimpleNamespace:
        return SimpleNamespace(headers=[("traceparent", value.encode())])

    found = traceparents([record(TRACEPARENT), record(TRACEPARENT.replace("a", "c") + "\n")])
    assert found == [TRACEPARENT]
