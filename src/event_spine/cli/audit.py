"""`spine audit verify|export`: check a tenant's audit chain; export it for an auditor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from event_spine.audit.chain import AUDIT_STREAM
from event_spine.audit.export import Window, export_bundle
from event_spine.audit.history import switch_links
from event_spine.audit.links import segments
from event_spine.audit.scoped import ScopeChain, open_scope_chain
from event_spine.audit.verify import ChainReport
from event_spine.backends.factory import StoreFactory, TabularFactory
from event_spine.cli.audited import AuditTopicOption, NoAuditOption, audit_target, opened_registry
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.kafka.settings import KafkaSettings
from event_spine.schemas.scope import Scope

app = typer.Typer(no_args_is_help=True, help="Check audit chains; export them for auditors.")
console = Console()


@app.callback()
def audit() -> None:
    """Check audit chains (a group, so `verify` stays a named subcommand)."""


#: The scope flags `spine audit verify` and `spine tail` share.
RegistryOption = typer.Option(
    ..., "--registry", envvar="SPINE_REGISTRY", help="sqlite:/path or BACKEND:{json}"
)
TenantOption = typer.Option(..., "--tenant")
EnvOption = typer.Option(..., "--env")
ModeOption = typer.Option(..., "--mode")
ProjectOption = typer.Option(..., "--project")


def scope_fields(tenant: str, env: str, mode: str, project: str) -> dict[str, str]:
    """The flags as Scope/RequestContext fields (validated by the model)."""
    return {"tenant_id": tenant, "env": env, "mode": mode, "project_id": project}


@app.command()
@kafka_options
def verify(
    kafka: KafkaFlags,
    registry: str = RegistryOption,
    tenant: str = TenantOption,
    env: str = EnvOption,
    mode: str = ModeOption,
    project: str = ProjectOption,
    stream: str = typer.Option(AUDIT_STREAM, "--stream", help="The audit stream."),
    audit_topic: str = AuditTopicOption,
    no_audit: bool = NoAuditOption,
) -> None:
    """Check the chain, its HMACs (SPINE_AUDIT_KEY...) and its anchors (the object_store route).

    Its route lookups are audited through --bootstrap unless --no-audit.
    Exit 0 valid, 1 broken (the first bad record or anchor is named), 2 unusable input.
    """
    scope = Scope.model_validate(scope_fields(tenant, env, mode, project))
    target = _Audit(audit_target(kafka, no_audit), audit_topic)
    report = asyncio.run(_verify(registry, scope, stream, target))
    if report.ok:
        console.print(f"[green]{report.describe()}[/green]", soft_wrap=True)
        return
    console.print(f"[red]{report.describe()}[/red]", soft_wrap=True)
    raise typer.Exit(1)


@app.command()
@kafka_options
def export(
    kafka: KafkaFlags,
    registry: str = RegistryOption,
    tenant: str = TenantOption,
    env: str = EnvOption,
    mode: str = ModeOption,
    project: str = ProjectOption,
    start: datetime = typer.Option(
        ..., "--from", help="First event time (ISO 8601; UTC if naive)."
    ),
    end: datetime = typer.Option(..., "--to", help="Last event time (ISO 8601; UTC if naive)."),
    out: Path = typer.Option(..., "--out", help="Bundle directory (created; must be empty)."),
    stream: str = typer.Option(AUDIT_STREAM, "--stream", help="The audit stream."),
    audit_topic: str = AuditTopicOption,
    no_audit: bool = NoAuditOption,
) -> None:
    """Write a bundle an auditor verifies with `python -I -S verify_bundle.py BUNDLE`.

    Its route lookups are audited through --bootstrap unless --no-audit."""
    window = Window(_aware(start), _aware(end))
    if window.end < window.start:
        raise typer.BadParameter("`--to` must not be before `--from`")
    scope = Scope.model_validate(scope_fields(tenant, env, mode, project))
    target = _Audit(audit_target(kafka, no_audit), audit_topic)
    try:
        count = asyncio.run(_export(registry, scope, stream, window, out, target))
    except OSError as exc:  # the bundle directory: name it, exit 2 as before
        raise typer.BadParameter(f"`--out` {out}: {exc}") from exc
    console.print(
        f"wrote {count} audit records to {out}; verify: python -I -S {out}/verify_bundle.py {out}"
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Audit:
    """Where the registry's lookups are audited (kafka None: opted out)."""

    kafka: KafkaSettings | None
    topic: str


@asynccontextmanager
async def _opened(
    location: str, scope: Scope, stream: str, audit: _Audit
) -> AsyncIterator[ScopeChain]:
    """The scope's chain (audit.scoped, shared with the console's audit page)."""
    stores, tables = StoreFactory(), TabularFactory()
    async with opened_registry(location, audit.kafka, audit.topic) as registry:
        try:
            yield await open_scope_chain(registry, scope, stream, stores, tables)
        finally:
            await tables.close()
            await stores.close()


async def _verify(location: str, scope: Scope, stream: str, audit: _Audit) -> ChainReport:
    async with _opened(location, scope, stream, audit) as chain:
        return await chain.verify()


async def _export(
    location: str, scope: Scope, stream: str, window: Window, out: Path, audit: _Audit
) -> int:
    async with _opened(location, scope, stream, audit) as o:
        parts, _ = segments(o.route, stream)
        history = [(await o.open_part(p), p.span()) for p in parts]
        return await export_bundle(
            o.store,
            scope,
            stream,
            window,
            o.anchors,
            o.keys,
            out,
            history=history,
            switches=switch_links(parts),
        )


if __name__ == "__main__":
    app()
