"""deploy/ renders with `kubectl kustomize`, validates against Kubernetes' own schemas, and
runs, probes and configures only what exists.

Offline: `kubectl` renders (its built-in kustomize) and `kubernetes-validate` carries the
schemas of every Kubernetes release it knows. `.ci/run` runs this file on its own too.
"""

from __future__ import annotations

import base64
import importlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import SECRETS_DIR_VARIABLE, Settings
from tests.test_compose import _check_command as check_command

REPO = Path(__file__).resolve().parents[1]
KUSTOMIZATIONS = ["deploy/base", "deploy/example"]
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
"""The oldest release still supported by the big clouds when this was written, and the newest
the schemas know."""
API_PATHS = {"/healthz", "/readyz"}
WORKER_HEALTH_PATH = "/healthz"
NOT_SETTINGS = {SECRETS_DIR_VARIABLE, "PROMETHEUS_MULTIPROC_DIR"}


@cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is needed to render deploy/ (Debian: kubernetes-client)"
    done = subprocess.run(
        [kubectl, "kustomize", str(REPO / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(document for document in yaml.safe_load_all(done.stdout) if document)


def one(resources: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [found] = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def pod_specs(resources: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in resources:
        if resource["kind"] in ("Deployment", "Job"):
            yield resource["metadata"]["name"], resource["spec"]["template"]


def setting_names() -> set[str]:
    return {f"DDBRIDGE_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_renders_and_validates_strictly(kustomization: str, version: str) -> None:
    resources = render(kustomization)
    assert resources
    for resource in resources:
        # Strict: an unknown or misspelt field is an error, not silently dropped.
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_api_runs_replicated_probed_and_served(kustomization: str) -> None:
    resources = render(kustomization)
    api = one(resources, "Deployment", "ddbridge-api")
    assert api["spec"]["replicas"] >= 2
    [container] = api["spec"]["template"]["spec"]["containers"]
    check_command(container["command"])
    port = container["command"][container["command"].index("--port") + 1]
    assert container["ports"] == [{"name": "http", "containerPort": int(port)}]
    served = set(importlib.import_module("service.main").app.openapi()["paths"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert served >= API_PATHS
    # Several processes per pod: their metrics go to a writable, pod-local directory.
    env = {item["name"]: item["value"] for item in container["env"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert int(container["command"][container["command"].index("--workers") + 1]) > 1
    assert "emptyDir" in volumes[mounts[env["PROMETHEUS_MULTIPROC_DIR"]]]
    # SIGTERM, then SIGKILL after the grace period: room to drain, then finish what was taken.
    grace = api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= float(env["DDBRIDGE_SHUTDOWN_DRAIN_SECONDS"]) + 15

    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    service = one(resources, "Service", "ddbridge-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    budget = one(resources, "PodDisruptionBudget", "ddbridge-api")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] < api["spec"]["replicas"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_worker_is_probed_on_its_own_port(kustomization: str) -> None:
    resources = render(kustomization)
    worker = one(resources, "Deployment", "ddbridge-worker")
    [container] = worker["spec"]["template"]["spec"]["containers"]
    check_command(container["command"])
    assert container["command"] == ["ddbridge", "worker"]
    env = {item["name"]: item["value"] for item in container["env"]}
    [port] = container["ports"]
    assert port["containerPort"] == int(env["DDBRIDGE_WORKER_METRICS_PORT"])
    # Probes come from the node, not from inside the pod.
    assert env["DDBRIDGE_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {
        "path": WORKER_HEALTH_PATH,
        "port": port["name"],
    }
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(env["DDBRIDGE_WORKER_SHUTDOWN_SECONDS"])
    budget = one(resources, "PodDisruptionBudget", "ddbridge-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_migrations_run_as_a_job(kustomization: str) -> None:
    job = one(render(kustomization), "Job", "ddbridge-migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["ddbridge", "migrate"]
    check_command(container["command"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_pod_is_locked_down(kustomization: str) -> None:
    for name, template in pod_specs(render(kustomization)):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"].keys() == {"cpu", "memory"}, name
            assert "memory" in container["resources"]["limits"], name
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert set(mounts.values()) <= volumes.keys(), name
            # A read-only root needs somewhere to write temporary files.
            assert "emptyDir" in volumes[mounts["/tmp"]], name


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_settings_are_real_variables_and_secrets_are_files(kustomization: str) -> None:
    resources = render(kustomization)
    [config] = [r for r in resources if r["kind"] == "ConfigMap"]
    known = setting_names() | NOT_SETTINGS
    assert config["data"].keys() <= known, config["data"].keys() - known
    secrets_dir = config["data"][SECRETS_DIR_VARIABLE]
    secrets = [r for r in resources if r["kind"] == "Secret"]
    for secret in secrets:
        assert secret["data"].keys() <= setting_names()
    for name, template in pod_specs(resources):
        spec = template["spec"]
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            assert {item["name"] for item in container.get("env", [])} <= known, name
            assert not any("valueFrom" in item for item in container.get("env", [])), name
            [config_ref] = container["envFrom"]
            assert config_ref["configMapRef"]["name"] == config["metadata"]["name"]
            [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == secrets_dir]
            assert mount["readOnly"] is True
            secret_volume = volumes[mount["name"]]["secret"]
            assert secret_volume["defaultMode"] == 0o400
            if secrets:  # the overlay's generated Secret (with its hash suffix) is the one used
                assert secret_volume["secretName"] in {s["metadata"]["name"] for s in secrets}


def test_the_example_secret_as_files_configures_ddbridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Secret's keys, mounted as files at DDBRIDGE_SECRETS_DIR with real values, and the
    ConfigMap in the environment: a valid configuration (the placeholders are not)."""
    resources = render("deploy/example")
    [config] = [r for r in resources if r["kind"] == "ConfigMap"]
    [secret] = [r for r in resources if r["kind"] == "Secret"]
    for name in list(setting_names() | NOT_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    for name, value in config["data"].items():
        monkeypatch.setenv(name, value)
    real = {
        "DDBRIDGE_DATABASE_URL": "postgresql+asyncpg://ddbridge:pw@db:5432/ddbridge",
        "DDBRIDGE_REDIS_URL": "rediss://:pw@redis:6380/0",
        "DDBRIDGE_ENCRYPTION_KEYS": base64.urlsafe_b64encode(bytes(range(32))).decode(),
        "DDBRIDGE_INTERNAL_TOKENS": "token-one,token-two",
        "DDBRIDGE_CLIENT_ID": "client",
        "DDBRIDGE_CLIENT_SECRET": "client-secret",
        "DDBRIDGE_WEBHOOK_SECRET": "webhook-secret",
    }
    assert secret["data"].keys() == real.keys()
    for placeholder in secret["data"].values():
        assert re.search("REPLACE-ME", base64.b64decode(placeholder).decode())
    mounted = tmp_path / "secrets"
    mounted.mkdir()
    for name, value in real.items():
        (mounted / name).write_text(f"{value}\n")  # files end with a newline, often
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(mounted))

    settings = Settings()

    assert settings.mode == "production"
    assert settings.database_url == real["DDBRIDGE_DATABASE_URL"]
    assert [t.get_secret_value() for t in settings.internal_tokens] == ["token-one", "token-two"]
    assert settings.keyring() is not None
    assert settings.client_secret is not None
    assert settings.client_secret.get_secret_value() == "client-secret"
    assert settings.webhook_url == config["data"]["DDBRIDGE_WEBHOOK_URL"]
    # The environment wins over a file.
    monkeypatch.setenv("DDBRIDGE_CLIENT_ID", "from-the-environment")
    assert Settings().client_id == "from-the-environment"
