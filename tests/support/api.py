"""Tests of the HTTP API: two tenants' keys, an admin key, the server over a pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from event_spine.schemas import RequestContext
from support.api_server import ApiServer, api_settings, make_key, running_api
from support.app import App
from support.pipeline import ctx

A = ctx("t_alpha")
B = ctx("t_beta")


@dataclass
class Api:
    """The pipeline, the server, and a key per tenant plus an admin key."""

    app: App
    server: ApiServer
    tokens: dict[str, str]
    key_ids: dict[str, str]

    def client(self, who: str | None = "a", **kw: Any) -> httpx.AsyncClient:
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.AsyncClient(base_url=self.server.url, headers=headers, timeout=30, **kw)

    def emit(self, c: RequestContext, stream: str, n: int, start: int = 0) -> list[str]:
        return [
            self.app.producer.emit_event(c, "order.placed", stream, {"seq": i})
            for i in range(start, start + n)
        ]


@asynccontextmanager
async def started_api(app: App, **settings: Any) -> AsyncIterator[Api]:
    await app.route(A, B)
    tokens: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    for who, scope in (("a", A.scope), ("b", B.scope), ("admin", None)):
        key_ids[who], tokens[who] = await make_key(app.registry_db, scope, who)
    fields = {"sink_group_id": f"{app.topic}-sink", **settings}
    with running_api(app.registry_db, api_settings(app.bootstrap, app.topic, **fields)) as server:
        yield Api(app, server, tokens, key_ids)
