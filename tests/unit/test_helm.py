"""The Helm chart, linted and rendered by the real helm CLI (built by scripts/helm.sh) and every
rendered manifest validated against the Kubernetes schemas with kubernetes-validate; then the
facts a deployment relies on, read from the rendered output. No cluster and no Kafka needed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "o2c-streams"
PRODUCTION = CHART / "values-production.yaml"
# The chart's kubeVersion floor and the newest Kubernetes kubernetes-validate has schemas for.
KUBE_VERSIONS = ("1.29.0", "1.37.0")
# Custom resources have no schema in Kubernetes itself; they are checked by the facts below.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
VALUE_SETS = {"default": (), "production": (PRODUCTION,)}
# Metric names the team agreed on (prometheus-client exposes counters with `_total`).
METRICS = {
    "o2c_events_in_total", "o2c_dead_letters_total", "o2c_business_exceptions_total",
    "o2c_status_changes_total", "o2c_duplicate_events_total", "o2c_status_transitions_total",
    "o2c_orders_by_status", "o2c_atp_changes_total", "o2c_sla_breaches_total",
    "o2c_event_to_status_seconds", "o2c_consume_to_produce_seconds", "o2c_sink_deliveries_total",
    "o2c_sink_retries_total", "o2c_sink_failures_total", "o2c_sink_delivery_seconds",
    "o2c_table_recovery_seconds",
}


class RenderFailed(Exception):
    pass


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary; the first run builds it with `go install` (minutes), later runs reuse it."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "helm.sh")], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/helm.sh failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def helm_args(values: tuple[Path, ...], sets: tuple[str, ...], kube_version: str) -> list[str]:
    args = ["--kube-version", kube_version]
    for path in values:
        args += ["-f", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def render(
    helm: str, *values: Path, sets: tuple[str, ...] = (), kube_version: str = KUBE_VERSIONS[-1]
) -> list[dict]:
    proc = subprocess.run(
        [helm, "template", "o2c", str(CHART), "--namespace", "o2c",
         *helm_args(values, sets, kube_version)],
        capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        raise RenderFailed(proc.stderr)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def only(docs: list[dict], kind: str, component: str | None = None) -> dict:
    found = [
        d for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def worker(docs: list[dict]) -> dict:
    return only(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def secret_refs(container: dict) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def config_map(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)


def settings_data(docs: list[dict]) -> dict[str, str]:
    return config_map(docs, "o2c-o2c-streams-settings")["data"]


def volume_mounted_at(docs: list[dict], directory: Path) -> dict:
    """The pod volume the worker container mounts at `directory`."""
    mount = next(m for m in worker(docs)["volumeMounts"] if m["mountPath"] == str(directory))
    volumes = only(docs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == mount["name"])


# --------------------------------------------------------------------------- lint, render, validate


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_chart_lints_without_warnings(helm, value_set):
    proc = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *helm_args(VALUE_SETS[value_set], (), KUBE_VERSIONS[0])],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_manifest_is_valid_kubernetes(helm, value_set, kube_version):
    docs = render(helm, *VALUE_SETS[value_set], kube_version=kube_version)
    skipped = set()
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            skipped.add((doc["apiVersion"], doc["kind"]))
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")
    assert skipped == (CUSTOM_RESOURCES if value_set == "production" else set())


def test_validation_rejects_a_misspelt_field(helm):
    """Strict validation is what catches a typo in a template; make sure it is on."""
    statefulset = only(render(helm), "StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBE_VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------- what the default renders


def test_default_statefulset_keeps_state_on_a_volume_per_worker(helm):
    docs = render(helm)
    spec = only(docs, "StatefulSet")["spec"]
    assert spec["replicas"] == 1
    [claim] = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    container = spec["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env_of(container)["O2C_DATA_DIR"]["value"] == "/var/lib/o2c"


def test_without_persistence_state_lives_in_an_empty_dir(helm):
    docs = render(helm, sets=("persistence.enabled=false",))
    statefulset = only(docs, "StatefulSet")
    kubernetes_validate.validate(statefulset, KUBE_VERSIONS[-1], strict=True)
    assert "volumeClaimTemplates" not in statefulset["spec"]
    assert "persistentVolumeClaimRetentionPolicy" not in statefulset["spec"]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_workers_reach_each_other_by_stable_dns_names(helm):
    docs = render(helm)
    statefulset = only(docs, "StatefulSet")
    peers = only(docs, "Service", "peers")
    assert peers["spec"]["clusterIP"] == "None"
    assert peers["spec"]["publishNotReadyAddresses"] is True
    assert statefulset["spec"]["serviceName"] == peers["metadata"]["name"]
    container = worker(docs)
    env = env_of(container)
    assert env["O2C_WEB_CANONICAL_URL"]["value"] == (
        f"http://$(POD_NAME).{peers['metadata']['name']}.$(POD_NAMESPACE).svc.cluster.local:6066"
    )
    # $(VAR) expands only variables defined earlier in the list.
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_NAME") < names.index("O2C_WEB_CANONICAL_URL")
    assert names.index("POD_NAMESPACE") < names.index("O2C_WEB_CANONICAL_URL")
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["O2C_WEB_HOST"]["value"] == "0.0.0.0"
    assert peers["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]


def test_api_service_and_probes_use_the_workers_http_port(helm):
    docs = render(helm)
    container = worker(docs)
    [port] = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 6066)
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    api = only(docs, "Service", "api")
    assert api["spec"].get("clusterIP") != "None"
    assert api["spec"]["ports"][0]["targetPort"] == "http"


def test_workers_run_unprivileged(helm):
    docs = render(helm)
    pod = only(docs, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_user()
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]


def test_default_has_no_secret_references_and_no_monitoring_objects(helm):
    docs = render(helm)
    assert secret_refs(worker(docs)) == {}
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart never creates Secrets"
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert not [d for d in docs if d["metadata"]["labels"].get("grafana_dashboard")]


def test_settings_and_sla_policy_come_from_config_maps(helm):
    docs = render(helm, sets=("settings.O2C_BATCH_SIZE=2000",))
    data = settings_data(docs)
    assert data["O2C_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert data["O2C_SLA_CLOCK"] == "wall"
    assert data["O2C_BATCH_SIZE"] == "2000"
    pod = only(docs, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False, "no Kubernetes service variables among the settings"
    container = worker(docs)
    assert container["envFrom"] == [{"configMapRef": {"name": "o2c-o2c-streams-settings"}}]
    policy_path = Path(env_of(container)["O2C_SLA_POLICY_PATH"]["value"])
    policy_map = config_map(docs, volume_mounted_at(docs, policy_path.parent)["configMap"]["name"])
    assert '[defaults]\nacceptance = "4h"' in policy_map["data"][policy_path.name]


def test_a_changed_setting_rolls_the_workers(helm):
    def checksum(docs):
        return only(docs, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render(helm)) != checksum(render(helm, sets=("streams.logLevel=DEBUG",)))


# --------------------------------------------------------------------------- what production renders


def test_production_runs_three_workers_spread_over_nodes(helm):
    docs = render(helm, PRODUCTION)
    statefulset = only(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    [term] = statefulset["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    [spread] = statefulset["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    resources = worker(docs)["resources"]
    assert resources["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert resources["limits"]["memory"] == "3Gi"
    assert settings_data(docs)["O2C_REPLICATION_FACTOR"] == "3"


def test_production_secrets_are_references_only(helm):
    docs = render(helm, PRODUCTION)
    container = worker(docs)
    assert secret_refs(container) == {
        "O2C_KAFKA_SASL_PASSWORD": ("o2c-kafka-credentials", "password"),
        "O2C_WEBHOOK_SECRET": ("o2c-webhook", "hmac-key"),
        "O2C_POSTGRES_DSN": ("o2c-reporting-db", "dsn"),
        "O2C_API_TOKENS": ("o2c-api-tokens", "tokens"),
    }
    cafile = Path(env_of(container)["O2C_KAFKA_SSL_CAFILE"]["value"])
    volume = volume_mounted_at(docs, cafile.parent)
    assert volume["secret"]["secretName"] == "o2c-kafka-ca"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": cafile.name}]
    data = settings_data(docs)
    assert data["O2C_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["O2C_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert data["O2C_SINKS"] == "webhook,postgres"
    assert not {"O2C_KAFKA_SASL_PASSWORD", "O2C_WEBHOOK_SECRET", "O2C_POSTGRES_DSN", "O2C_API_TOKENS"} & data.keys()
    assert (data["O2C_AUTH_ENABLED"], data["O2C_METRICS_PUBLIC"]) == ("true", "true")


def test_api_auth_takes_token_hashes_from_a_secret_and_says_so_explicitly(helm):
    """Off in the default values (a warning in the notes and the worker's log), on in production;
    when on, O2C_API_TOKENS comes from the named Secret only; Prometheus sends a token when
    /metrics is not public."""
    default = render(helm)
    assert settings_data(default)["O2C_AUTH_ENABLED"] == "false"
    assert "O2C_API_TOKENS" not in env_of(worker(default))
    docs = render(helm, sets=("apiAuth.enabled=true", "apiAuth.existingSecret=api-tokens",
                              "apiAuth.tokensKey=hashes", "apiAuth.metricsPublic=false",
                              "serviceMonitor.enabled=true", "serviceMonitor.tokenSecret=prom-token"))
    assert secret_refs(worker(docs)) == {"O2C_API_TOKENS": ("api-tokens", "hashes")}
    data = settings_data(docs)
    assert (data["O2C_AUTH_ENABLED"], data["O2C_METRICS_PUBLIC"]) == ("true", "false")
    [endpoint] = only(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "prom-token", "key": "token"}}
    kubernetes_validate.validate(only(docs, "StatefulSet"), KUBE_VERSIONS[-1], strict=True)
    [production_endpoint] = only(render(helm, PRODUCTION), "ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in production_endpoint  # /metrics is public there


def test_production_service_monitor_scrapes_every_worker(helm):
    docs = render(helm, PRODUCTION)
    monitor = only(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    peers = only(docs, "Service", "peers")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= peers["metadata"]["labels"].items()
    api = only(docs, "Service", "api")
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= api["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in peers["spec"]["ports"]}


def test_production_ships_the_dashboard_to_grafana(helm):
    docs = render(helm, PRODUCTION)
    [dashboard_map] = [d for d in docs if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert dashboard_map["kind"] == "ConfigMap"
    assert dashboard_map["metadata"]["annotations"]["grafana_folder"] == "Order to cash"
    assert json.loads(dashboard_map["data"]["o2c-streams.json"]) == dashboard()


# --------------------------------------------------------------------------- values that cannot work


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("kafka.securityProtocol=SASL_SSL",), "kafka.sasl.mechanism must be one of"),
        (("kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN"), "kafka.sasl.existingSecret"),
        (("kafka.securityProtocol=TLS",), "kafka.securityProtocol must be one of"),
        (("sinks={webhook}",), "webhook.url is required"),
        (("sinks={postgres}",), "postgres.existingSecret"),
        (("sinks={kafka}",), 'unknown sink "kafka"'),
        (("replicaCount=5",), "replicaCount (5) exceeds kafka.partitions (4)"),
        (("settings.O2C_POSTGRES_DSN=postgresql://u:p@db/o2c",), "O2C_POSTGRES_DSN is a secret"),
        (("settings.O2C_DATA_DIR=/data",), "O2C_DATA_DIR is set by the chart"),
        (("settings.O2C_BOOTSTRAP_SERVERS=x:9092",), "O2C_BOOTSTRAP_SERVERS comes from a chart value"),
        (("settings.BATCH_SIZE=5",), '"BATCH_SIZE" is not an O2C_* setting'),
        (("apiAuth.enabled=true",), "apiAuth.existingSecret"),
        (("apiAuth.enabled=true", "apiAuth.existingSecret=t", "apiAuth.metricsPublic=false",
          "serviceMonitor.enabled=true"), "serviceMonitor.tokenSecret"),
        (("settings.O2C_API_TOKENS=viewer:a:b",), "O2C_API_TOKENS is a secret"),
        (("settings.O2C_AUTH_ENABLED=false",), "O2C_AUTH_ENABLED comes from a chart value"),
        (("sla.clock=tsc",), "sla.clock must be wall or event"),
        (("podAntiAffinity=always",), "podAntiAffinity must be soft, hard or empty"),
    ],
)
def test_values_that_cannot_work_stop_the_render_with_a_reason(helm, sets, message):
    with pytest.raises(RenderFailed) as failed:
        render(helm, sets=sets)
    assert message in str(failed.value)


# --------------------------------------------------------------------------- README, dashboard, image


def readme_rows() -> set[str]:
    text = (CHART / "README.md").read_text()
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))


def value_paths(values: dict, documented: set[str], prefix: str = "") -> set[str]:
    """Dotted paths of values.yaml down to what the README documents as one row."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if path not in documented and isinstance(value, dict) and value:
            paths |= value_paths(value, documented, f"{path}.")
        else:
            paths.add(path)
    return paths


def test_chart_readme_lists_every_value_and_nothing_else():
    documented = readme_rows()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = value_paths(values, documented)
    assert sorted(paths - documented) == [], "values missing from the README table"
    assert sorted(documented - paths) == [], "README rows for values that do not exist"


def dashboard() -> dict:
    [path] = (CHART / "dashboards").glob("*.json")
    return json.loads(path.read_text())


def panel_queries(board: dict) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_dashboard_charts_every_agreed_metric_and_no_unknown_one():
    board = dashboard()
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)  # a histogram's series
        for expr in panel_queries(board)
        for name in re.findall(r"\bo2c_[a-z_]+", expr)
    }
    assert sorted(METRICS - used) == [], "agreed metrics without a panel"
    assert sorted(used - METRICS) == [], "panels query metrics nobody exposes"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def dockerfile_final_stage() -> list[str]:
    """Instructions of the image's last stage, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def dockerfile_user() -> int:
    [user] = [line.split()[1] for line in dockerfile_final_stage() if line.startswith("USER ")]
    return int(user.split(":")[0])


def test_image_runs_the_worker_as_a_non_root_user_with_its_schemas():
    stage = dockerfile_final_stage()
    assert dockerfile_user() >= 1000
    [entrypoint] = [json.loads(line.removeprefix("ENTRYPOINT ")) for line in stage if line.startswith("ENTRYPOINT ")]
    assert entrypoint == ["o2c", "worker"]
    # The entrypoint is the console script pip installs, with a sub-command it knows.
    script = Path(sys.executable).parent / entrypoint[0]
    proc = subprocess.run([str(script), *entrypoint[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    env = " ".join(line for line in stage if line.startswith("ENV "))
    schemas_dir = re.search(r"O2C_SCHEMAS_DIR=(\S+)", env).group(1)
    assert f"COPY schemas {schemas_dir}" in stage
    # Everything the image copies from the build context passes .dockerignore (all but these).
    allowed = {
        line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    }
    assert copied <= allowed, copied - allowed
