"""The registry the CLI opens: audited by default, `--no-audit` the explicit opt-out.

Every command that reads routes (`spine routes`, `replay`, `verify`, `cutover`,
`tail`, `audit verify|export`) opens its registry through here or through the same
rule: each lookup (found or not) and change becomes an audit event sent through the
command's Kafka flags, and without Kafka flags the command refuses to run unless
`--no-audit` is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer

from event_spine.cli.kafka_options import KafkaFlags
from event_spine.cli.options import open_registry_at
from event_spine.emitters.routing import audited_registry
from event_spine.kafka.settings import KafkaSettings
from event_spine.routing.registry import RoutingRegistry


def no_audit_option(topic_flag: str = "--audit-topic") -> Any:
    """`--no-audit`, its help naming the flag of the topic the command audits into."""
    return typer.Option(
        False,
        "--no-audit",
        help="Explicit opt-out: do not audit the registry lookups and changes (by default "
        f"each one becomes an audit event in {topic_flag} through --bootstrap).",
    )


NoAuditOption = no_audit_option()
AuditTopicOption = typer.Option(
    "spine.events", "--audit-topic", help="Topic the registry audit events go to."
)


def audit_target(kafka: KafkaFlags | KafkaSettings | None, no_audit: bool) -> KafkaSettings | None:
    """Where the audit events go; a usage error when neither Kafka nor --no-audit is given."""
    if no_audit:
        return None
    settings = kafka.settings_if_any() if isinstance(kafka, KafkaFlags) else kafka
    if settings is None:
        raise typer.BadParameter(
            "registry lookups and changes are audited by default: pass `--bootstrap` (or "
            "SPINE_BOOTSTRAP / SPINE_KAFKA_BOOTSTRAP_SERVERS), or `--no-audit` to opt out."
        )
    return settings


@asynccontextmanager
async def opened_registry(
    location: str, audit_kafka: KafkaSettings | None, audit_topic: str
) -> AsyncIterator[RoutingRegistry]:
    """Open the registry at ``location``, audited unless ``audit_kafka`` is None."""
    store = await open_registry_at(location)
    async with audited_registry(store, audit_kafka=audit_kafka, audit_topic=audit_topic) as reg:
        yield reg
