"""The HTTP API over a real uvicorn on a loopback port: reads, emits, auth, problems."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from openapi_spec_validator import validate

from event_spine.api.problems import MEDIA_TYPE, PROBLEM_BASE
from support.api import A, Api, B, started_api
from support.cli import invoke
from support.pipeline import ctx
from support.waiting import wait_until

STREAM = "orders/o_1"
NO_SUCH = "/v1/events/00000000-0000-4000-8000-000000000000"


async def run_cli(args: list[str]):
    return await asyncio.to_thread(invoke, args)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_openapi_document_is_valid(api: Api) -> None:
    async with api.client(None) as http:
        response = await http.get("/v1/openapi.json")
    assert response.status_code == 200
    validate(response.json())


async def test_emit_then_page_every_event_with_opaque_cursors(api: Api) -> None:
    async with api.client("a") as http:
        ids = []
        for i in range(25):
            response = await http.post(
                "/v1/events",
                json={"event_type": "order.placed", "stream_id": STREAM, "payload": {"seq": i}},
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["event_id"])
        await api.app.wait_stored(A, STREAM, 25)
        seen: list[dict] = []
        cursor = None
        while True:
            params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
            page = (await http.get(f"/v1/streams/{STREAM}/events", params=params)).json()
            seen.extend(page["events"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [e["event_id"] for e in seen] == ids
        assert [e["payload"]["seq"] for e in seen] == list(range(25))
        assert all(e["routing"]["tenant_id"] == A.tenant_id for e in seen)

        # Descending, and a slash sent escaped reaches the same stream.
        desc = (
            await http.get("/v1/streams/orders%2Fo_1/events", params={"order": "desc", "limit": 3})
        ).json()
        assert [e["event_id"] for e in desc["events"]] == ids[::-1][:3]

        one = await http.get(f"/v1/events/{ids[7]}")
        assert one.status_code == 200
        assert one.json()["payload"] == {"seq": 7}

        streams = (await http.get("/v1/streams")).json()
        assert [s["stream_id"] for s in streams["streams"]] == [STREAM]
        assert streams["streams"][0]["last_event_id"] == ids[-1]

        counts = (await http.get(f"/v1/streams/{STREAM}/counts")).json()
        assert counts["counts"] == {"order.placed": 25}


async def test_invalid_requests_get_a_problem_naming_the_parameter(api: Api) -> None:
    async with api.client("a") as http:
        bad_limit = await http.get(f"/v1/streams/{STREAM}/events", params={"limit": 0})
        assert assert_problem(bad_limit, 400, "invalid-parameter")["parameter"] == "limit"
        naive = await http.get(f"/v1/streams/{STREAM}/events", params={"since": "2026-01-01T00:00"})
        assert assert_problem(naive, 400, "invalid-parameter")["parameter"] == "since"
        garbled = await http.get(f"/v1/streams/{STREAM}/events", params={"cursor": "nope"})
        assert assert_problem(garbled, 400, "invalid-parameter")["parameter"] == "cursor"
        bad_event = await http.post(
            "/v1/events", json={"event_type": "9bad", "stream_id": STREAM, "payload": {}}
        )
        assert assert_problem(bad_event, 422, "invalid-event")["field"] == "event_type"
        extra = await http.post(
            "/v1/events",
            json={"event_type": "a.b", "stream_id": STREAM, "payload": {}, "tenant_id": "t_x"},
        )
        assert_problem(extra, 422, "invalid-event")
        assert_problem(await http.get("/v1/nowhere"), 404, "not-found")
        assert_problem(await http.delete("/v1/streams"), 405, "method-not-allowed")
        huge = {"event_type": "a.b", "stream_id": STREAM, "payload": {"x": "y" * 1_100_000}}
        assert_problem(await http.post("/v1/events", json=huge), 413, "too-large")
        long_id = await http.get(NO_SUCH, headers={"X-Request-ID": "r" * 300})
        assert assert_problem(long_id, 400, "invalid-parameter")["parameter"] == "X-Request-ID"
        assert_problem(await http.get(f"/v1/events/{'0' * 36}"), 400, "invalid-parameter")


async def test_no_key_a_bad_key_and_a_revoked_key_get_401(api: Api) -> None:
    async with api.client(None) as http:
        assert_problem(await http.get(NO_SUCH), 401, "unauthenticated")
        forged = "spk_" + api.key_ids["a"] + "_" + "x" * 43
        response = await http.get(NO_SUCH, headers={"Authorization": f"Bearer {forged}"})
        assert_problem(response, 401, "unauthenticated")
    async with api.client("b") as http:
        assert_problem(await http.get(NO_SUCH), 404, "not-found")  # authenticated
        result = await asyncio.to_thread(
            invoke,
            ["keys", "revoke", api.key_ids["b"], "--registry", f"sqlite:{api.app.registry_db}"],
        )
        assert result.code == 0, result.err
        body = assert_problem(await http.get(NO_SUCH), 401, "unauthenticated")
        assert "revoked" in body["detail"]


async def test_every_endpoint_refuses_other_tenants(api: Api) -> None:
    b_ids = api.emit(B, STREAM, 3)
    a_ids = api.emit(A, "orders/mine", 2)
    await api.app.wait_stored(B, STREAM, 3)
    await api.app.wait_stored(A, "orders/mine", 2)
    other = {"tenant_id": B.tenant_id}
    async with api.client("a") as http:
        # Naming another scope: 403 on every event route.
        for method, path in [
            ("GET", "/v1/streams"),
            ("GET", f"/v1/streams/{STREAM}/events"),
            ("GET", f"/v1/streams/{STREAM}/counts"),
            ("GET", f"/v1/streams/{STREAM}/live"),
            ("GET", f"/v1/events/{b_ids[0]}"),
            ("POST", "/v1/events"),
        ]:
            response = await http.request(
                method,
                path,
                params=other,
                json={"event_type": "a.b", "stream_id": "s", "payload": {}},
            )
            assert_problem(response, 403, "forbidden")
        # Another tenant's data by id or stream: not there for this key.
        assert_problem(await http.get(f"/v1/events/{b_ids[0]}"), 404, "not-found")
        page = (await http.get(f"/v1/streams/{STREAM}/events")).json()
        assert page["events"] == []
        counts = (await http.get(f"/v1/streams/{STREAM}/counts")).json()
        assert counts["counts"] == {}
        streams = (await http.get("/v1/streams")).json()["streams"]
        assert [s["stream_id"] for s in streams] == ["orders/mine"]
        # A cursor another tenant got is refused, not read.
        async with api.client("b") as http_b:
            b_page = (await http_b.get(f"/v1/streams/{STREAM}/events", params={"limit": 1})).json()
        assert b_page["next_cursor"]
        stolen = await http.get(
            f"/v1/streams/{STREAM}/events", params={"cursor": b_page["next_cursor"]}
        )
        assert_problem(stolen, 403, "forbidden")
        # Scoped keys never reach admin routes.
        for path in ("/v1/admin/routes", "/v1/admin/dlq", "/v1/admin/lag"):
            assert_problem(await http.get(path), 403, "forbidden")
        assert (await http.get(f"/v1/events/{a_ids[0]}")).status_code == 200
    async with api.client("admin") as http:
        # An admin key reads no tenant's events.
        assert_problem(await http.get(f"/v1/events/{b_ids[0]}"), 403, "forbidden")
        assert_problem(await http.get("/v1/streams"), 403, "forbidden")


async def test_admin_routes_history_dead_letters_and_lag(api: Api) -> None:
    api.emit(A, STREAM, 5)
    await api.app.wait_stored(A, STREAM, 5)
    async with api.client("admin") as http:
        routes = (await http.get("/v1/admin/routes")).json()["routes"]
        assert {r["tenant_id"] for r in routes} == {A.tenant_id, B.tenant_id}
        history = await http.get(
            "/v1/admin/routes/history",
            params={
                "tenant_id": A.tenant_id,
                "env": A.env,
                "project_id": A.project_id,
                "mode": A.mode,
            },
        )
        assert history.status_code == 200, history.text
        assert isinstance(history.json()["history"], list)
        missing = await http.get(
            "/v1/admin/routes/history",
            params={"tenant_id": "t_none", "env": "dev", "project_id": "p_x", "mode": "lab"},
        )
        assert_problem(missing, 404, "not-found")
        dlq = await http.get("/v1/admin/dlq")
        assert dlq.status_code == 200, dlq.text
        assert dlq.json()["dead_letters"] == []

        async def caught_up() -> bool:
            lag = (await http.get("/v1/admin/lag")).json()
            return (
                lag["total_lag"] == 0 and sum(p["high_watermark"] for p in lag["partitions"]) >= 5
            )

        await wait_until(caught_up, 30, message="the sink group's lag reported as 0")


async def test_admin_dead_letters_come_in_bounded_pages(api: Api) -> None:
    unrouted = ctx("t_unrouted")
    ids = api.emit(unrouted, STREAM, 5)  # no route: the sink dead-letters each one
    await wait_until(lambda: api.app.workers[0].stats.dead_lettered.get("route_missing") == 5, 30)
    async with api.client("admin") as http:
        seen: list[dict] = []
        params: dict[str, str] = {"limit": "2"}
        while True:
            page = (await http.get("/v1/admin/dlq", params=params)).json()
            assert page["order"] == "newest_first"
            assert len(page["dead_letters"]) <= 2
            seen += page["dead_letters"]
            if page["next"] is None:
                break
            params = {"limit": "2", **page["next"]}
        assert [x["offset"] for x in seen] == [4, 3, 2, 1, 0]
        assert [orjson.loads(x["value"]["text"])["event_id"] for x in seen] == ids[::-1]
        forward = (await http.get("/v1/admin/dlq", params={"from": "0:1", "limit": "3"})).json()
        assert forward["order"] == "oldest_first"
        assert [x["offset"] for x in forward["dead_letters"]] == [1, 2, 3]
        assert forward["next"] == {"from": "0:4"}
        for bad in ({"before": "x"}, {"from": "0:1", "before": "0:2"}, {"from": "9:0"}):
            name = "from" if bad.keys() == {"from"} else "before"
            body = assert_problem(
                await http.get("/v1/admin/dlq", params=bad), 400, "invalid-parameter"
            )
            assert name in body["detail"], body


async def test_rate_limit_per_key(pipeline) -> None:
    async with (
        started_api(pipeline, rate_per_s=0.5, rate_burst=3) as api,
        api.client("a") as http,
        api.client("b") as other,
    ):
        statuses = [(await http.get(NO_SUCH)).status_code for _ in range(4)]
        assert statuses == [404, 404, 404, 429]
        limited = await http.get(NO_SUCH)
        body = assert_problem(limited, 429, "rate-limited")
        assert int(limited.headers["Retry-After"]) >= 1
        assert api.key_ids["a"] in body["detail"]
        # Another key has its own bucket.
        assert (await other.get(NO_SUCH)).status_code == 404


async def test_keys_cli_create_list_revoke(tmp_path) -> None:
    registry = f"sqlite:{tmp_path / 'registry.db'}"
    made = await run_cli(["routes", "list", "--registry", registry, "--create"])
    assert made.code == 0, made.err
    created = await run_cli(
        [
            "keys",
            "create",
            "--registry",
            registry,
            "--name",
            "ui",
            "--tenant",
            "t_alpha",
            "--env",
            "dev",
            "--mode",
            "lab",
            "--project",
            "p_core",
        ]
    )
    assert created.code == 0, created.err
    token = created.out.strip().splitlines()[-1]
    assert token.startswith("spk_")
    listed = await run_cli(["keys", "list", "--registry", registry])
    assert "t_alpha" in listed.out
    assert "active" in listed.out
    assert token[17:] not in listed.out  # the secret is never shown again
    key_id = token.split("_")[1]
    assert (await run_cli(["keys", "revoke", key_id, "--registry", registry])).code == 0
    again = await run_cli(["keys", "revoke", key_id, "--registry", registry])
    assert again.code == 2
    assert "KEY_ID" in again.err
    half = await run_cli(
        ["keys", "create", "--registry", registry, "--name", "x", "--tenant", "t_a"]
    )
    assert half.code == 2
    assert "--project" in half.err
