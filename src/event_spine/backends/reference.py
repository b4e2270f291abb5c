"""The generated parts of docs/backends.md: route config keys, store layouts, queries.

All come from each backend's ``BackendSpec``, so the page cannot drift: the config
tables from its config model (``config``), the layouts from its package docstring
(``layout``) and the DDL its store modules run, the query costs from ``query_costs``.
Regenerate with ``python -m event_spine.backends.reference`` (rewrites
docs/backends.md in place); tests/docs check the page is up to date.

Generated blocks sit between ``<!-- generated:KIND:BACKEND -->`` and
``<!-- /generated -->`` markers (KIND is ``config``, ``layout`` or ``queries``);
everything else on the page is written by hand.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from event_spine.backends.catalog import BACKENDS
from event_spine.schemas.routes import BackendType

_BLOCK = re.compile(
    r"(<!-- generated:(?P<kind>config|layout|queries):(?P<backend>\w+) -->\n)"
    r"(?P<body>.*?)(<!-- /generated -->)",
    re.DOTALL,
)


def config_model(backend: BackendType) -> type[BaseModel]:
    """The pydantic model a route's ``config`` is validated against."""
    return BACKENDS[backend].config


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is None:
        return getattr(annotation, "__name__", repr(annotation))
    args = get_args(annotation)
    if origin in (types.UnionType,) or str(origin) == "typing.Union":
        return " \\| ".join(_type_name(a) for a in args)
    if str(origin) == "typing.Literal":
        return " \\| ".join(f"`{a!r}`" for a in args)
    return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in args)}]"


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "(computed)" if info.default_factory is not None else "**required**"
    return f"`{info.default!r}`" if info.default is not None else "`None`"


def _bounds(info: FieldInfo) -> str:
    out = []
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                out.append(f"{name} {value}")
    return "; ".join(out)


def config_table(backend: BackendType) -> str:
    """Markdown table: every key of the backend's route config."""
    model = config_model(backend)
    if not model.model_fields:
        return "No keys: the route config is `{}`.\n"
    rows = ["| key | type | default | constraints | meaning |", "|---|---|---|---|---|"]
    for name, info in model.model_fields.items():
        key = info.alias or name
        text = (info.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| `{key}` | {_type_name(info.annotation)} | {_default(info)} | "
            f"{_bounds(info)} | {text} |"
        )
    return "\n".join(rows) + "\n"


def _ddl(backend: BackendType) -> list[str]:
    """The CREATE statements of a SQL backend's stores, as the code runs them."""
    classes = BACKENDS[backend].load()
    found = []
    for store in (classes.events, classes.registry, classes.tabular):
        module = sys.modules[store.__module__]
        found += [
            value.strip()
            for key, value in sorted(vars(module).items())
            # The schema a store creates (by convention *_SCHEMA / *_DDL), not migrations.
            if key.endswith(("SCHEMA", "DDL"))
            if isinstance(value, str) and "CREATE TABLE" in value
        ]
    return found


def layout_text(backend: BackendType) -> str:
    """The store layout: the backend's package docstring, then its DDL (SQL backends)."""
    out = f"```text\n{BACKENDS[backend].layout.strip()}\n```\n"
    ddl = "\n\n".join(_ddl(backend))
    return f"{out}\n```sql\n{ddl}\n```\n" if ddl else out


def query_costs(backend: BackendType) -> str:
    """How the backend runs queries: indexes and what they cost (``query_costs``)."""
    return f"**Queries.** {BACKENDS[backend].query_costs.strip()}\n"


def render(page: str) -> str:
    """``page`` with every generated block replaced by what the code says now."""

    def fill(match: re.Match[str]) -> str:
        backend = BackendType(match["backend"])
        kind = match["kind"]
        if kind == "config":
            body = config_table(backend)
        elif kind == "layout":
            body = layout_text(backend)
        else:
            body = query_costs(backend)
        return f"{match[1]}{body}{match[5]}"

    return _BLOCK.sub(fill, page)


def main(path: str = "docs/backends.md") -> None:
    """Rewrite the page's generated blocks in place."""
    page = Path(path)
    page.write_text(render(page.read_text()))


if __name__ == "__main__":
    main(*sys.argv[1:])
