"""The Kubernetes manifests (``deploy/kubernetes/``) agree with each other and with aigw:
the config in the ConfigMap loads with aigw's own loader, the probes and the Service reach
the port it listens on, the session key is mounted where the config reads it, and the
selectors of the Deployment, the Service and the PodDisruptionBudget match its pods."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw.config import ConfigError, load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
CONFIG_PATH = "/etc/aigw/aigw.yaml"


def manifests() -> dict[str, dict[str, Any]]:
    """Every manifest by kind (one object a file, one file a kind)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert len(documents) == 1, path
        (document,) = documents
        assert document["kind"] not in found, path
        found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    found = manifests()
    assert set(found) == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"}
    return found


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def mounted(objects: dict[str, dict[str, Any]], path: str) -> tuple[dict[str, Any], str]:
    """The pod volume whose mount holds ``path``, and the path's name inside it."""
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container(objects)["volumeMounts"]:
        if posixpath.dirname(path) == mount["mountPath"]:
            return volumes[mount["name"]], posixpath.basename(path)
    raise AssertionError(f"nothing is mounted where {path} is")


def config_text(objects: dict[str, dict[str, Any]]) -> str:
    volume, key = mounted(objects, CONFIG_PATH)
    assert volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    return str(objects["ConfigMap"]["data"][key])


def secret_file(objects: dict[str, dict[str, Any]]) -> str:
    sessions = yaml.safe_load(config_text(objects))["sessions"]
    return str(sessions["secret_file"])


def load(objects: dict[str, dict[str, Any]], tmp_path: Path, key: bytes) -> Any:
    """The ConfigMap's aigw.yaml through aigw's loader, with the key file at ``tmp_path``."""
    key_path = tmp_path / "session.key"
    key_path.write_bytes(key)
    os.chmod(key_path, 0o600)
    text = config_text(objects).replace(secret_file(objects), str(key_path))
    config_path = tmp_path / "aigw.yaml"
    config_path.write_text(text)
    return load_config(str(config_path))


def test_the_container_runs_aigw_on_the_configmaps_config(
    objects: dict[str, dict[str, Any]],
) -> None:
    argv = container(objects)["command"] + container(objects).get("args", [])
    assert argv[:5] == ["twistd", "-n", "--pidfile=", "aigw", "--config"], shlex.join(argv)
    assert argv[5] == CONFIG_PATH


def test_the_config_loads_with_aigws_loader(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    config = load(objects, tmp_path, os.urandom(32))
    assert config.sessions.secret is not None
    # A pod serves the Service and the probes on its own address, not on loopback.
    assert all("interface=0.0.0.0" in endpoint for endpoint in config.listen)
    assert "interface=0.0.0.0" in config.metrics.listen


def test_the_placeholder_key_is_refused(objects: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """secret.yaml's placeholder is no key: an unedited deployment does not start."""
    import base64

    placeholder = base64.b64decode(objects["Secret"]["data"]["session.key"])
    with pytest.raises(ConfigError):
        load(objects, tmp_path, placeholder)


def test_the_secret_is_mounted_where_the_config_reads_the_key(
    objects: dict[str, dict[str, Any]],
) -> None:
    volume, key = mounted(objects, secret_file(objects))
    assert volume["secret"]["secretName"] == objects["Secret"]["metadata"]["name"]
    assert key in objects["Secret"]["data"]
    # Readable by the pod's group (fsGroup), not by others: what aigw doctor wants.
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def listen_port(objects: dict[str, dict[str, Any]], tmp_path: Path) -> int:
    config = load(objects, tmp_path, os.urandom(32))
    (endpoint,) = config.listen
    found = re.fullmatch(r"tcp:(\d+):interface=0\.0\.0\.0", endpoint)
    assert found, endpoint
    return int(found.group(1))


def test_probes_and_service_reach_the_listen_port(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    port = listen_port(objects, tmp_path)
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert ports["http"] == port
    metrics = load(objects, tmp_path, os.urandom(32)).metrics.listen
    assert metrics == f"tcp:{ports['metrics']}:interface=0.0.0.0"
    probes = {
        name: container(objects)[name]["httpGet"] for name in ("readinessProbe", "livenessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["port"] in ("http", port), probe
    (service_port,) = objects["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in ("http", port)
    assert objects["Service"]["spec"].get("sessionAffinity", "None") == "None"


def test_labels_and_selectors_match(objects: dict[str, dict[str, Any]]) -> None:
    deployment = objects["Deployment"]["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    selectors = [
        deployment["selector"]["matchLabels"],
        objects["Service"]["spec"]["selector"],
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items(), (selector, labels)


def test_the_disruption_budget_leaves_room_to_drain(objects: dict[str, dict[str, Any]]) -> None:
    replicas = objects["Deployment"]["spec"]["replicas"]
    minimum = objects["PodDisruptionBudget"]["spec"]["minAvailable"]
    assert replicas == 3
    assert 1 <= minimum < replicas


def test_the_pod_runs_unprivileged_on_a_read_only_root(objects: dict[str, dict[str, Any]]) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    own = container(objects)["securityContext"]
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"]["drop"] == ["ALL"]


def test_resources_follow_the_capacity_model(objects: dict[str, dict[str, Any]]) -> None:
    """docs/scale-out.md, "Capacity model": one process is about one core; the worked
    example's 94 MiB fits the request, the default bounds with five backends (about
    250 MiB) the limit (deployment.yaml says how)."""
    resources = container(objects)["resources"]
    assert resources["requests"]["cpu"] == "1"
    assert resources["requests"]["memory"] == "128Mi"
    assert resources["limits"]["memory"] == "256Mi"


def test_the_replicas_share_limits_and_ended_sessions_through_one_redis(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Several replicas behind one Service: without a shared store each pod would allow
    every limit in full and honour a DELETE alone (docs/scale-out.md)."""
    assert objects["Deployment"]["spec"]["replicas"] > 1
    config = load(objects, tmp_path, os.urandom(32))
    assert config.limits.rules, "the replicas share limits only if there are some"
    assert config.limits.redis_url is not None
    assert config.sessions.redis_url == config.limits.redis_url
