"""A small Server-Sent Events reader over an httpx streaming response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson


@dataclass(frozen=True)
class Frame:
    """One SSE message (or a comment line, when ``comment`` is set)."""

    id: str | None = None
    event: str = "message"
    data: str = ""
    comment: str | None = None

    def json(self) -> dict:
        return orjson.loads(self.data)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Messages and comments in arrival order."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:  # as browsers do: a block without data (e.g. `retry:`) is no event
                yield Frame(fields.get("id"), fields.get("event", "message"), "\n".join(data))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            yield Frame(comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
