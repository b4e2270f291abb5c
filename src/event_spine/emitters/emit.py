"""The canonical emitters: one call per domain, typed, enveloped, fire-and-forget.

Each validates its payload model (an error names the field: ``payload.reward``),
takes the envelope from the RequestContext (``ctx`` None: the one set with
``request_context()``), and emits through ``producer`` or the default producer.
The sink routes every event by the scope's ``event_spine`` route, as for any event.
Each returns the event_id at once; nothing waits on the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from event_spine.emitters.envelope import Envelope
from event_spine.emitters.payloads import (
    AnalyticsRecord,
    BudgetMovement,
    DomainPayload,
    RLTelemetry,
    SafetyDecision,
    StrategyChange,
    TuningChange,
)
from event_spine.errors import EventValidationError
from event_spine.producers.emit import get_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.records import require_context
from event_spine.schemas.context import RequestContext

P = TypeVar("P", bound=DomainPayload)


def build_payload(model: type[P], **fields: Any) -> P:
    """Validate a payload; the first problem raises EventValidationError naming it."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise EventValidationError(f"payload.{where}", first["msg"]) from None


def emit_payload(
    ctx: RequestContext | None,
    payload: DomainPayload,
    *,
    producer: EventSpineProducer | None = None,
) -> str:
    """Emit a validated payload with the context's envelope; returns the event_id."""
    ctx = require_context(ctx)
    target = producer or get_default_producer()
    return target.emit_event(
        ctx,
        payload.event_type(),
        payload.stream_id(),
        payload.model_dump(mode="json"),
        Envelope.from_context(ctx).metadata(),
    )


def emit_safety_decision(
    ctx: RequestContext | None,
    decision: Literal["allow", "block", "redact", "escalate"],
    justification: str,
    *,
    policy_id: str | None = None,
    rule_ids: Iterable[str] = (),
    score: float | None = None,
    subject: str | None = None,
    producer: EventSpineProducer | None = None,
) -> str:
    """``safety.decision`` into ``safety/decisions``."""
    payload = build_payload(
        SafetyDecision,
        decision=decision,
        justification=justification,
        policy_id=policy_id,
        rule_ids=tuple(rule_ids),
        score=score,
        subject=subject,
    )
    return emit_payload(ctx, payload, producer=producer)


def emit_rl_telemetry(
    ctx: RequestContext | None,
    model_version: str,
    reward: float,
    metadata: Mapping[str, Any] | None = None,
    *,
    episode_id: str | None = None,
    step: int | None = None,
    producer: EventSpineProducer | None = None,
) -> str:
    """``rl.telemetry`` into ``rl/<model_version>``; ``metadata`` is free-form detail."""
    payload = build_payload(
        RLTelemetry,
        model_version=model_version,
        reward=reward,
        metadata=dict(metadata or {}),
        episode_id=episode_id,
        step=step,
    )
    return emit_payload(ctx, payload, producer=producer)


def emit_tuning_log(
    ctx: RequestContext | None,
    config_version: str,
    change_description: str,
    *,
    previous_version: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    producer: EventSpineProducer | None = None,
) -> str:
    """``tuning.change`` into ``tuning/log``."""
    payload = build_payload(
        TuningChange,
        config_version=config_version,
        change_description=change_description,
        previous_version=previous_version,
        parameters=dict(parameters or {}),
    )
    return emit_payload(ctx, payload, producer=producer)


def emit_budget_event(
    ctx: RequestContext | None,
    budget_id: str,
    kind: Literal["allocated", "consumed", "released", "exceeded"],
    amount: float,
    *,
    unit: str = "usd",
    balance: float | None = None,
    producer: EventSpineProducer | None = None,
) -> str:
    """``budget.<kind>`` into ``budget/<budget_id>``."""
    payload = build_payload(
        BudgetMovement, budget_id=budget_id, kind=kind, amount=amount, unit=unit, balance=balance
    )
    return emit_payload(ctx, payload, producer=producer)


def emit_analytics_event(
    ctx: RequestContext | None,
    name: str,
    properties: Mapping[str, str | int | float | bool | None] | None = None,
    *,
    producer: EventSpineProducer | None = None,
) -> str:
    """``analytics.<name>`` into ``analytics/<name>``."""
    payload = build_payload(AnalyticsRecord, name=name, properties=dict(properties or {}))
    return emit_payload(ctx, payload, producer=producer)


def emit_strategy_event(
    ctx: RequestContext | None,
    strategy_id: str,
    action: Literal["proposed", "adopted", "revised", "retired"],
    rationale: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    producer: EventSpineProducer | None = None,
) -> str:
    """``strategy.<action>`` into ``strategy/<strategy_id>``."""
    payload = build_payload(
        StrategyChange,
        strategy_id=strategy_id,
        action=action,
        rationale=rationale,
        parameters=dict(parameters or {}),
    )
    return emit_payload(ctx, payload, producer=producer)
