"""Property-based fuzzing of the OpenAPI document (schemathesis): no 500 anywhere,
and every answer is one the document declares, in the shape it declares."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from event_spine.api.openapi import openapi_document
from support.api import A, Api, started_api
from support.app import App

# schemathesis' own strategies use `random` (hypothesis warns about it, not us).
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

#: Examples per operation: a short run (about 20 s for every operation here).
EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def run_operation(api: Api, operation: schemathesis.APIOperation, headers: dict[str, str]) -> None:
    """EXAMPLES generated requests to one operation, each checked."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=api.server.url, headers=headers, checks=CHECKS)

    check()


def fuzz(api: Api) -> list[str]:
    """Run every operation but the endless SSE one; returns the operations run."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/live"):
            continue  # an endless stream: covered by tests/api/test_sse.py
        token = api.tokens["admin" if operation.path.startswith("/v1/admin") else "a"]
        run_operation(api, operation, {"Authorization": f"Bearer {token}"})
        ran.append(f"{operation.method.upper()} {operation.path}")
    return ran


async def test_fuzzing_the_openapi_document_finds_no_server_error(pipeline: App) -> None:
    async with started_api(pipeline, rate_per_s=10_000, rate_burst=10_000) as api:
        api.emit(A, "orders/o_1", 5)
        await api.app.wait_stored(A, "orders/o_1", 5)
        ran = await asyncio.to_thread(fuzz, api)
        assert len(ran) == 9, ran  # every operation but the SSE one
