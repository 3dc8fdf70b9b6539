"""The telemetry stack on the tier's cluster, as `site.yml` deployed it from the lab's inventory (platform kubernetes):
every claim bound and every pod ready, the verify play passing through the node ports, the zero-trust policies
observed as a truth table, data surviving the loss of the InfluxDB and Mosquitto pods while a device publishes, the
data path recovering when the worker that runs Telegraf stops, Grafana keeping the objects its API was given when its
pod is replaced, a configuration change rolling only the pods it concerns, and `sensorstack render` writing the
objects the roles applied.

Runs after test_cluster.py and before test_ha.py (which stops the first control plane) and test_reset.py.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from base64 import b64decode
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.sensorstack.iot.plugins.module_utils.mosquitto_passwd import hash_password

from sensorstack import project_root

from .conftest import KUBECTL, WORKERS, Cluster
from .conftest import wait_for as wait_until

pytestmark = pytest.mark.cluster

NAMESPACE = "sensorstack"
OTHER_NAMESPACE = "sensorstack-probe"
VERIFY = project_root() / "playbooks/verify.yml"
STACK = project_root() / "playbooks/stack.yml"
WORKLOADS = {"mosquitto": "deployment", "influxdb": "statefulset", "telegraf": "deployment", "grafana": "deployment"}
# Destinations of the truth table: the Services' names and ports inside the cluster, and their node ports outside.
DESTINATIONS = {"mosquitto": 1883, "influxdb": 8086, "grafana": 3000}
NODE_PORTS = {"mosquitto": 31883, "influxdb": 30086, "grafana": 30300}
# The flows the pipeline needs, and nothing else: (source, destination) -> allowed.
SOURCES = ("telegraf", "grafana", "unlabelled", "other namespace", "node port", "site network")
INTENDED = {
    ("telegraf", "mosquitto"): True,
    ("telegraf", "influxdb"): True,
    ("grafana", "influxdb"): True,
    # The controller is on the lab network, in both the device and the admin networks of the lab.
    ("site network", "mosquitto"): True,
    ("site network", "influxdb"): True,
    ("site network", "grafana"): True,
}
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4).close()\n"
    "except OSError as error:\n"
    "    print(error); sys.exit(1)\n"
)
RESOLVE = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"


def secret(cluster: Cluster, name: str) -> str:
    return (cluster.directory / ".secrets" / name).read_text().strip()


def ready(cluster: Cluster, kind: str, name: str, timeout: int = 600) -> None:
    cluster.kubectl(
        f"--namespace={NAMESPACE}", "rollout", "status", f"{kind}/{name}", f"--timeout={timeout}s", timeout=timeout + 60
    )


def pods(cluster: Cluster, namespace: str = NAMESPACE) -> dict[str, dict[str, Any]]:
    """Running pods that are not being deleted."""
    found = {}
    for pod in cluster.kubectl_json(f"--namespace={namespace}", "get", "pods")["items"]:
        if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
            continue
        labels = pod["metadata"].get("labels", {})
        # The stack's own pods by service; the probes, which take a service's name but not part-of, by their name.
        stack = labels.get("app.kubernetes.io/part-of") == "sensorstack"
        found[labels["app.kubernetes.io/name"] if stack else pod["metadata"]["name"]] = pod
    return found


def host_of(cluster: Cluster, service: str) -> str:
    return pods(cluster)[service]["status"]["hostIP"]


def influx_query(cluster: Cluster, query: str) -> list[dict[str, Any]]:
    """The series ``query`` returns from the telemetry database, through InfluxDB's node port from the controller
    (which is on the lab network, one of the lab's admin networks)."""
    url = f"http://{host_of(cluster, 'influxdb')}:{NODE_PORTS['influxdb']}/query?" + urllib.parse.urlencode(
        {"db": "telemetry", "q": query}
    )
    request = urllib.request.Request(url, method="POST")
    token = base64.b64encode(f"admin:{secret(cluster, 'influxdb_admin')}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return list(json.load(answer)["results"][0].get("series", []))


def influx_seq(cluster: Cluster, where: str) -> list[int]:
    """The seq field of every point matching ``where`` in the telemetry database."""
    series = influx_query(cluster, f'SELECT "seq" FROM /.*/ WHERE {where}')
    return sorted(int(row[1]) for one in series for row in one["values"])


def influx_count(cluster: Cluster, device: str) -> list[int]:
    return influx_seq(cluster, f"\"device\" = '{device}'")


# The stack's checks go through node ports, kubectl and InfluxDB's API: a refused connection, a failed command or a
# pod not listed yet means "not yet" there.
wait_for = functools.partial(
    wait_until, interval=3, tolerated=(AssertionError, OSError, KeyError, subprocess.SubprocessError)
)


def test_every_claim_is_bound_and_every_workload_ready(cluster: Cluster) -> None:
    claims = cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "persistentvolumeclaims")["items"]
    assert {claim["metadata"]["name"]: claim["status"]["phase"] for claim in claims} == {
        "mosquitto-data": "Bound",
        "influxdb-data": "Bound",
        "grafana-data": "Bound",
    }
    for name, kind in WORKLOADS.items():
        workload = cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", kind, name)
        assert workload["status"].get("readyReplicas") == workload["spec"]["replicas"] == 1, (name, workload["status"])
    for name, pod in pods(cluster).items():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["capabilities"]["drop"] == ["ALL"] and context["readOnlyRootFilesystem"], name
            assert container["resources"]["limits"] and container["resources"]["requests"], name
    namespace = cluster.kubectl_json("get", "namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_verify_play_finds_a_reading_published_through_the_broker_node_port(cluster: Cluster) -> None:
    run = cluster.run_playbook(VERIFY, "--limit", cluster.control_plane.name)
    assert run.returncode == 0, run.tail()
    assert f"Stack verified on {cluster.control_plane.name}" in run.output, run.tail()
    assert run.changed() == {cluster.control_plane.name: 0}, run.explain()


def test_the_broker_reads_its_own_copies_of_the_secret_files_and_warns_of_none(cluster: Cluster) -> None:
    """Kubernetes mounts Secret files owned by root; Mosquitto warns that future versions will refuse a password or
    ACL file it does not own. The init container copies them into the broker's own in-memory volume."""
    exec_ = ("--namespace", NAMESPACE, "exec", "deployment/mosquitto", "-c", "mosquitto", "--")
    listing = cluster.kubectl(*exec_, "stat", "-c", "%n %u %a", "/etc/mosquitto/passwd", "/etc/mosquitto/acl")
    assert sorted(line.split()[1:] for line in listing.splitlines()) == [["1883", "400"], ["1883", "400"]], listing
    log = cluster.kubectl("--namespace", NAMESPACE, "logs", "deployment/mosquitto", "-c", "mosquitto")
    assert "mosquitto version" in log, log
    assert not [line for line in log.splitlines() if "Warning" in line or "refuse" in line], log


def test_grafana_reads_its_secret_key_from_the_secret_and_no_config_map_holds_it(cluster: Cluster) -> None:
    """grafana.ini is a ConfigMap here: it names the file ($__file) that the Secret mounts, which holds the key."""
    key = secret(cluster, "grafana_secret_key")
    config_maps = cluster.kubectl_json("--namespace", NAMESPACE, "get", "configmaps")["items"]
    assert not [item["metadata"]["name"] for item in config_maps if key in json.dumps(item.get("data", {}))]
    [grafana_config] = [item for item in config_maps if item["metadata"]["name"] == "grafana-config"]
    assert "secret_key = $__file{/etc/grafana/secrets/secret_key}" in grafana_config["data"]["grafana.ini"]
    exec_ = ("--namespace", NAMESPACE, "exec", "deployment/grafana", "-c", "grafana", "--")
    assert cluster.kubectl(*exec_, "cat", "/etc/grafana/secrets/secret_key") == key


# The pod that stands in for each source of the policy table: its namespace, name and labels.
PROBE_PODS: dict[str, tuple[str, str, dict[str, str]]] = {
    "telegraf": (NAMESPACE, "probe-telegraf", {"app.kubernetes.io/name": "telegraf"}),
    "grafana": (NAMESPACE, "probe-grafana", {"app.kubernetes.io/name": "grafana"}),
    "unlabelled": (NAMESPACE, "probe-unlabelled", {}),
    "other namespace": (OTHER_NAMESPACE, "probe-other", {}),
}


def probe_pods(image: str, other_node: str) -> str:
    """Pods that stand in for each source: labelled as Telegraf and Grafana, unlabelled, and in another namespace on
    ``other_node``. They meet the namespace's restricted Pod Security, and only sleep until the test runs its probes in
    them."""
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER_NAMESPACE}},
    ]
    for namespace, name, labels in PROBE_PODS.values():
        node = other_node if namespace == OTHER_NAMESPACE else None
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {
                    **({"nodeName": node} if node else {}),
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 472,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "probe",
                            "image": image,
                            "command": ["python3", "-c", "import time; time.sleep(3600)"],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        }
                    ],
                },
            }
        )
    return yaml.safe_dump_all(manifests)


