"""Typed payloads of the canonical event types, one pydantic model per domain.

Each model knows its event type and its stream (the stream_id conventions):

| domain | event_type | stream_id |
|---|---|---|
| safety | ``safety.decision`` | ``safety/decisions`` |
| rl | ``rl.telemetry`` | ``rl/<model_version>`` |
| tuning | ``tuning.change`` | ``tuning/log`` |
| budget | ``budget.<kind>`` | ``budget/<budget_id>`` |
| analytics | ``analytics.<name>`` | ``analytics/<name>`` |
| strategy | ``strategy.<action>`` | ``strategy/<strategy_id>`` |

A stream is the unit of order (one partition) and of cursor paging, so a stream
groups what a reader wants in order: one model version's telemetry, one budget's
movements. Payloads are validated here, where the error can still name the field.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from event_spine.schemas.wire import EventRecord

#: Ids that become part of a stream id: no slash, so the stream stays two segments.
Segment = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Scalar = str | int | float | bool | None


class DomainPayload(BaseModel):
    """Base of the canonical payloads: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    domain: ClassVar[str]
    #: str.format templates over the model's fields.
    event_type_template: ClassVar[str]
    stream_template: ClassVar[str]

    def event_type(self) -> str:
        """The event type this payload travels as."""
        return self.event_type_template.format_map(self.__dict__)

    def stream_id(self) -> str:
        """The stream this payload belongs to."""
        return self.stream_template.format_map(self.__dict__)


class SafetyDecision(DomainPayload):
    """A safety layer allowed, blocked, redacted or escalated something, and why."""

    domain: ClassVar[str] = "safety"
    event_type_template: ClassVar[str] = "safety.decision"
    stream_template: ClassVar[str] = "safety/decisions"
    decision: Literal["allow", "block", "redact", "escalate"]
    justification: Text
    policy_id: str | None = Field(default=None, max_length=256)
    rule_ids: tuple[str, ...] = ()
    score: float | None = Field(default=None, ge=0, le=1, description="Risk in [0, 1].")
    subject: str | None = Field(default=None, max_length=512, description="What was judged.")


class RLTelemetry(DomainPayload):
    """One reward observation of a model version (RL training or online feedback)."""

    domain: ClassVar[str] = "rl"
    event_type_template: ClassVar[str] = "rl.telemetry"
    stream_template: ClassVar[str] = "rl/{model_version}"
    model_version: Segment
    reward: Finite
    episode_id: str | None = Field(default=None, max_length=256)
    step: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form details.")


class TuningChange(DomainPayload):
    """A configuration change: the new version and what changed."""

    domain: ClassVar[str] = "tuning"
    event_type_template: ClassVar[str] = "tuning.change"
    stream_template: ClassVar[str] = "tuning/log"
    config_version: Segment
    change_description: Text
    previous_version: Segment | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class BudgetMovement(DomainPayload):
    """Money or quota allocated to, consumed from, released by or exceeding a budget."""

    domain: ClassVar[str] = "budget"
    event_type_template: ClassVar[str] = "budget.{kind}"
    stream_template: ClassVar[str] = "budget/{budget_id}"
    budget_id: Segment
    kind: Literal["allocated", "consumed", "released", "exceeded"]
    amount: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    unit: str = Field(default="usd", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    balance: Finite | None = None


class AnalyticsRecord(DomainPayload):
    """A product analytics event: a snake_case name and flat scalar properties."""

    domain: ClassVar[str] = "analytics"
    event_type_template: ClassVar[str] = "analytics.{name}"
    stream_template: ClassVar[str] = "analytics/{name}"
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    properties: dict[str, Scalar] = Field(default_factory=dict)


class StrategyChange(DomainPayload):
    """A strategy proposed, adopted, revised or retired, with the reasoning."""

    domain: ClassVar[str] = "strategy"
    event_type_template: ClassVar[str] = "strategy.{action}"
    stream_template: ClassVar[str] = "strategy/{strategy_id}"
    strategy_id: Segment
    action: Literal["proposed", "adopted", "revised", "retired"]
    rationale: Text
    parameters: dict[str, Any] = Field(default_factory=dict)


#: The payload model of each domain (the part of event_type before the first dot).
PAYLOAD_MODELS: Final[dict[str, type[DomainPayload]]] = {
    model.domain: model
    for model in (
        SafetyDecision,
        RLTelemetry,
        TuningChange,
        BudgetMovement,
        AnalyticsRecord,
        StrategyChange,
    )
}


def parse_payload(record: EventRecord) -> DomainPayload:
    """The typed payload of a canonical event (KeyError for another domain).

    Fields this build does not know are ignored: a newer emitter may add optional
    fields without breaking older readers.
    """
    model = PAYLOAD_MODELS[record.event_type.partition(".")[0]]
    known = {k: v for k, v in record.payload.items() if k in model.model_fields}
    return model.model_validate(known)
