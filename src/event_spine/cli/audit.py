"""`spine audit verify`: check a tenant's audit hash chain in its routed store."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from event_spine.audit.chain import AUDIT_STREAM
from event_spine.audit.verify import ChainReport, verify_chain
from event_spine.backends.factory import StoreFactory
from event_spine.cli.options import open_registry_at
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import ResourceKind
from event_spine.schemas.scope import Scope

app = typer.Typer(no_args_is_help=True, help="Check audit hash chains.")
console = Console()


@app.callback()
def audit() -> None:
    """Check audit hash chains (a group, so `verify` stays a named subcommand)."""


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
def verify(
    registry: str = RegistryOption,
    tenant: str = TenantOption,
    env: str = EnvOption,
    mode: str = ModeOption,
    project: str = ProjectOption,
    stream: str = typer.Option(AUDIT_STREAM, "--stream", help="The audit stream."),
) -> None:
    """Read the chain back from the tenant's event_spine route; exit 1 on a broken link."""
    scope = Scope.model_validate(scope_fields(tenant, env, mode, project))
    report = asyncio.run(_verify(registry, scope, stream))
    if report.ok:
        console.print(f"[green]{report.describe()}[/green]")
        return
    console.print(f"[red]{report.describe()}[/red]")
    raise typer.Exit(1)


async def _verify(location: str, scope: Scope, stream: str) -> ChainReport:
    registry_store = await open_registry_at(location)
    stores = StoreFactory()
    try:
        route = await RoutingRegistry(registry_store).get_route(
            ResourceKind.EVENT_SPINE, scope.tenant_id, scope.env, scope.project_id, scope.mode
        )
        return await verify_chain(await stores.event_store(route), scope, stream)
    finally:
        await stores.close()
        await registry_store.close()


if __name__ == "__main__":
    app()
