"""Canonical emitters: typed payloads per domain, one envelope, documented streams."""

from event_spine.emitters.emit import (
    build_payload,
    emit_analytics_event,
    emit_budget_event,
    emit_payload,
    emit_rl_telemetry,
    emit_safety_decision,
    emit_strategy_event,
    emit_tuning_log,
)
from event_spine.emitters.envelope import Envelope
from event_spine.emitters.payloads import (
    PAYLOAD_MODELS,
    AnalyticsRecord,
    BudgetMovement,
    DomainPayload,
    RLTelemetry,
    SafetyDecision,
    StrategyChange,
    TuningChange,
    parse_payload,
)
from event_spine.emitters.routing import ROUTING_TIMELINE, routing_hook

__all__ = [
    "PAYLOAD_MODELS",
    "ROUTING_TIMELINE",
    "AnalyticsRecord",
    "BudgetMovement",
    "DomainPayload",
    "Envelope",
    "RLTelemetry",
    "SafetyDecision",
    "StrategyChange",
    "TuningChange",
    "build_payload",
    "emit_analytics_event",
    "emit_budget_event",
    "emit_payload",
    "emit_rl_telemetry",
    "emit_safety_decision",
    "emit_strategy_event",
    "emit_tuning_log",
    "parse_payload",
    "routing_hook",
]
