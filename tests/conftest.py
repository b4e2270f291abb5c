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

from support import brokers
from support.s3 import moto_s3
from support.tls import Pki, make_pki

#: The broker-facing suites: they run on every broker available (support/brokers.py);
#: the rest of the tests use the local Tansu only.
BROKER_SUITES = (
    "producers/test_producer.py",  # producer contract
    "pipeline/test_round_trip.py",  # sink pipeline
    "pipeline/test_dlq.py",  # DLQ
    "replay/test_replay.py",  # replay
    "subscriptions/test_subscribe.py",  # subscribe / spine tail
    "observability/test_worker_endpoints.py",  # lag and readiness
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the broker-facing suites on each broker that can run here (ids: [tansu],
    [kafka], ...). Brokers that cannot are left out, not skipped test by test:
    tests/security/test_real_kafka.py skips with the one line saying how to run them."""
    names = brokers.available()
    path = Path(str(metafunc.definition.fspath)).as_posix()
    if len(names) > 1 and "broker" in metafunc.fixturenames and path.endswith(BROKER_SUITES):
        metafunc.parametrize("broker", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's test CA, its server/client/wrong-host certificates, a second CA."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, pki: Pki) -> Iterator[brokers.BrokerUnderTest]:
    """One broker for the whole session (topics are unique per test): the local Tansu,
    or, for the broker-facing suites, each of Apache Kafka, Redpanda and an external
    cluster where they can run."""
    with brokers.start(getattr(request, "param", "tansu"), pki) as under_test:
        yield under_test


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