@pytest.fixture(scope="module")
def probes(cluster: Cluster) -> Any:
    """The probe pods, running the stack's Grafana image (it has python3). The policies take the Telegraf and Grafana
    probes for those services (they select pods by app.kubernetes.io/name); the Services do not (they also ask for
    app.kubernetes.io/part-of), so a probe never answers for the service it stands in for."""
    image = cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "deployment", "grafana")["spec"]["template"][
        "spec"
    ]["containers"][0]["image"]
    # The other namespace's pod runs on a worker that runs none of the services, so that its way to their node ports
    # crosses nodes: Calico masquerades it as that worker's address, which the lab's networks hold.
    running = pods(cluster)
    serving = {running[service]["spec"]["nodeName"] for service in NODE_PORTS}
    other_node = next((worker.name for worker in cluster.workers if worker.name not in serving), None)
    assert other_node, f"every worker runs a service ({serving}): no node to probe the node ports from"
    manifests = probe_pods(image, other_node)
    cluster.kubectl("apply", "--filename=-", stdin=manifests)
    for namespace, name, _ in PROBE_PODS.values():
        cluster.kubectl(
            f"--namespace={namespace}", "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=300s", timeout=360
        )
    yield
    cluster.kubectl("delete", "--filename=-", "--wait=false", stdin=manifests)


