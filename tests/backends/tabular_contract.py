"""The TabularStore contract: one suite per backend.

A subclass provides ``open_tabular``: an async fixture returning an async callable
that opens a *new* client on the *same* data. ``durable = False`` skips restarts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from event_spine.backends import TabularStore
from support.events import OTHER_TENANT, SCOPE

OpenTabular = Callable[[], Awaitable[TabularStore]]


class TabularStoreContract:
    """Every tabular backend must pass these."""

    durable = True

    @pytest.fixture
    async def table(self, open_tabular: OpenTabular) -> TabularStore:
        return await open_tabular()

    async def test_put_get_replace_delete(self, table: TabularStore) -> None:
        value = {"name": "Zoë", "n": 1, "nested": {"list": [1, None, "x"]}}
        await table.put(SCOPE, "budgets", "b:1", value)
        assert await table.get(SCOPE, "budgets", "b:1") == value
        await table.put(SCOPE, "budgets", "b:1", {"n": 2})
        assert await table.get(SCOPE, "budgets", "b:1") == {"n": 2}
        assert await table.delete(SCOPE, "budgets", "b:1") is True
        assert await table.delete(SCOPE, "budgets", "b:1") is False
        assert await table.get(SCOPE, "budgets", "b:1") is None

    async def test_list_by_prefix_pages_in_key_order(self, table: TabularStore) -> None:
        keys = [f"user/{i:03d}" for i in range(25)] + ["other/1", "user-x"]
        for key in reversed(keys):
            await table.put(SCOPE, "people", key, {"k": key})
        got: list[str] = []
        after: str | None = None
        while True:
            page = await table.list_prefix(SCOPE, "people", "user/", after, 10)
            if not page:
                break
            got.extend(k for k, _ in page)
            after = page[-1][0]
        assert got == [f"user/{i:03d}" for i in range(25)]
        assert [v for _, v in await table.list_prefix(SCOPE, "people", "other/")] == [
            {"k": "other/1"}
        ]

    async def test_scopes_and_tables_are_isolated(self, table: TabularStore) -> None:
        await table.put(SCOPE, "t1", "k", {"v": 1})
        assert await table.get(OTHER_TENANT, "t1", "k") is None
        assert await table.get(SCOPE.model_copy(update={"mode": "saas"}), "t1", "k") is None
        assert await table.get(SCOPE, "t2", "k") is None
        assert await table.list_prefix(OTHER_TENANT, "t1") == []

    async def test_new_client_reads_rows_back(self, open_tabular: OpenTabular) -> None:
        if not self.durable:
            pytest.skip("this store keeps nothing across clients")
        writer = await open_tabular()
        await writer.put(SCOPE, "kv", "a", {"x": 1})
        await writer.close()
        reader = await open_tabular()
        assert await reader.get(SCOPE, "kv", "a") == {"x": 1}
