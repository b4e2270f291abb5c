"""`spine config show`: the effective settings (env, .env file, defaults), secrets masked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import typer
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console

from event_spine.producers.settings import ProducerSettings
from event_spine.sink_workers.settings import SinkSettings

app = typer.Typer(no_args_is_help=True, help="Show and check settings.")
console = Console()
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|credential|api_?key|private", re.IGNORECASE)
COMPONENTS: dict[str, type[BaseSettings]] = {"sink": SinkSettings, "producer": ProducerSettings}


def masked(value: Any, name: str = "") -> Any:
    """A copy with secrets replaced by '***' (SecretStr, or names that say secret)."""
    if isinstance(value, SecretStr) or (_SECRET_NAME.search(name) and value not in (None, "")):
        return "***"
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, name) for v in value]
    return value


def effective(component: str, env_file: Path | None) -> dict[str, Any]:
    """Load one component's settings as the process would, masked."""
    settings_class = COMPONENTS[component]
    loaded = settings_class(_env_file=env_file) if env_file else settings_class()
    return {name: masked(getattr(loaded, name), name) for name in type(loaded).model_fields}


@app.command()
def show(
    component: str = typer.Argument(..., help="sink or producer"),
    env_file: Path | None = typer.Option(None, help="A .env file read before the environment."),
) -> None:
    """Print the effective settings as JSON; exit 2 naming every invalid or missing field."""
    if component not in COMPONENTS:
        raise typer.BadParameter(f"`component` must be one of {sorted(COMPONENTS)}")
    prefix = COMPONENTS[component].model_config.get("env_prefix", "")
    try:
        values = effective(component, env_file)
    except ValidationError as exc:
        problems = [
            f"`{'.'.join(map(str, e['loc']))}` ({prefix}{str(e['loc'][0]).upper()}): {e['msg']}"
            for e in exc.errors(include_input=False)
        ]
        raise typer.BadParameter("\n".join(problems)) from None
    typer.echo(orjson.dumps(values, option=orjson.OPT_INDENT_2, default=str).decode())