def in_pod(cluster: Cluster, source: str, script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    namespace, pod, _ = PROBE_PODS[source]
    return subprocess.run(
        [
            "docker",
            "exec",
            cluster.control_plane.container,
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            f"--namespace={namespace}",
            "exec",
            pod,
            "--",
            "python3",
            "-c",
            script,
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def reaches(cluster: Cluster, source: str, destination: str) -> bool:
    if source == "site network":
        # From the controller: the lab gateway, on the lab network the device and admin networks of the lab cover.
        try:
            with socket.create_connection((host_of(cluster, destination), NODE_PORTS[destination]), timeout=4):
                return True
        except OSError:
            return False
    if source == "node port":
        # From the other namespace's pod, on another node than the service's, through the service's node port.
        node_port = (host_of(cluster, destination), str(NODE_PORTS[destination]))
        return in_pod(cluster, "other namespace", CONNECT, *node_port).returncode == 0
    name = f"{destination}.{NAMESPACE}.svc.cluster.local"
    return in_pod(cluster, source, CONNECT, name, str(DESTINATIONS[destination])).returncode == 0


def table(cells: dict[tuple[str, str], bool]) -> str:
    width = max(map(len, SOURCES)) + 2
    lines = ["".ljust(width) + "".join(name.ljust(11) for name in DESTINATIONS)]
    for source in SOURCES:
        marks = (("allow" if cells[(source, destination)] else "deny").ljust(11) for destination in DESTINATIONS)
        lines.append(source.ljust(width) + "".join(marks))
    return "\n".join(lines)


def test_the_policies_allow_exactly_the_flows_of_the_pipeline(cluster: Cluster, probes: None) -> None:
    intended = {
        (source, destination): INTENDED.get((source, destination), False)
        for source in SOURCES
        for destination in DESTINATIONS
    }
    observed = {cell: reaches(cluster, *cell) for cell in intended}
    print(f"\nintended:\n{table(intended)}\nobserved:\n{table(observed)}")
    assert observed == intended, f"intended:\n{table(intended)}\nobserved:\n{table(observed)}"


@pytest.mark.parametrize("source", ["telegraf", "grafana", "unlabelled", "other namespace"])
def test_every_pod_resolves_the_stacks_names(cluster: Cluster, probes: None, source: str) -> None:
    resolved = in_pod(cluster, source, RESOLVE, f"influxdb.{NAMESPACE}.svc.cluster.local")
    service = cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "service", "influxdb")["spec"]["clusterIP"]
    assert resolved.returncode == 0 and resolved.stdout.strip() == service, resolved.stderr


PUBLISHER = """set -eu
umask 077
options=$(mktemp -d)
trap 'rm -rf "$options"' EXIT
printf -- '-u lab-device-1\\n-P %s\\n' "$(cat)" > "$options/mosquitto_pub"
export XDG_CONFIG_HOME=$options
seq=1
while [ "$seq" -le {count} ]; do
    # A device keeps a reading until the broker acknowledges it (QoS 1), and retries while the broker is away.
    until mosquitto_pub -h {host} -p {port} -q 1 -i {device} -t sensors/lab-device-1/{device} {retain} \\
        -m "{{\\"seq\\": $seq}}"
    do sleep 0.5; done
    seq=$((seq + 1))
    sleep {pause}
done
"""


def start_publisher(
    cluster: Cluster, device: str, count: int, pause: float = 0.2, retain: bool = False
) -> subprocess.Popen[str]:
    """A device on the lab network (the first control-plane node) publishing ``count`` readings to the broker's node
    port, its password on stdin, never in an argument."""
    script = PUBLISHER.format(
        count=count,
        host=host_of(cluster, "mosquitto"),
        port=NODE_PORTS["mosquitto"],
        device=device,
        pause=pause,
        retain="-r" if retain else "",
    )
    process = subprocess.Popen(
        ["docker", "exec", "-i", cluster.control_plane.container, "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(secret(cluster, "mqtt_lab-device-1"))
    process.stdin.close()
    return process


def retained(cluster: Cluster, topic: str) -> str:
    """The retained message of ``topic``, as a device subscribing through the broker's node port receives it."""
    script = (
        "set -eu; umask 077; options=$(mktemp -d); trap 'rm -rf \"$options\"' EXIT; "
        'printf -- \'-u lab-device-1\\n-P %s\\n\' "$(cat)" > "$options/mosquitto_sub"; '
        f"XDG_CONFIG_HOME=$options mosquitto_sub -h {host_of(cluster, 'mosquitto')} -p {NODE_PORTS['mosquitto']} "
        f"-t {topic} -C 1 -W 20"
    )
    return cluster.control_plane.run("sh", "-c", script, stdin=secret(cluster, "mqtt_lab-device-1")).strip()


def finish(publisher: subprocess.Popen[str], timeout: float) -> None:
    publisher.wait(timeout=timeout)
    assert publisher.stdout is not None
    output = publisher.stdout.read()
    assert publisher.returncode == 0, output


def test_influxdb_and_mosquitto_pods_come_back_with_their_data_and_lose_no_reading(cluster: Cluster) -> None:
    device = f"selfheal-{uuid.uuid4().hex[:8]}"
    count = 120
    before = {name: pods(cluster)[name]["metadata"]["uid"] for name in ("influxdb", "mosquitto")}
    # Data of before the outage: readings in InfluxDB, and a retained message the broker keeps on its volume.
    earlier = start_publisher(cluster, f"{device}-before", 1, pause=0, retain=True)
    finish(earlier, timeout=120)
    wait_for("the reading of before the outage in InfluxDB", lambda: influx_count(cluster, f"{device}-before"), 120)
    publisher = start_publisher(cluster, device, count)
    try:
        time.sleep(5)
        started = time.monotonic()
        cluster.kubectl(
            f"--namespace={NAMESPACE}",
            "delete",
            "pod",
            "influxdb-0",
            pods(cluster)["mosquitto"]["metadata"]["name"],
            "--wait=false",
        )
        back: dict[str, float] = {}
        for name, kind in (("mosquitto", "deployment"), ("influxdb", "statefulset")):
            wait_for(
                f"a new {name} pod",
                lambda name=name: (
                    pods(cluster).get(name, {}).get("metadata", {}).get("uid") not in (None, before[name])
                ),
                timeout=300,
            )
            ready(cluster, kind, name)
            back[name] = time.monotonic() - started
        finish(publisher, timeout=900)
    finally:
        if publisher.poll() is None:
            publisher.kill()
    stored = wait_for(
        f"all {count} readings of {device} in InfluxDB",
        lambda: (found := influx_count(cluster, device)) and set(found) == set(range(1, count + 1)) and found,
        timeout=180,
    )
    duplicates = len(stored) - count
    print(
        f"\nmosquitto back in {back['mosquitto']:.0f} s, influxdb in {back['influxdb']:.0f} s; "
        f"{count} readings published at QoS 1 during the outage, {count} stored, 0 lost, {duplicates} duplicated"
    )
    # The volumes kept the data of before the outage.
    assert influx_count(cluster, f"{device}-before") == [1]
    assert retained(cluster, f"sensors/lab-device-1/{device}-before") == '{"seq": 1}'


def test_the_data_path_recovers_when_the_worker_running_telegraf_stops(cluster: Cluster) -> None:
    storage = pods(cluster)["influxdb"]["spec"]["nodeName"]
    if pods(cluster)["telegraf"]["spec"]["nodeName"] == storage:
        # A preference holds when the pod is scheduled, not afterwards: the upgrade's drains may have left Telegraf
        # beside the broker and the database. A new pod goes where the scheduler prefers it, as after a restart.
        cluster.kubectl(f"--namespace={NAMESPACE}", "rollout", "restart", "deployment/telegraf")
        ready(cluster, "deployment", "telegraf")
    telegraf = pods(cluster)["telegraf"]
    node = telegraf["spec"]["nodeName"]
    assert node != storage, "Telegraf should run away from the broker and the database (its anti-affinity)"
    container = next(worker.container for worker in cluster.workers if worker.name == node)
    stopped = time.monotonic()
    subprocess.run(["docker", "stop", "--time=5", container], check=True, capture_output=True)
    try:
        moved = wait_for(
            "Telegraf running on another node",
            lambda: (
                (pod := pods(cluster).get("telegraf"))
                and pod["spec"]["nodeName"] != node
                and all(c.get("ready") for c in pod["status"].get("containerStatuses", []))
                and pod
            ),
            timeout=600,
            interval=5,
        )
        rescheduled = time.monotonic() - stopped
        device = f"nodeloss-{uuid.uuid4().hex[:8]}"
        publisher = start_publisher(cluster, device, 3, pause=0)
        finish(publisher, timeout=300)
        wait_for(
            "the readings published after the move in InfluxDB",
            lambda: set(influx_count(cluster, device)) == {1, 2, 3},
            timeout=180,
        )
        recovered = time.monotonic() - stopped
        print(
            f"\n{node} stopped: Telegraf running on {moved['spec']['nodeName']} after {rescheduled:.0f} s, "
            f"readings stored again {recovered:.0f} s after the stop"
        )
    finally:
        subprocess.run(["docker", "start", container], check=True, capture_output=True)
    wait_for(f"{node} Ready again", lambda: node_ready(cluster, node), timeout=600, interval=5)


def grafana_request(cluster: Cluster, path: str, password: str) -> urllib.request.Request:
    """A GET of Grafana's API through its node port, as the admin (the lab's stand-in: docs/stack-images.md)."""
    request = urllib.request.Request(f"http://{host_of(cluster, 'grafana')}:{NODE_PORTS['grafana']}{path}")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{password}".encode()).decode())
    return request


def grafana(cluster: Cluster, path: str) -> Any:
    with urllib.request.urlopen(grafana_request(cluster, path, secret(cluster, "grafana_admin")), timeout=10) as answer:
        return json.load(answer)


def grafana_objects(cluster: Cluster) -> dict[str, Any]:
    """The lab's API-managed objects (inventories/local/group_vars/all.yml) and the provisioned ones, as served."""
    dashboard = grafana(cluster, "/api/dashboards/uid/lab-overview")
    datasource = grafana(cluster, "/api/datasources/uid/influxdb-rollup")
    return {
        "folder": grafana(cluster, "/api/folders/lab-operations")["title"],
        "dashboard": (dashboard["dashboard"]["version"], dashboard["meta"]["folderUid"]),
        "datasource": (datasource["version"], datasource["secureJsonFields"]),
        "provisioned": sorted(item["uid"] for item in grafana(cluster, "/api/datasources") if item["readOnly"]),
    }


def test_grafana_keeps_what_its_api_was_given_when_its_pod_is_replaced(cluster: Cluster) -> None:
    before = grafana_objects(cluster)
    assert before["folder"] == "Lab operations" and before["dashboard"][1] == "lab-operations"
    assert before["datasource"][1] == {"password": True} and before["provisioned"] == ["sensorstack-influxdb"]
    old = pods(cluster)["grafana"]["metadata"]["uid"]

    cluster.kubectl(f"--namespace={NAMESPACE}", "delete", "pod", pods(cluster)["grafana"]["metadata"]["name"])
    wait_for("a new grafana pod", lambda: pods(cluster).get("grafana", {}).get("metadata", {}).get("uid") != old)
    ready(cluster, "deployment", "grafana")

    assert wait_for("Grafana's API on the new pod", lambda: grafana_objects(cluster), timeout=120) == before
    # The volume kept the objects, so converging them again writes nothing.
    run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
    assert run.returncode == 0, run.tail()
    assert run.changed() == {cluster.control_plane.name: 0}, run.explain()


def grafana_login(cluster: Cluster, password: str) -> int:
    """The status of GET /api/user as the admin with this password."""
    try:
        with urllib.request.urlopen(grafana_request(cluster, "/api/user", password), timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_changed_admin_password_reaches_the_grafana_that_kept_the_old_one(cluster: Cluster) -> None:
    """Grafana applies its admin password only when it creates its database, and its pod keeps that database on its
    volume: a new password in the Secret restarts the pod with the old one still in force, until the role sets it
    with Grafana's CLI in the pod. The lab's stand-in keeps the password on its volume as Grafana does."""
    secret_file = cluster.directory / ".secrets" / "grafana_admin"
    old = secret_file.read_text()
    new = f"Rotated{uuid.uuid4().hex[:16]}"
    secret_file.write_text(new)
    try:
        run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
        assert run.returncode == 0, run.tail()
        reset = [task for task in run.changed_tasks() if "Grafana's CLI in the pod" in task]
        assert len(reset) == 1, run.explain()
        assert (grafana_login(cluster, old.strip()), grafana_login(cluster, new)) == (401, 200)
        assert new not in run.output
        again = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
        assert again.returncode == 0, again.tail()
        assert again.changed() == {cluster.control_plane.name: 0}, again.explain()
    finally:
        secret_file.write_text(old)
        back = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
    assert back.returncode == 0, back.tail()
    assert grafana_login(cluster, old.strip()) == 200


def node_ready(cluster: Cluster, name: str) -> bool:
    node = cluster.kubectl_json("get", "node", name)
    return {c["type"]: c["status"] for c in node["status"]["conditions"]}.get("Ready") == "True"


def pod_uids(cluster: Cluster) -> dict[str, str]:
    return {name: pod["metadata"]["uid"] for name, pod in pods(cluster).items() if name in WORKLOADS}


def test_a_new_telegraf_processor_and_secret_variable_roll_telegraf_alone_and_leave_when_dropped(
    cluster: Cluster,
) -> None:
    """Both reach Telegraf alone; dropped from the settings, both leave the cluster. Server-side apply prunes a key
    dropped from a Secret's data; one dropped from stringData would stay, and reach Telegraf's environment still
    (kubernetes/kubernetes#108008). One pair of runs checks both: each stack run takes one to two minutes here."""

    def telegraf_config() -> str:
        return cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "configmap", "telegraf-config")["data"][
            "telegraf.conf"
        ]

    def secret_keys() -> set[str]:
        return set(cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "secret", "telegraf-environment")["data"])

    before = pod_uids(cluster)
    extra = {
        "telegraf_processors": [{"plugin": "converter", "options": {"fields": {"float": ["seq"]}}}],
        "telegraf_environment": {"SENSORSTACK_TEST_TOKEN": "token-of-the-test"},
    }
    run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name, "--extra-vars", json.dumps(extra))
    try:
        assert run.returncode == 0, run.tail()
        after = pod_uids(cluster)
        rolled = sorted(name for name in WORKLOADS if after.get(name) != before.get(name))
        assert rolled == ["telegraf"], (before, after)
        assert "[[processors.converter]]" in telegraf_config()
        assert "SENSORSTACK_TEST_TOKEN" in secret_keys()
    finally:
        dropped = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
    assert dropped.returncode == 0, dropped.tail()
    assert "SENSORSTACK_TEST_TOKEN" not in secret_keys()
    assert "[[processors.converter]]" not in telegraf_config()


def test_every_telegraf_pod_wrote_the_same_host_tag(cluster: Cluster) -> None:
    """Telegraf pods come and go (the rollouts and the lost worker above): the readings keep one host tag, the pods'
    fixed hostname, so each device's readings stay one series."""
    series = influx_query(cluster, 'SHOW TAG VALUES WITH KEY = "host"')
    assert series, "no reading in the telemetry database"
    assert {row[1] for one in series for row in one["values"]} == {"telegraf"}


def contained(rendered: Any, live: Any, path: str = "") -> list[str]:
    """Where ``rendered`` is not part of ``live``: the API server adds defaults, never changes what was applied."""
    if isinstance(rendered, dict):
        if not isinstance(live, dict):
            return [f"{path}: {live!r} is not a mapping"]
        return [
            problem for key, value in rendered.items() for problem in contained(value, live.get(key), f"{path}.{key}")
        ]
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return [f"{path}: {live!r} is not a list of {len(rendered)}"]
        pairs = enumerate(zip(rendered, live, strict=True))
        return [problem for index, (a, b) in pairs for problem in contained(a, b, f"{path}[{index}]")]
    return [] if rendered == live or str(rendered) == str(live) else [f"{path}: rendered {rendered!r}, live {live!r}"]


def test_render_writes_the_objects_the_roles_applied(cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    result = subprocess.run(
        [sys.executable, "-m", "sensorstack.cli", "render", str(folder), "-i", str(cluster.inventory), "-q"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    problems = []
    for path in sorted(folder.glob("*.yaml")):
        for rendered in yaml.safe_load_all(path.read_text()):
            metadata = rendered["metadata"]
            scope = [f"--namespace={metadata['namespace']}"] if "namespace" in metadata else []
            live = cluster.kubectl_json(
                *scope,
                "get",
                f"{rendered['kind']}.{rendered['apiVersion'].split('/')[0]}"
                if "/" in rendered["apiVersion"]
                else rendered["kind"],
                metadata["name"],
            )
            if rendered["kind"] == "Secret":
                # Rendered without values; the keys are the same (the API server leaves out an empty data).
                assert set(rendered.get("data") or {}) == set(live.get("data") or {}), (path.name, metadata["name"])
                continue
            problems += [
                f"{path.name} {rendered['kind']} {metadata['name']}{problem}" for problem in contained(rendered, live)
            ]
    assert problems == []


def test_an_influxdb_that_a_bad_setting_broke_comes_back_when_the_setting_is_fixed(cluster: Cluster) -> None:
    """A setting that stops influxd leaves its pod crash-looping and the run failed. Fixing the setting must be enough:
    with the StatefulSet's default OrderedReady policy, Kubernetes waits for the broken pod to become Ready before it
    replaces it, forever (the "forced rollback" its documentation leaves to a manual pod delete)."""
    limit = ("--limit", cluster.control_plane.name)
    stored = len(influx_seq(cluster, "time > 0"))
    broken = {
        "influxdb_config_overrides": {"meta": {"dir": "/proc/sensorstack-no-such-directory/meta"}},
        "sensorstack_stack_wait_timeout": 60,
    }
    run = cluster.run_playbook(STACK, *limit, "--extra-vars", json.dumps(broken))
    try:
        assert run.returncode != 0, "influxd started with a meta directory it cannot create"
        statefulset = cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "statefulset", "influxdb")
        assert statefulset["status"].get("readyReplicas", 0) == 0, statefulset["status"]
    finally:
        fixed = cluster.run_playbook(STACK, *limit, "--extra-vars", json.dumps({"sensorstack_stack_wait_timeout": 300}))
    assert fixed.returncode == 0, fixed.tail()
    ready(cluster, "statefulset", "influxdb", timeout=60)
    # The volume kept what the database held before.
    assert len(influx_seq(cluster, "time > 0")) >= stored > 0


def test_a_statefulset_of_an_earlier_version_is_recreated_with_its_data(cluster: Cluster) -> None:
    """Earlier versions created InfluxDB's StatefulSet with the default OrderedReady policy, a field the API refuses
    to change in place. The run deletes the StatefulSet with its pod left running and applies it again; check mode
    changes nothing and passes."""
    limit = ("--limit", cluster.control_plane.name)
    namespace = f"--namespace={NAMESPACE}"
    stored = len(influx_seq(cluster, "time > 0"))
    live = cluster.kubectl_json(namespace, "get", "statefulset", "influxdb")
    earlier = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {key: live["metadata"][key] for key in ("name", "namespace", "labels")},
        "spec": live["spec"] | {"podManagementPolicy": "OrderedReady"},
    }
    cluster.kubectl(namespace, "delete", "statefulset", "influxdb", "--cascade=orphan")
    cluster.kubectl("create", "--filename=-", stdin=json.dumps(earlier))
    ready(cluster, "statefulset", "influxdb")

    def policy() -> str:
        return cluster.kubectl_json(namespace, "get", "statefulset", "influxdb")["spec"]["podManagementPolicy"]

    check = cluster.run_playbook(STACK, *limit, "--check")
    assert check.returncode == 0, check.tail()
    assert policy() == "OrderedReady"
    run = cluster.run_playbook(STACK, *limit)
    assert run.returncode == 0, run.tail()
    recreated = [task for task in run.changed_tasks() if "Delete the StatefulSets to recreate" in task]
    assert recreated, run.explain()
    assert policy() == "Parallel"
    ready(cluster, "statefulset", "influxdb")
    assert len(influx_seq(cluster, "time > 0")) >= stored > 0
    again = cluster.run_playbook(STACK, *limit)
    assert again.returncode == 0, again.tail()
    assert again.changed() == {cluster.control_plane.name: 0}, again.explain()


def test_check_mode_with_a_service_new_to_the_stack_says_what_a_run_would_do(cluster: Cluster) -> None:
    """Check mode creates nothing, so a service new to a running stack has no node port to configure it through yet:
    the check run says so and leaves its configuration to the run, which then starts and configures it."""
    limit = ("--limit", cluster.control_plane.name)
    cluster.kubectl(f"--namespace={NAMESPACE}", "delete", "deployment/grafana", "service/grafana", "--wait=true")
    try:
        check = cluster.run_playbook(STACK, *limit, "--check")
        assert check.returncode == 0, check.tail()
        reported = [task for task in check.changed_tasks() if "cannot reach before a run: grafana" in task]
        assert reported and "grafana does not run in namespace" in " ".join(check.output.split()), check.explain()
    finally:
        run = cluster.run_playbook(STACK, *limit)
    assert run.returncode == 0, run.tail()
    ready(cluster, "deployment", "grafana")
    assert grafana_login(cluster, secret(cluster, "grafana_admin")) == 200


def test_a_storage_node_that_moved_away_from_the_volumes_data_stops_before_any_change(cluster: Cluster) -> None:
    """The local volumes live on the first worker (the default storage node). Naming the other worker, as reordering
    the worker group does, must stop with the variable named, not with the API's refusal half-way through a run."""
    before = pod_uids(cluster)
    moved = {"sensorstack_stack_storage_node": WORKERS[1][0]}
    run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name, "--extra-vars", json.dumps(moved))
    assert run.returncode != 0
    # The callback may fold a long message over several lines.
    assert "sensorstack_stack_storage_node is cpc-worker2" in " ".join(run.output.split()), run.tail()
    assert run.changed() == {cluster.control_plane.name: 0}, run.explain()
    assert pod_uids(cluster) == before


RESTARTED_BROKER = "Restart the broker so that it reads the password file the run converged"


def broker_started_with_password_file(cluster: Cluster, edit: Callable[[str], str]) -> str:
    """Edit the password file of the Secret mosquitto by hand (``edit``: its text to the new text) and restart the
    broker on it, as a restart by hand would; return the Secret's key of the file."""
    namespace = f"--namespace={NAMESPACE}"
    data = cluster.kubectl_json(namespace, "get", "secret", "mosquitto")["data"]
    [key] = [name for name in data if name.endswith("passwd")]
    patch = {"data": {key: base64.b64encode(edit(b64decode(data[key]).decode()).encode()).decode()}}
    cluster.kubectl(namespace, "patch", "secret", "mosquitto", "--type=merge", f"--patch={json.dumps(patch)}")
    cluster.kubectl(namespace, "rollout", "restart", "deployment/mosquitto")
    ready(cluster, "deployment", "mosquitto")
    return key


def test_another_storage_class_for_the_claims_the_cluster_holds_stops_before_any_change(cluster: Cluster) -> None:
    """The claims are on the local volumes' class; a claim's class cannot change. Naming another class must stop with
    the variable and the claims named, not with the API's refusal after the services' Secrets and ConfigMaps."""
    before = pod_uids(cluster)
    switched = {"sensorstack_stack_storage_class": "longhorn"}
    run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name, "--extra-vars", json.dumps(switched))
    assert run.returncode != 0
    output = " ".join(run.output.split())
    assert 'sensorstack_stack_storage_class is "longhorn" (StorageClass longhorn), but the cluster\'s claims' in output
    assert "influxdb-data (sensorstack-local)" in output, run.tail()
    assert run.changed() == {cluster.control_plane.name: 0}, run.explain()
    assert pod_uids(cluster) == before


def test_a_user_added_to_the_secret_by_hand_is_removed_and_the_broker_restarted_without_it(cluster: Cluster) -> None:
    """mosquitto_users_exclusive (the default) keeps the password file to the declared users; the broker reads the
    file at its start only, so the run that removes a user added by hand must also restart the broker."""
    stray = f"stray-user:{hash_password('stray password', iterations=101).encode()}\n"
    key = broker_started_with_password_file(cluster, lambda held: held + stray)
    before = pod_uids(cluster)
    run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
    assert run.returncode == 0, run.tail()
    restarted = [task for task in run.changed_tasks() if RESTARTED_BROKER in task]
    assert restarted, run.explain()
    after = pod_uids(cluster)
    assert sorted(name for name in WORKLOADS if after.get(name) != before.get(name)) == ["mosquitto"], (before, after)
    now_held = b64decode(cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "secret", "mosquitto")["data"][key])
    assert "stray-user:" not in now_held.decode()
    again = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
    assert again.returncode == 0, again.tail()
    assert again.changed() == {cluster.control_plane.name: 0}, again.explain()


