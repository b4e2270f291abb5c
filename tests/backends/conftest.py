"""Fixtures shared by the backend suites."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.stores import OpenedStores


@pytest.fixture
async def opened() -> AsyncIterator[OpenedStores]:
    """Stores opened through it are closed at teardown."""
    tracker = OpenedStores()
    yield tracker
    await tracker.close()
