"""Latency profiles: one setting resolves to the documented values; explicit settings win."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from event_spine.cli.main import app
from event_spine.producers.settings import ProducerSettings
from event_spine.profiles import PRODUCER_PROFILES, PROFILE_ENV, SINK_PROFILES
from event_spine.sink_workers.settings import SinkSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SINK = {"bootstrap_servers": "127.0.0.1:9", "registry_backend": "sqlite", "registry_config": {}}
PRODUCER = {"bootstrap_servers": "127.0.0.1:9"}


@pytest.fixture(autouse=True)
def _no_profile_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (PROFILE_ENV, "SPINE_SINK_PROFILE", "SPINE_PRODUCER_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def _sink(**kw: object) -> SinkSettings:
    return SinkSettings(**(SINK | kw))  # type: ignore[arg-type]


def _producer(**kw: object) -> ProducerSettings:
    return ProducerSettings(**(PRODUCER | kw))  # type: ignore[arg-type]


def test_the_default_profile_is_throughput_with_the_fields_defaults() -> None:
    sink, producer = _sink(), _producer()
    assert sink.profile == producer.profile == "throughput"
    for name, value in SINK_PROFILES["throughput"].items():
        assert getattr(sink, name) == value == SinkSettings.model_fields[name].default
    for name, value in PRODUCER_PROFILES["throughput"].items():
        assert getattr(producer, name) == value == ProducerSettings.model_fields[name].default


def test_low_latency_resolves_to_the_documented_values() -> None:
    sink, producer = _sink(profile="low_latency"), _producer(profile="low-latency")
    assert sink.profile == producer.profile == "low_latency"
    assert (sink.fetch_max_wait_ms, sink.batch_timeout_ms) == (25, 5)
    assert producer.linger_ms == 0
    # docs/operations.md carries the same table (one row per field).
    text = DOCS.read_text()
    for table in (SINK_PROFILES, PRODUCER_PROFILES):
        for name in table["throughput"]:
            row = f"| `{name}` | {table['throughput'][name]} | {table['low_latency'][name]} |"
            assert row in text, row


def test_one_variable_sets_both_components(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "low_latency")
    assert _sink().fetch_max_wait_ms == SINK_PROFILES["low_latency"]["fetch_max_wait_ms"]
    assert _producer().linger_ms == PRODUCER_PROFILES["low_latency"]["linger_ms"]


def test_explicit_settings_win_over_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "low_latency")
    monkeypatch.setenv("SPINE_SINK_BATCH_TIMEOUT_MS", "40")
    sink = _sink(fetch_max_wait_ms=20)
    assert (sink.profile, sink.fetch_max_wait_ms, sink.batch_timeout_ms) == ("low_latency", 20, 40)
    assert _producer(linger_ms=3).linger_ms == 3
    # A component's own profile variable wins over SPINE_PROFILE; an argument over both.
    monkeypatch.setenv("SPINE_PRODUCER_PROFILE", "throughput")
    assert _producer().linger_ms == PRODUCER_PROFILES["throughput"]["linger_ms"]
    assert _producer(profile="low_latency").linger_ms == 0


def test_an_unknown_profile_is_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="use throughput or low_latency"):
        _sink(profile="fast")
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(ValidationError, match="use throughput or low_latency"):
        _producer()


def test_config_show_reports_the_profile_and_its_values(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "SPINE_PROFILE=low-latency\nSPINE_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9\n"
        "SPINE_SINK_REGISTRY_BACKEND=sqlite\nSPINE_SINK_REGISTRY_CONFIG={}\n"
        "SPINE_SINK_FETCH_MAX_WAIT_MS=20\n"
    )
    runner = CliRunner()
    shown = {}
    for component in ("sink", "producer"):
        result = runner.invoke(app, ["config", "show", component, "--env-file", str(env_file)])
        assert result.exit_code == 0, result.output
        shown[component] = orjson.loads(result.output)
    assert shown["sink"]["profile"] == shown["producer"]["profile"] == "low_latency"
    assert (shown["sink"]["fetch_max_wait_ms"], shown["sink"]["batch_timeout_ms"]) == (20, 5)
    assert shown["producer"]["linger_ms"] == 0
