"""deploy/grafana and deploy/prometheus: the dashboard and the rules read real metrics.

- Every metric a dashboard panel, a template variable or a rule names is one the code
  exports, checked against a live scrape: a real sink worker's /metrics (after events
  were stored and dead-lettered, so the labelled series exist) and a real producer's
  ``ProducerCollector`` served over HTTP (producers run inside applications, which
  serve it themselves). The label names they use exist on those series.
- The dashboard JSON is well formed: each panel has the datasource variable, a unit,
  and targets with an expression.
- The rules file is checked structurally here (always), and by ``promtool check rules``
  and ``promtool test rules`` (deploy/prometheus/tests) when promtool is installed
  (``scripts/install-promtool.sh``, run by ``./run test``).
- compose.yaml mounts the rules into Prometheus and provisions Grafana with both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from event_spine.observability import HealthServer, ProducerCollector
from event_spine.observability.metrics import CONTENT_TYPE
from event_spine.sink_workers import SinkWorker
from support.http import http_get
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
)
from support.promql import PromQLSyntaxError, names
from support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
OPERATIONS = ROOT / "docs" / "operations.md"

# Series Prometheus makes itself for every target, and labels it attaches.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance", "component"}
# What the brief and docs/operations.md promise an operator.
EXPECTED_ALERTS = {
    "SpineSinkConsumerLagGrowing",
    "SpineSinkEventsLate",
    "SpineSinkNoWritesWhileLagging",
    "SpineSinkDeadLettersHigh",
    "SpineSinkWorkerNotReady",
    "SpineSinkWorkerDown",
    "SpineProducerDropping",
    "SpineProducerSpilling",
    "SpineProducerDisconnected",
}
ROUTED, UNROUTED = 20, 3


# --- the live scrape ---------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """Sample names (``_total``, ``_bucket``... included) and their label names."""

    labels: dict[str, set[str]]

    @classmethod
    def parse(cls, *texts: str) -> Exported:
        labels: dict[str, set[str]] = {}
        for text in texts:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels.setdefault(sample.name, set()).update(sample.labels)
        return cls(labels)


@pytest.fixture(scope="module")
async def exported(
    broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exported]:
    """Scrape a worker that stored and dead-lettered events, and a producer that sent them."""
    tmp = tmp_path_factory.mktemp("scrape")
    topic = await new_topic(broker.bootstrap_servers, partitions=2)
    registry = await registry_at(tmp / "registry.db")
    routed, unrouted = ctx(), ctx(tenant="t_nobody")
    await route_to_sqlite(registry, routed, tmp / "events.db")
    worker = SinkWorker(sink_settings(broker.bootstrap_servers, topic, tmp / "registry.db"))
    producer = producer_for(broker.bootstrap_servers, topic)
    producer_registry = CollectorRegistry()
    producer_registry.register(ProducerCollector(lambda: producer.stats, topic))

    async def producer_metrics() -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE, generate_latest(producer_registry)

    app_server = HealthServer({"/metrics": producer_metrics}, host="127.0.0.1", port=0)
    await worker.start()
    await app_server.start()
    try:
        for n in range(ROUTED):
            producer.emit_event(routed, "e", f"s{n % 4}", {"n": n})
        for n in range(UNROUTED):
            producer.emit_event(unrouted, "e", "s0", {"n": n})
        assert producer.flush(30)
        await wait_until(lambda: worker.stats.written == ROUTED, 30, message="stored")
        await wait_until(
            lambda: sum(worker.stats.dead_lettered.values()) == UNROUTED, 30, message="DLQ"
        )
        assert worker.endpoints.server is not None
        port = worker.endpoints.server.port

        async def lag_reported() -> bool:
            return "spine_sink_consumer_lag{" in (await http_get(port, "/metrics"))[1]

        await wait_until(lag_reported, 30, message="lag series of the owned partitions")
        status, worker_text = await http_get(port, "/metrics")
        assert status == 200
        status, producer_text = await http_get(app_server.port, "/metrics")
        assert status == 200
        yield Exported.parse(worker_text, producer_text)
    finally:
        await app_server.stop()
        await worker.stop()
        producer.close()
        await registry.store.close()


# --- what the dashboard and the rules read ------------------------------------------


def _dashboards() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _rule_files() -> dict[Path, dict[str, Any]]:
    return {path: yaml.safe_load(path.read_text()) for path in sorted(RULES_DIR.glob("*.yml"))}


def _rules() -> Iterator[dict[str, Any]]:
    for doc in _rule_files().values():
        for group in doc["groups"]:
            yield from group["rules"]


def _recorded() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<expr>.+),)?\s*(?P<label>\w+)\s*\)\s*$")


def _expressions() -> list[tuple[str, str, set[str]]]:
    """(where, PromQL, extra label names) for every expression in the deploy files."""
    out: list[tuple[str, str, set[str]]] = []
    for path, dashboard in _dashboards().items():
        out.extend(
            (f"{path.name}: panel {panel['title']!r}", target["expr"], set())
            for panel in _panels(dashboard)
            for target in panel.get("targets", [])
        )
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = _LABEL_VALUES.match(query)
            assert m, f"{path.name}: variable {var['name']}: use label_values(metric, label)"
            assert m["expr"], f"{path.name}: variable {var['name']}: name the metric"
            out.append((f"{path.name}: variable {var['name']}", m["expr"], {m["label"]}))
    for path, doc in _rule_files().items():
        for group in doc["groups"]:
            for rule in group["rules"]:
                where = f"{path.name}: {rule.get('alert') or rule.get('record')}"
                out.append((where, rule["expr"], set()))
    return out


def test_the_lexer_tells_metrics_from_functions_labels_and_keywords() -> None:
    found = names(
        "histogram_quantile(0.99, sum by (backend, le) (rate(spine_sink_write_seconds_bucket"
        '{instance=~"$instance", topic!="a{b}"}[$__rate_interval] offset 5m)))'
        " / on (topic) group_left (reason) x:y:z > bool 1e3 and up unless Inf"
    )
    assert found.metrics == {"spine_sink_write_seconds_bucket", "x:y:z", "up"}
    assert found.labels == {"backend", "le", "instance", "topic", "reason"}
    assert found.functions == {"histogram_quantile", "sum", "rate"}
    with pytest.raises(PromQLSyntaxError, match="unknown function 'rat'"):
        names("rat(spine_sink_records_total[5m])")
    with pytest.raises(PromQLSyntaxError, match="unbalanced"):
        names('spine_sink_ready{instance="a"')


def test_every_metric_and_label_named_is_exported(exported: Exported) -> None:
    # A recorded series keeps the labels its name's level lists (Prometheus' naming
    # convention, level:metric:operations): topic_stage:... has topic and stage.
    recorded = {name: set(name.split(":", 1)[0].split("_")) for name in _recorded()}
    known = exported.labels | recorded | PROMETHEUS_SERIES
    problems: list[str] = []
    expressions = _expressions()
    assert len(expressions) > 20, "no dashboard or rules found"
    for where, expr, extra_labels in expressions:
        found = names(expr)
        if not found.metrics:
            problems.append(f"{where}: reads no metric: {expr}")
        missing = found.metrics - set(known)
        problems += [f"{where}: {name} is not exported" for name in sorted(missing)]
        available = set().union(*(known.get(m, set()) for m in found.metrics)) | TARGET_LABELS
        available |= {"le"} if any(m.endswith("_bucket") for m in found.metrics) else set()
        unknown = (found.labels | extra_labels) - available
        problems += [
            f"{where}: label {label!r} is on none of {sorted(found.metrics)}"
            for label in sorted(unknown)
        ]
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_documented(exported: Exported) -> None:
    text = OPERATIONS.read_text()
    section = text[text.index("## Dashboards and alerts") :]
    suffixes = re.compile(r"_(total|created|bucket|sum|count)$")
    families = {suffixes.sub("", name) for name in exported.labels}
    missing = sorted(f for f in families if f"`{f}" not in section)
    assert not missing, f"not in docs/operations.md, Dashboards and alerts: {missing}"


def test_the_scrape_holds_the_labelled_series_the_panels_need(exported: Exported) -> None:
    # Without these the test above would pass on names alone.
    assert exported.labels["spine_sink_dead_letters_total"] == {"topic", "reason"}
    assert exported.labels["spine_sink_consumer_lag"] == {"topic", "partition"}
    assert exported.labels["spine_sink_write_seconds_bucket"] == {"backend", "le"}
    assert "spine_producer_events_dropped_total" in exported.labels


# --- the dashboard -------------------------------------------------------------------


def test_dashboards_are_valid_and_every_panel_has_a_datasource_and_unit() -> None:
    dashboards = _dashboards()
    assert dashboards, "no dashboard in deploy/grafana/dashboards"
    for path, dashboard in dashboards.items():
        assert re.fullmatch(r"[\w-]{1,40}", dashboard["uid"]), f"{path.name}: uid"
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in _panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in _panels(dashboard):
            where = f"{path.name}: panel {panel.get('title')!r}"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, where
            assert min(grid["w"], grid["h"]) > 0, where
            if panel["type"] == "row":
                continue
            assert panel["title"], where
            assert panel.get("description"), f"{where}: no description"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs, f"{where}: no target"
            assert len(refs) == len(set(refs)), f"{where}: refIds repeat"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{where}: empty expression"
                assert target["datasource"] == panel["datasource"], where


def test_dashboard_covers_what_operators_asked_for() -> None:
    read = {
        m
        for dashboard in _dashboards().values()
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        for m in names(target["expr"]).metrics
    }
    for metric in (
        "spine_sink_events_written_total",  # throughput
        "spine_sink_consumer_lag",  # lag per partition
        "spine_sink_write_seconds_bucket",  # write latency
        "spine_sink_dead_letters_total",  # DLQ by reason
        "spine_producer_buffer_depth",
        "spine_producer_spill_bytes",
        "spine_producer_events_dropped_total",
        "spine_producer_events_spilled_total",
        "spine_sink_route_cache_hits_total",
        "spine_sink_route_cache_misses_total",
    ):
        assert metric in read, f"no panel reads {metric}"


# --- the rules -----------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_RECORD_NAME = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_rule_files_are_well_formed() -> None:
    files = _rule_files()
    assert files, "no rules in deploy/prometheus/rules"
    anchors = _anchors(OPERATIONS.read_text())
    groups = [g["name"] for doc in files.values() for g in doc["groups"]]
    assert len(groups) == len(set(groups)), "rule group names repeat"
    for doc in files.values():
        assert set(doc) == {"groups"}
        for group in doc["groups"]:
            assert set(group) <= {"name", "interval", "rules", "limit"}, group["name"]
            assert group["rules"], f"group {group['name']} is empty"
            if "interval" in group:
                assert _DURATION.match(group["interval"]), group["name"]
    alerts: list[str] = []
    for rule in _rules():
        if "record" in rule:
            assert set(rule) <= {"record", "expr", "labels"}, rule["record"]
            assert _RECORD_NAME.match(rule["record"]), f"{rule['record']}: level:metric:ops"
            continue
        name = rule["alert"]
        alerts.append(name)
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        if "for" in rule:
            assert _DURATION.match(rule["for"]), f"{name}: for"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        notes = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(notes), name
        assert "`" in notes["description"], f"{name}: the description names no first command"
        doc, _, anchor = notes["runbook_url"].partition("#")
        assert doc == "docs/operations.md", f"{name}: {notes['runbook_url']}"
        assert anchor in anchors, f"{name}: no section #{anchor} in docs/operations.md"
        assert anchor == name.lower(), f"{name}: runbook anchor"
    assert len(alerts) == len(set(alerts)), "alert names repeat"
    assert set(alerts) == EXPECTED_ALERTS


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: run scripts/install-promtool.sh (./run test does)")
    return promtool


def test_promtool_checks_the_rules() -> None:
    promtool = _promtool()
    files = [str(p) for p in _rule_files()]
    done = subprocess.run(
        [promtool, "check", "rules", *files],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # rule_files name the container path; promtool resolves the glob to nothing there.
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_alerts_pass(tmp_path: Path) -> None:
    """deploy/prometheus/tests against the rules without annotations (compared exactly
    by promtool; their content is checked in test_rule_files_are_well_formed)."""
    promtool = _promtool()
    (tmp_path / "rules").mkdir()
    for path, doc in _rule_files().items():
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
        (tmp_path / "rules" / path.name).write_text(yaml.safe_dump(doc))
    shutil.copytree(RULE_TESTS, tmp_path / "tests")
    tests = sorted(p.name for p in (tmp_path / "tests").glob("*.yml"))
    assert tests
    done = subprocess.run(
        [promtool, "test", "rules", *tests],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path / "tests",
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- compose wiring ------------------------------------------------------------------


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    return services


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}


def test_compose_loads_the_rules_and_provisions_grafana() -> None:
    services = _services()
    prom_mounts = _mounts(services["prometheus"])
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    for pattern in config["rule_files"]:
        directory = str(Path(pattern).parent)
        assert prom_mounts.get(directory) == "./prometheus/rules", pattern
        assert list(RULES_DIR.glob(Path(pattern).name)), pattern

    grafana = services["grafana"]
    assert re.fullmatch(r"grafana/grafana(-oss)?:\d+\.\d+\.\d+", grafana["image"]), "pin Grafana"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "event-spine.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert mounts[path] == "./grafana/dashboards"
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    source = sources["datasources"][0]
    prom_port = services["prometheus"]["ports"][0].split(":")[1]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{prom_port}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent.as_posix() == path
    assert (DASHBOARDS / Path(home).name).exists()
