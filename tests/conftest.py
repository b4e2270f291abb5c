"""Session-wide real servers and helpers. No broker or backend is mocked."""

from __future__ import annotations

import logging
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
from support.s3 import moto_s3


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    """One local Tansu broker for the whole session (topics are unique per test)."""
    with TansuBroker() as running:
        yield running


@pytest.fixture
def s3_storage() -> Iterator[dict[str, str]]:
    """A local S3 for a Tansu broker whose data must survive its restart."""
    with moto_s3() as env:
        yield env


@pytest.fixture(autouse=True)
def _drop_leaked_log_handlers() -> Iterator[None]:
    """CLI tests run `configure_logging` in-process, which points the root logger at
    the runner's captured stderr; once the runner closes it, a later test's warning
    would hit a closed file. Drop handlers a test added (pytest's own come and go per
    phase) and restore the root level."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)