def test_a_declared_users_hash_changed_by_hand_is_put_back_and_the_broker_restarted_with_it(cluster: Cluster) -> None:
    """A Secret restored from an older backup, or edited by hand, holds another hash for a declared user: the broker,
    which read it at its start, refuses the declared password. The run puts the hash back and restarts the broker,
    although the declared users (and so the pod's checksum) did not change."""
    old_hash = hash_password("an old password", iterations=101).encode()
    # The first user's hash (user:hash on each line) becomes the old one.
    key = broker_started_with_password_file(
        cluster, lambda held: re.sub(r"(?<=:).*", lambda _: old_hash, held, count=1)
    )
    before = pod_uids(cluster)
    run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
    assert run.returncode == 0, run.tail()
    assert [task for task in run.changed_tasks() if RESTARTED_BROKER in task], run.explain()
    after = pod_uids(cluster)
    assert after["mosquitto"] != before["mosquitto"], (before, after)
    now_held = b64decode(cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "secret", "mosquitto")["data"][key])
    assert old_hash not in now_held.decode()


BRIDGE_NAMESPACE = "sensorstack-bridge-remote"
BRIDGE_PASSWORD = "bridge pass #1 of the cluster"
BRIDGE_REMOTE = """set -eu
umask 077
mosquitto_passwd -b -c /tmp/passwd site-a "$BRIDGE_PASSWORD"
printf '%s\\n' 'listener 1883' 'allow_anonymous false' 'password_file /tmp/passwd' > /tmp/mosquitto.conf
exec mosquitto -c /tmp/mosquitto.conf
"""


