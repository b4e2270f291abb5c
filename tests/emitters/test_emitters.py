"""Canonical emitters: through the real broker into SQLite, with the full envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from event_spine.emitters import (
    Envelope,
    emit_analytics_event,
    emit_budget_event,
    emit_rl_telemetry,
    emit_safety_decision,
    emit_strategy_event,
    emit_tuning_log,
    parse_payload,
    routing_hook,
)
from event_spine.errors import EventValidationError
from event_spine.producers import EventSpineProducer, ProducerSettings, set_default_producer
from event_spine.routing import RoutingRegistry
from event_spine.schemas import RequestContext, ResourceKind, ResourceRoute, RouteKey
from event_spine.timeline import TimelineEntry
from support.app import App, running_app
from support.pipeline import ctx

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def app(broker, tmp_path):
    async with running_app(broker.bootstrap_servers, tmp_path) as running:
        yield running


def full_context() -> RequestContext:
    return ctx(
        "t_emit",
        mode="saas",
        user_id="u_7",
        surface_id="checkout",
        request_id="req-9",
        run_id="run-3",
        traceparent=TRACEPARENT,
    )


# (emit call, stream, event_type, expected payload subset)
CASES: list[tuple[Callable[..., str], str, str, dict[str, Any]]] = [
    (
        lambda c, p: emit_safety_decision(
            c, "block", "PII in output", policy_id="pii", rule_ids=["r1"], score=0.9, producer=p
        ),
        "safety/decisions",
        "safety.decision",
        {"decision": "block", "rule_ids": ["r1"], "score": 0.9},
    ),
    (
        lambda c, p: emit_rl_telemetry(c, "m-2024.1", 0.75, {"arm": "b"}, step=3, producer=p),
        "rl/m-2024.1",
        "rl.telemetry",
        {"model_version": "m-2024.1", "reward": 0.75, "metadata": {"arm": "b"}, "step": 3},
    ),
    (
        lambda c, p: emit_tuning_log(c, "cfg-7", "raise top_k to 40", producer=p),
        "tuning/log",
        "tuning.change",
        {"config_version": "cfg-7", "change_description": "raise top_k to 40"},
    ),
    (
        lambda c, p: emit_budget_event(c, "b_q3", "consumed", 12.5, balance=87.5, producer=p),
        "budget/b_q3",
        "budget.consumed",
        {"budget_id": "b_q3", "amount": 12.5, "unit": "usd", "balance": 87.5},
    ),
    (
        lambda c, p: emit_analytics_event(c, "cart_viewed", {"items": 3}, producer=p),
        "analytics/cart_viewed",
        "analytics.cart_viewed",
        {"name": "cart_viewed", "properties": {"items": 3}},
    ),
    (
        lambda c, p: emit_strategy_event(c, "s_pricing", "adopted", "A/B won", producer=p),
        "strategy/s_pricing",
        "strategy.adopted",
        {"strategy_id": "s_pricing", "rationale": "A/B won"},
    ),
]


async def test_each_emitter_round_trips_with_the_full_envelope(app: App) -> None:
    c = full_context()
    await app.route(c)
    await app.start_worker()
    ids = [emit(c, app.producer) for emit, *_ in CASES]
    expected_envelope = Envelope.from_context(c)
    assert expected_envelope.trace_id == "0af7651916cd43dd8448eb211c80319c"
    for event_id, (_, stream, event_type, payload) in zip(ids, CASES, strict=True):
        [event] = await app.wait_stored(c, stream, 1)
        assert event.event_id == event_id
        assert event.record.event_type == event_type
        assert payload.items() <= event.record.payload.items()
        assert Envelope.of(event.record) == expected_envelope
        assert event.record.routing.key() == c.key()
        assert parse_payload(event.record).stream_id() == stream


async def test_emitters_use_the_default_producer(app: App) -> None:
    c = full_context()
    await app.route(c)
    await app.start_worker()
    set_default_producer(app.producer)
    try:
        event_id = emit_safety_decision(c, "allow", "clean")
    finally:
        set_default_producer(None)
    [event] = await app.wait_stored(c, "safety/decisions", 1)
    assert event.event_id == event_id


INVALID: list[tuple[Callable[[RequestContext, EventSpineProducer], str], str]] = [
    (lambda c, p: emit_safety_decision(c, "maybe", "x", producer=p), "payload.decision"),  # type: ignore[arg-type]
    (lambda c, p: emit_safety_decision(c, "allow", "", producer=p), "payload.justification"),
    (lambda c, p: emit_rl_telemetry(c, "v1", float("nan"), producer=p), "payload.reward"),
    (lambda c, p: emit_rl_telemetry(c, "a/b", 1.0, producer=p), "payload.model_version"),
    (lambda c, p: emit_tuning_log(c, "cfg-8", "", producer=p), "payload.change_description"),
    (lambda c, p: emit_budget_event(c, "b1", "consumed", -5, producer=p), "payload.amount"),
    (lambda c, p: emit_analytics_event(c, "Cart Viewed", producer=p), "payload.name"),
    (
        lambda c, p: emit_analytics_event(c, "ok", {"nested": {"x": 1}}, producer=p),  # type: ignore[dict-item]
        "payload.properties.nested",
    ),
    (lambda c, p: emit_strategy_event(c, "s1", "won", "r", producer=p), "payload.action"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("emit", "field"), INVALID)
def test_invalid_payloads_name_the_field(
    emit: Callable[[RequestContext, EventSpineProducer], str], field: str
) -> None:
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False)
    with pytest.raises(EventValidationError) as caught:
        emit(full_context(), producer)
    assert caught.value.field.startswith(field)
    assert f"`{caught.value.field}`" in str(caught.value)
    assert producer.stats.emitted == 0  # nothing was handed over
    producer.close(0)


async def test_route_switch_becomes_a_timeline_entry(app: App) -> None:
    c = ctx("t_switch")
    await app.route(c)
    await app.start_worker()
    registry = RoutingRegistry(app.registry.store, routing_hook(app.producer))
    tabular = ResourceRoute.for_scope(
        c, ResourceKind.TABULAR_STORE, "sqlite", {"path": str(app.tmp / "rows-a.db")}
    )
    await registry.set_route(tabular, actor="ops")
    key = RouteKey(ResourceKind.TABULAR_STORE, c.tenant_id, c.env, c.project_id, c.mode)
    new_config = {"path": str(app.tmp / "rows-b.db")}
    await registry.switch_route(key, "sqlite", new_config, actor="ops", reason="disk full")
    [event] = await app.wait_stored(c, "timeline/routing", 1)
    entry = TimelineEntry.from_event(event)
    assert event.record.event_type == "timeline.route.switch"
    assert entry.actor == "ops"
    assert entry.detail["reason"] == "disk full"
    assert entry.detail["resource_kind"] == "tabular_store"
    audit = await app.wait_stored(c, "audit", 2)
    changes = [(e.record.payload["action"], e.record.payload["output"]["change"]) for e in audit]
    assert changes == [("routing.update", "set"), ("routing.update", "switch")]
