"""The console's server-side checks, with plain HTTP (no browser): sessions, cookies,
CSRF, admin-only pages and actions, and that one tenant's key sees nothing of another's."""

from __future__ import annotations

import httpx
import orjson

from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from support.api import A, Api, B
from support.console_http import console_client, csrf_of, log_in_http


async def test_login_sets_a_strict_httponly_session_and_refuses_bad_keys(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.server.url, timeout=30) as http:
        first = await http.get("/console/routes")
        assert first.status_code == 303
        assert first.headers["location"].startswith("/console/login")
        form = await http.get("/console/login")
        bad = await http.post(
            "/console/login",
            data={"api_key": "spk_000000000000_" + "x" * 43, "csrf": csrf_of(form.text)},
        )
        assert bad.status_code == 401
        assert "The API key is not valid." in bad.text
        no_csrf = await http.post("/console/login", data={"api_key": api.tokens["a"]})
        assert no_csrf.status_code == 403
        ok = await http.post(
            "/console/login", data={"api_key": api.tokens["a"], "csrf": csrf_of(form.text)}
        )
        assert ok.status_code == 303
        cookie = next(
            v for k, v in ok.headers.multi_items() if k == "set-cookie" and "spine_console=" in v
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/console" in cookie
        # The key itself never reaches the page.
        home = await http.get("/console")
        assert api.tokens["a"] not in home.text


async def test_a_scoped_key_sees_only_its_own_tenant(api: Api) -> None:
    ids_a = api.emit(A, "orders-a", 2)
    api.emit(B, "orders-b", 2)
    await api.app.wait_stored(A, "orders-a", 2)
    await api.app.wait_stored(B, "orders-b", 2)
    async with console_client(api) as http:
        await log_in_http(http, api, "b")
        streams = await http.get("/console/streams")
        assert "orders-b" in streams.text
        assert "orders-a" not in streams.text
        other = await http.get("/console/streams/orders-a")
        assert other.status_code == 200
        assert ids_a[0] not in other.text
        event = await http.get(f"/console/events/{ids_a[0]}")
        assert event.status_code == 404
        routes = await http.get("/console/routes")
        assert "t_beta" in routes.text
        assert "t_alpha" not in routes.text
        audit = await http.get(
            "/console/audit", params={"verify": "1", "tenant_id": "t_alpha", "stream": "audit"}
        )
        # The scope fields are fixed to the key's own: the answer is t_beta's chain.
        assert "t_beta" in audit.text
        assert "t_alpha" not in audit.text
        for path in ("/console/lag", "/console/lag.json", "/console/dlq", "/console/dlq/0/0"):
            refused = await http.get(path)
            assert refused.status_code == 403, path
            assert "needs an admin key" in refused.text
        live = await http.get("/console/streams/orders-a/live", params={"tenant_id": "t_alpha"})
        assert live.status_code == 403


def _switch_form(config: str, reason: str) -> dict[str, str]:
    """The route switch form for t_alpha's event_spine route to SQLite (``config`` JSON)."""
    return {
        "kind": "event_spine",
        "tenant_id": "t_alpha",
        "env": A.env,
        "project_id": A.project_id,
        "mode": A.mode,
        "backend": "sqlite",
        "config": config,
        "reason": reason,
    }


async def test_admin_actions_need_an_admin_key_and_a_csrf_token(api: Api) -> None:
    kept = await api.app.registry.get_route(
        RouteKey(ResourceKind.EVENT_SPINE, "t_alpha", A.env, A.project_id, A.mode)
    )
    async with console_client(api) as http:
        await log_in_http(http, api, "a")
        page = await http.get("/console/routes")
        csrf = csrf_of(page.text)
        fields = _switch_form("{}", "x")
        refused = await http.post("/console/routes/switch", data={**fields, "csrf": csrf})
        assert refused.status_code == 403
        replay = await http.post("/console/dlq/replay", data={"letter": "0:0", "csrf": csrf})
        assert replay.status_code == 403
    async with console_client(api) as admin:
        await log_in_http(admin, api, "admin")
        forged = await admin.post("/console/routes/switch", data=fields)
        assert forged.status_code == 403
        assert "CSRF" in forged.text
        page = await admin.get("/console/routes")
        bad = await admin.post(
            "/console/routes/switch",
            data={**fields, "config": "{not json", "csrf": csrf_of(page.text)},
        )
        assert bad.status_code == 400
        assert "`config`" in bad.text
        # Admin keys read no events (as in the API): the streams page says so.
        streams = await admin.get("/console/streams")
        assert streams.status_code == 403
    route = await api.app.registry.get_route(
        RouteKey(ResourceKind.EVENT_SPINE, "t_alpha", A.env, A.project_id, A.mode)
    )
    assert (route.backend_type, route.history) == (kept.backend_type, kept.history)


async def test_logout_ends_the_session(api: Api) -> None:
    async with console_client(api) as http:
        await log_in_http(http, api, "a")
        home = await http.get("/console")
        out = await http.post("/console/logout", data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303
        again = await http.get("/console/streams")
        assert again.status_code == 303


async def test_an_admin_verifying_a_malformed_scope_gets_one_line(api: Api) -> None:
    async with console_client(api) as admin:
        await log_in_http(admin, api, "admin")
        bad = await admin.get(
            "/console/audit",
            params={"verify": "1", "tenant_id": "NOT A TENANT", "env": "dev", "project_id": "p"},
        )
        assert bad.status_code == 400
        assert "tenant_id" in bad.text


async def test_a_switch_that_would_strand_readers_is_refused_as_the_cli_does(api: Api) -> None:
    reads = ResourceRoute.for_scope(
        A, "event_stream", "sqlite", {"path": str(api.app.tmp / "readers.db")}
    )
    await api.app.registry.set_route(reads, actor="test")
    fields = _switch_form(orjson.dumps({"path": str(api.app.tmp / "new.db")}).decode(), "try")
    async with console_client(api) as admin:
        await log_in_http(admin, api, "admin")
        csrf = csrf_of((await admin.get("/console/routes")).text)
        refused = await admin.post("/console/routes/switch", data={**fields, "csrf": csrf})
        assert refused.status_code == 400
        assert "no longer receives events" in refused.text
        crafted = await admin.post(
            "/console/routes/switch", data={**fields, "tenant_id": "NOT VALID", "csrf": csrf}
        )
        assert crafted.status_code in (400, 404)
        assert "Traceback" not in crafted.text
        moved = await admin.post(
            "/console/routes/switch", data={**fields, "readers": "move", "csrf": csrf}
        )
        assert moved.status_code == 303
    for kind in ("event_spine", "event_stream"):
        route = await api.app.registry.get_route(
            RouteKey(ResourceKind(kind), "t_alpha", A.env, A.project_id, A.mode)
        )
        assert route.config == {"path": str(api.app.tmp / "new.db")}, kind
