"""The workload an upgrade must keep serving, and the watcher that proves it did.

Two replicas that may run on any node (the control plane's taint tolerated), at most one evicted at a time, read
through the Kubernetes API every second while `playbooks/upgrade.yml` runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client, config

from sensorstack.bundle.versions import load_versions

VERSIONS = load_versions()


def workload() -> str:
    """Two replicas that may run on any node (the control plane's taint tolerated), at most one evicted at a time."""
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


@dataclass
class UpgradeRecord:
    """What the cluster fixture's upgrade left to check: the playbook's output, the versions before, the readings."""

    output: str
    returncode: int
    seconds: float
    versions_before: set[str]
    readings: list[int]
    errors: int
    # The run limited to a worker before the control plane's upgrade: its output and changed= per host, and the
    # nodes' versions after it.
    worker_first_output: str = ""
    worker_first_changed: dict[str, int] = field(default_factory=dict)
    versions_after_worker_first: set[str] = field(default_factory=set)
