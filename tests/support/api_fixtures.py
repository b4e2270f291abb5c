"""The fixtures tests/api and tests/console share: an app pipeline (broker topic,
SQLite routes, a sink worker) and `spine serve` over it, with keys for tenants
t_alpha (a), t_beta (b) and an admin key. A conftest imports both names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.api import Api, started_api
from support.app import App, running_app


@pytest.fixture
async def pipeline(broker, tmp_path) -> AsyncIterator[App]:
    async with running_app(broker.bootstrap_servers, tmp_path) as running:
        await running.start_worker()
        yield running


@pytest.fixture
async def api(pipeline: App) -> AsyncIterator[Api]:
    async with started_api(pipeline) as running:
        yield running
