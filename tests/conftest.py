"""Session-wide real servers and helpers. No broker or backend is mocked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Test helpers import as top-level packages (support, servers, contract).
for path in (HERE, HERE / "backends"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from event_spine.broker.tansu import TansuBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    """One local Tansu broker for the whole session (topics are unique per test)."""
    with TansuBroker() as running:
        yield running
