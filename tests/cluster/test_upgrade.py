"""An upgrade from the previous minor release to the pinned one, as an operator runs it.

`site.yml` builds a control plane and a worker at the release the bundle carries for this
(``sensorstack_kubernetes_upgrade_from_version``) with a Deployment of two replicas and a PodDisruptionBudget of
one on it; then `playbooks/upgrade.yml` runs with the pinned version. A watcher reads the Deployment through the
Kubernetes API every second meanwhile: it must never see fewer than one Ready replica. Afterwards every node
reports the pinned version, the packages are held there, and a rerun of the upgrade changes nothing.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from sensorstack import project_root
from sensorstack.bundle.serve import BundleServer
from sensorstack.bundle.versions import load_versions
from sensorstack.lab import containers

from .conftest import Cluster, Node, cluster_inventory, node_container

pytestmark = pytest.mark.cluster

VERSIONS = load_versions()
TARGET = VERSIONS["sensorstack_kubernetes_version"]
FROM = VERSIONS["sensorstack_kubernetes_upgrade_from_version"]
FROM_SETTINGS = {
    "sensorstack_kubernetes_version": FROM,
    "sensorstack_kubernetes_package_revision": VERSIONS["sensorstack_kubernetes_upgrade_from_package_revision"],
}
CONTROL_PLANE = ("upg-cp1", "10.213.0.58")
WORKER = ("upg-worker1", "10.213.0.59")
UPGRADE = project_root() / "playbooks/upgrade.yml"


def workload() -> str:
    """Two replicas that may run on either node (the control plane's taint tolerated), at most one evicted at a time."""
    labels = {"app": "upgrade-probe"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "upgrade-probe", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "image": VERSIONS["sensorstack_mosquitto_image"],
                            "command": ["sleep", "infinity"],
                        }
                    ],
                },
            },
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "upgrade-probe", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
    }
    return yaml.safe_dump_all([deployment, budget])


class ReadyWatcher(threading.Thread):
    """Reads the Deployment's ready replicas every second; API errors (the API server restarts) are counted apart."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(daemon=True)
        self.apps = client.AppsV1Api(config.new_client_from_config(str(kubeconfig)))
        self.readings: list[int] = []
        self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                status = self.apps.read_namespaced_deployment("upgrade-probe", "default", _request_timeout=5).status
                self.readings.append(status.ready_replicas or 0)
            except Exception:
                self.errors += 1
            self.stopping.wait(1)


@pytest.fixture(scope="module")
def old_cluster(mirror: BundleServer) -> Iterator[Cluster]:
    started: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sensorstack-upgrade-") as temporary:
        directory = Path(temporary)
        try:
            for name, address in (CONTROL_PLANE, WORKER):
                started.append(node_container(name, address).container)
            nodes = [Node(name, f"{containers.TEST_CONTAINER_PREFIX}{name}") for name, _ in (CONTROL_PLANE, WORKER)]
            inventory = cluster_inventory(directory, (CONTROL_PLANE,), (WORKER,))
            built = Cluster(nodes[0], nodes[1:], inventory, directory, started)
            run = built.site("--extra-vars", json.dumps(FROM_SETTINGS))
            built.timings["build at the previous release"] = run.seconds
            assert run.returncode == 0, f"site.yml at {FROM} failed:\n{run.tail()}"
            built.kubectl("apply", "--filename=-", stdin=workload())
            built.kubectl("rollout", "status", "deployment/upgrade-probe", "--timeout=600s", timeout=660)
            yield built
        finally:
            for container in started:
                containers.remove(container)


@pytest.fixture(scope="module")
def upgraded(old_cluster: Cluster) -> dict[str, object]:
    versions = {
        item["status"]["nodeInfo"]["kubeletVersion"] for item in old_cluster.kubectl_json("get", "nodes")["items"]
    }
    assert versions == {f"v{FROM}"}
    watcher = ReadyWatcher(old_cluster.directory / "artifacts/admin.conf")
    watcher.start()
    run = old_cluster.run_playbook(UPGRADE)
    watcher.stopping.set()
    watcher.join()
    print(
        f"\nupgrade {FROM} -> {TARGET}: {run.seconds:.0f} s; ready replicas seen: min {min(watcher.readings)}, "
        f"{len(watcher.readings)} readings, {watcher.errors} reads failed while the API server restarted"
    )
    assert run.returncode == 0, run.tail()
    return {"run": run, "readings": watcher.readings}


def test_every_node_reports_the_pinned_version(old_cluster: Cluster, upgraded: dict[str, object]) -> None:
    nodes = old_cluster.kubectl_json("get", "nodes")["items"]
    assert {item["status"]["nodeInfo"]["kubeletVersion"] for item in nodes} == {f"v{TARGET}"}
    assert all(not item["spec"].get("unschedulable") for item in nodes), "a node was left cordoned"
    configuration = old_cluster.kubectl_json("--namespace=kube-system", "get", "configmap", "kubeadm-config")
    assert yaml.safe_load(configuration["data"]["ClusterConfiguration"])["kubernetesVersion"] == f"v{TARGET}"
    for node in old_cluster.nodes:
        assert node.run("kubeadm", "version", "-o", "short").strip() == f"v{TARGET}"
        assert set(node.run("apt-mark", "showhold").split()) >= {"kubeadm", "kubelet", "kubectl"}


def test_the_workload_never_dropped_below_one_ready_replica(upgraded: dict[str, object]) -> None:
    readings = upgraded["readings"]
    assert isinstance(readings, list) and len(readings) > 30, readings
    assert min(readings) >= 1, readings


def test_a_second_upgrade_run_changes_nothing(old_cluster: Cluster, upgraded: dict[str, object]) -> None:
    run = old_cluster.run_playbook(UPGRADE)
    assert run.returncode == 0, run.tail()
    assert set(run.changed().values()) == {0}, run.explain()


def test_site_yml_after_the_upgrade_changes_nothing(old_cluster: Cluster, upgraded: dict[str, object]) -> None:
    # The pinned version is the upgrade's target: site.yml must find the cluster, the packages and kubeadm's own
    # configuration file as it would leave them.
    run = old_cluster.site()
    assert run.returncode == 0, run.tail()
    assert set(run.changed().values()) == {0}, run.explain()