def bridge_remote(image: str) -> str:
    """A broker outside the stack's namespace, the remote end of a bridge, with a login of its own."""
    return yaml.safe_dump_all(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BRIDGE_NAMESPACE}},
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "remote", "namespace": BRIDGE_NAMESPACE},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1883,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "mosquitto",
                            "image": image,
                            "command": ["sh", "-c", BRIDGE_REMOTE],
                            "env": [{"name": "BRIDGE_PASSWORD", "value": BRIDGE_PASSWORD}],
                            "readinessProbe": {"tcpSocket": {"port": 1883}, "periodSeconds": 2},
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        }
                    ],
                },
            },
        ]
    )


def test_a_bridge_forwards_readings_with_its_password_in_the_secret_alone(cluster: Cluster) -> None:
    """mosquitto_bridges on Kubernetes: the bridges' file is a key of the Secret mosquitto (mosquitto.conf, a ConfigMap,
    only includes its folder), and the policy mosquitto-egress lets the broker reach the remote's IP address, which
    the namespace's default deny would drop. A reading a device publishes reaches the remote under the prefix."""
    namespace = f"--namespace={NAMESPACE}"
    image = cluster.kubectl_json(namespace, "get", "deployment", "mosquitto")["spec"]["template"]["spec"]["containers"][
        0
    ]["image"]
    manifests = bridge_remote(image)
    cluster.kubectl("apply", "--filename=-", stdin=manifests)
    try:
        cluster.kubectl(
            f"--namespace={BRIDGE_NAMESPACE}", "wait", "--for=condition=Ready", "pod/remote", "--timeout=300s"
        )
        remote_ip = cluster.kubectl_json(f"--namespace={BRIDGE_NAMESPACE}", "get", "pod", "remote")["status"]["podIP"]
        bridge = {
            "name": "remote",
            "addresses": [f"{remote_ip}:1883"],
            "topics": [{"pattern": "sensors/#", "remote_prefix": "bridged/"}],
            "remote_username": "site-a",
            "remote_password": BRIDGE_PASSWORD,
        }
        extra = json.dumps({"mosquitto_bridges": [bridge]})
        run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name, "--extra-vars", extra)
        assert run.returncode == 0, run.tail()
        assert BRIDGE_PASSWORD not in run.output

        config = cluster.kubectl_json(namespace, "get", "configmap", "mosquitto-config")["data"]["mosquitto.conf"]
        assert "include_dir /etc/mosquitto/bridges" in config and BRIDGE_PASSWORD not in config
        held = cluster.kubectl_json(namespace, "get", "secret", "mosquitto")["data"]
        assert f"remote_password {BRIDGE_PASSWORD}" in b64decode(held["bridges.bridges.conf"]).decode()
        egress = cluster.kubectl_json(namespace, "get", "networkpolicy", "mosquitto-egress")["spec"]["egress"]
        assert egress == [
            {"to": [{"ipBlock": {"cidr": f"{remote_ip}/32"}}], "ports": [{"protocol": "TCP", "port": 1883}]}
        ]

        # The device's own topic: the bridge also forwards the retained readings of earlier tests, as it should.
        device = f"bridge-{uuid.uuid4().hex[:8]}"
        topic = f"sensors/lab-device-1/{device}"
        subscriber = subprocess.Popen(
            [
                "docker", "exec", cluster.control_plane.container, *KUBECTL,
                f"--namespace={BRIDGE_NAMESPACE}", "exec", "remote", "--", "sh", "-c",
                'mosquitto_sub -u site-a -P "$BRIDGE_PASSWORD" -t "$1" -v -C 1 -W 120', "sh", f"bridged/{topic}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        publisher = start_publisher(cluster, device, count=100, pause=1)
        try:
            received, _ = subscriber.communicate(timeout=150)
        finally:
            publisher.kill()
            publisher.wait()
        assert subscriber.returncode == 0, received
        assert received.startswith(f"bridged/{topic} {{"), received
    finally:
        back = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name)
        cluster.kubectl("delete", "--filename=-", "--wait=false", stdin=manifests)
    assert back.returncode == 0, back.tail()
    assert not cluster.kubectl_json(namespace, "get", "networkpolicy", "mosquitto-egress")["spec"].get("egress")
    assert "bridges.bridges.conf" not in cluster.kubectl_json(namespace, "get", "secret", "mosquitto")["data"]


def test_a_node_port_another_service_holds_stops_the_stack_before_its_service_changes(cluster: Cluster) -> None:
    """A second stack, or another namespace's Service, holding a node port the settings ask for: the API would refuse
    the Service half-way through the apply. The role's check names the variable and the holder first."""
    squatter = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "squatter", "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "none"}, "ports": [{"port": 80, "nodePort": 30999}]},
    }
    manifest = json.dumps(squatter)
    cluster.kubectl("apply", "--filename=-", stdin=manifest)
    try:
        extra = json.dumps({"grafana_kubernetes_node_port": 30999})
        run = cluster.run_playbook(STACK, "--limit", cluster.control_plane.name, "--extra-vars", extra)
    finally:
        cluster.kubectl("delete", "--filename=-", stdin=manifest)
    assert run.returncode != 0
    assert "grafana_kubernetes_node_port (30999) is held by the Service default/squatter of the cluster" in run.output
    assert run.changed() == {cluster.control_plane.name: 0}, run.explain()
    grafana = cluster.kubectl_json(f"--namespace={NAMESPACE}", "get", "service", "grafana")
    assert [port["nodePort"] for port in grafana["spec"]["ports"]] == [NODE_PORTS["grafana"]]
