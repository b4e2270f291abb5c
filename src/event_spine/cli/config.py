"""`spine config show`: the effective settings (env, .env file, defaults), secrets masked."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import typer
from dotenv import dotenv_values
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console

from event_spine.cli.kafka_options import KafkaFlags
from event_spine.kafka.settings import KafkaSettings
from event_spine.producers.settings import ProducerSettings
from event_spine.profiles import PROFILE_ENV
from event_spine.sink_workers.settings import SinkSettings

app = typer.Typer(no_args_is_help=True, help="Show and check settings.")
console = Console()
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|credential|api_?key|private", re.IGNORECASE)
COMPONENTS: dict[str, type[BaseSettings]] = {
    "sink": SinkSettings,
    "producer": ProducerSettings,
    "kafka": KafkaSettings,
}


def masked(value: Any, name: str = "") -> Any:
    """A copy with secrets replaced by '***' (SecretStr, or names that say secret)."""
    if isinstance(value, BaseModel):  # nested settings (``kafka``): their fields, masked
        return {k: masked(getattr(value, k), k) for k in type(value).model_fields}
    if isinstance(value, SecretStr) or (_SECRET_NAME.search(name) and value not in (None, "")):
        return "***"
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, name) for v in value]
    return value


@contextlib.contextmanager
def _only_prefixed(env_file: Path, settings_class: type[BaseSettings]) -> Iterator[Path]:
    """A copy of ``env_file`` with only the lines of the class's env prefix (and
    SPINE_PROFILE for the classes with a profile)."""
    prefix = str(settings_class.model_config.get("env_prefix", "")).upper()
    shared = {PROFILE_ENV} if "profile" in settings_class.model_fields else set()
    with tempfile.TemporaryDirectory() as folder:
        own = Path(folder) / ".env"
        own.write_text(
            "".join(
                f"{key}={orjson.dumps(value).decode()}\n"  # double-quoted, escaped
                for key, value in dotenv_values(env_file).items()
                if (key.upper().startswith(prefix) or key.upper() in shared) and value is not None
            )
        )
        yield own


def effective(component: str, env_file: Path | None) -> dict[str, Any]:
    """Load one component's settings as the process would, masked."""
    settings_class = COMPONENTS[component]
    if env_file is None:
        loaded = settings_class()
    elif settings_class is KafkaSettings:
        with _only_prefixed(env_file, settings_class) as own:
            loaded = settings_class(_env_file=own)
    else:
        # One file may hold SPINE_KAFKA_* beside the component's keys: the nested Kafka
        # settings read those; the component only its own prefix (it forbids extras).
        with _only_prefixed(env_file, settings_class) as own:
            loaded = settings_class(_env_file=own, kafka=KafkaFlags(env_file=env_file).values())
    return {name: masked(getattr(loaded, name), name) for name in type(loaded).model_fields}


@app.command()
def show(
    component: str = typer.Argument(..., help="sink, producer or kafka"),
    env_file: Path | None = typer.Option(None, help="A .env file read before the environment."),
) -> None:
    """Print the effective settings as JSON; exit 2 naming every invalid or missing field.

    `profile` shows the latency profile (SPINE_PROFILE, or SPINE_SINK_PROFILE /
    SPINE_PRODUCER_PROFILE) and the fields show the values it resolved to.
    """
    if component not in COMPONENTS:
        raise typer.BadParameter(f"`component` must be one of {sorted(COMPONENTS)}")
    prefix = COMPONENTS[component].model_config.get("env_prefix", "")
    try:
        values = effective(component, env_file)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"]:  # a whole-object problem names its settings itself
                problems.append(message)
                continue
            field = ".".join(map(str, error["loc"]))
            problems.append(f"`{field}` ({prefix}{str(error['loc'][0]).upper()}): {message}")
        raise typer.BadParameter("\n".join(problems)) from None
    typer.echo(orjson.dumps(values, option=orjson.OPT_INDENT_2, default=str).decode())
