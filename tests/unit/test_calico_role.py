"""The calico role: its argument spec mirrors its defaults, and the objects it applies (Calico's manifest with the
settings laid over it) set the pool from the project's pod network, the chosen encapsulation, the address detection
and the pinned images; every cluster task runs on the controller through kubernetes.core, none shells out to kubectl.

The objects are rendered by Ansible's own templating from the role's defaults and vars over a small manifest of the
same shape as Calico's, as a play would; the cluster tier (tests/cluster/test_cluster.py) applies them
to a real cluster.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml

from .role_files import ROLES, ROOT, SHARED, RoleFiles, opened_tasks

ROLE = RoleFiles.load("calico")
KUBEADM_CONTROL_PLANE = RoleFiles.load("kubeadm_control_plane")
# The shape of Calico's calico-vxlan.yaml where the role changes it: a ServiceAccount named like the DaemonSet, the
# ConfigMap, a CRD, calico-node with init containers, environment from values and from the ConfigMap, and the
# controllers.
MANIFEST = """\
# Source: calico/templates/calico-node-rbac.yaml
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: calico-node, namespace: kube-system}
---
kind: ConfigMap
apiVersion: v1
metadata: {name: calico-config, namespace: kube-system}
data:
  calico_backend: "vxlan"
  veth_mtu: "0"
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ippools.crd.projectcalico.org}
spec:
  group: crd.projectcalico.org
  names: {kind: IPPool, plural: ippools}
---
kind: DaemonSet
apiVersion: apps/v1
metadata: {name: calico-node, namespace: kube-system}
spec:
  template:
    spec:
      initContainers:
        - name: install-cni
          image: quay.io/calico/cni:v3.31.0
        - name: ebpf-bootstrap
          image: "quay.io/calico/node:v3.31.0"
      containers:
        - name: calico-node
          image: quay.io/calico/node:v3.31.0
          env:
            - name: DATASTORE_TYPE
              value: "kubernetes"
            - name: CALICO_IPV4POOL_IPIP
              value: "Never"
            - name: CALICO_IPV4POOL_VXLAN
              value: "CrossSubnet"
            - name: FELIX_VXLANMTU
              valueFrom:
                configMapKeyRef: {name: calico-config, key: veth_mtu}
            - name: FELIX_HEALTHENABLED
              value: "true"
---
kind: Deployment
apiVersion: apps/v1
metadata: {name: calico-kube-controllers, namespace: kube-system}
spec:
  template:
    spec:
      containers:
        - name: calico-kube-controllers
          image: quay.io/calico/kube-controllers@sha256:0123456789abcdef
"""


def render(expression: str, **overrides: Any) -> Any:
    return ROLE.render(expression, **overrides)


def objects(**overrides: Any) -> list[dict[str, Any]]:
    """What the role applies, from MANIFEST as the file on the node."""
    return render("{{ calico_objects }}", calico_manifest_text=MANIFEST, **overrides)


def find(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [item for item in items if (item["kind"], item["metadata"]["name"]) == (kind, name)]
    return found


def node_container(**overrides: Any) -> dict[str, Any]:
    [container] = find(objects(**overrides), "DaemonSet", "calico-node")["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "calico-node"
    return container


def node_env(**overrides: Any) -> dict[str, str]:
    return {entry["name"]: entry.get("value") for entry in node_container(**overrides)["env"]}


def task_files() -> dict[str, list[dict[str, Any]]]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted((ROLES / "calico/tasks").glob("*.yml"))}


# Task keywords: every other key of a task names its module.
KEYWORDS = {
    "name", "when", "register", "vars", "loop", "loop_control", "delegate_to", "become", "changed_when",
    "failed_when", "check_mode", "block", "rescue", "always", "tags", "notify", "no_log", "until", "retries",
    "delay", "environment", "ignore_errors", "run_once", "args",
}  # fmt: skip


def module_of(task: dict[str, Any]) -> str | None:
    return next((key for key in task if key not in KEYWORDS), None)


def module_tasks(*modules: str) -> list[tuple[str, dict[str, Any]]]:
    """(file, task) for every task whose module is one of modules, or starts with one that ends with a dot."""
    return [
        (name, task)
        for name, tasks in task_files().items()
        for task in opened_tasks(tasks)
        if (module := module_of(task))
        and any(module == wanted or (wanted.endswith(".") and module.startswith(wanted)) for wanted in modules)
    ]


def test_the_pool_is_the_project_pod_network() -> None:
    env = node_env(sensorstack_pod_cidr="10.50.0.0/16")
    assert env["CALICO_IPV4POOL_CIDR"] == "10.50.0.0/16"
    assert env["CALICO_IPV4POOL_BLOCK_SIZE"] == "26"
    assert env["CALICO_IPV4POOL_NAT_OUTGOING"] == "true"
    # What the role checks the created pool against follows the same variable.
    assert render("{{ calico_pool_wanted.cidr }}", sensorstack_pod_cidr="10.50.0.0/16") == "10.50.0.0/16"


@pytest.mark.parametrize(
    ("encapsulation", "vxlan"),
    [("VXLAN", "Always"), ("VXLANCrossSubnet", "CrossSubnet")],
)
def test_each_supported_encapsulation_sets_the_pool_modes(encapsulation: str, vxlan: str) -> None:
    env = node_env(calico_encapsulation=encapsulation)
    assert (env["CALICO_IPV4POOL_VXLAN"], env["CALICO_IPV4POOL_IPIP"]) == (vxlan, "Never")


def test_encapsulations_that_need_bgp_are_offered_by_the_spec_but_not_supported() -> None:
    offered = set(ROLE.options["calico_encapsulation"]["choices"])
    supported = set(ROLE.vars["calico_pool_modes"])
    assert offered - supported == {"IPIP", "None"}
    assert supported <= offered


def test_address_detection_follows_the_host_networks() -> None:
    assert node_env()["IP_AUTODETECTION_METHOD"] == "kubernetes-internal-ip"
    env = node_env(sensorstack_host_cidrs=["192.168.56.0/24", "10.1.0.0/24"])
    assert env["IP_AUTODETECTION_METHOD"] == "cidr=192.168.56.0/24,10.1.0.0/24"
    assert node_env(calico_ip_autodetection_method="interface=eth0")["IP_AUTODETECTION_METHOD"] == "interface=eth0"


@pytest.mark.parametrize(
    ("method", "valid"),
    [
        ("first-found", True),
        ("kubernetes-internal-ip", True),
        ("cidr=10.213.0.0/24", True),
        ("interface=eth0", True),
        ("can-reach=10.213.0.1", True),
        ("interface=", False),
        ("eth0", False),
        ("cidr 10.213.0.0/24", False),
    ],
)
def test_address_detection_methods_are_recognised(method: str, valid: bool) -> None:
    assert bool(re.match(ROLE.vars["calico_autodetection_pattern"].strip(), method)) is valid


def images(items: list[dict[str, Any]]) -> list[str]:
    return [
        container["image"]
        for item in items
        for field in ("initContainers", "containers")
        for container in item.get("spec", {}).get("template", {}).get("spec", {}).get(field, [])
    ]


@pytest.mark.parametrize(
    "registry",
    # A registry with a port: its digits must not be read as part of a group number in the replacement.
    ["registry.example.net:5000", "10.213.0.1:5000", "quay.io"],
)
def test_every_image_of_the_manifest_is_pinned_to_the_release_and_registry(registry: str) -> None:
    version = SHARED["sensorstack_calico_version"]
    assert images(objects(calico_image_registry=registry)) == [
        f"{registry}/calico/{image}:v{version}" for image in ("kube-controllers", "cni", "node", "node")
    ]


def test_the_objects_keep_the_manifests_order_with_the_changed_ones_last() -> None:
    assert [(item["kind"], item["metadata"]["name"]) for item in objects()] == [
        ("ServiceAccount", "calico-node"),
        ("CustomResourceDefinition", "ippools.crd.projectcalico.org"),
        ("Deployment", "calico-kube-controllers"),
        ("ConfigMap", "calico-config"),
        ("DaemonSet", "calico-node"),
    ]


def test_the_mtu_goes_to_calicos_config_map_as_a_string() -> None:
    config = find(objects(calico_mtu=1400), "ConfigMap", "calico-config")
    assert config["data"] == {"calico_backend": "vxlan", "veth_mtu": "1400"}


def test_a_changed_mtu_rolls_calico_node_which_reads_it_only_at_its_start() -> None:
    def annotations(**overrides: Any) -> dict[str, str]:
        node = find(objects(**overrides), "DaemonSet", "calico-node")
        return dict(node["spec"]["template"]["metadata"].get("annotations") or {})

    assert annotations(calico_mtu=1400) == annotations(calico_mtu=1400)
    assert annotations(calico_mtu=1400) != annotations(calico_mtu=0)


VALIDATE = yaml.safe_load((ROLES / "calico/tasks/validate.yml").read_text())[0]


@pytest.mark.parametrize(("mtu", "fits"), [(0, True), (1450, True), (1451, False), (1500, False)])
def test_an_mtu_that_leaves_no_room_for_vxlan_on_the_node_is_refused(mtu: int, fits: bool) -> None:
    variables = {name: value for name, value in VALIDATE["vars"].items() if name != "calico_problems"}
    problems = render(
        VALIDATE["vars"]["calico_problems"],
        **variables,
        calico_mtu=mtu,
        inventory_hostname="cp1",
        ansible_facts={"default_ipv4": {"mtu": 1500}},
    )
    assert (problems == []) is fits, problems
    if not fits:
        assert "Set at most 1450" in problems[0]


def test_the_manifest_and_its_checksum_follow_the_pins_and_the_mirror() -> None:
    mirror = "http://10.213.0.1:8080"
    version = SHARED["sensorstack_calico_version"]
    assert render("{{ calico_manifest_url }}", sensorstack_mirror=mirror) == (
        f"{mirror}/files/calico/v{version}/calico-vxlan.yaml"
    )
    assert render("{{ calico_manifest_checksum }}") == SHARED["sensorstack_calico_manifest_checksum"]
    assert re.match(ROLE.vars["calico_checksum_pattern"], SHARED["sensorstack_calico_manifest_checksum"])


def test_every_object_is_applied_server_side_under_one_field_manager() -> None:
    tasks = [task for name, task in module_tasks("kubernetes.core.k8s") if name == "apply.yml"]
    applied = []
    for task in tasks:
        options = task["kubernetes.core.k8s"]
        assert options["apply"] is True
        assert render(options["server_side_apply"]) == {"field_manager": "sensorstack", "force_conflicts": True}
        # The CRDs in one call (those a new cluster lacks: all of them), the other objects in another.
        definition = task.get("vars", {}).get("calico_crds_to_apply", options["definition"])
        applied.append(render(definition, calico_manifest_text=MANIFEST, calico_crds_held={"resources": []}))
    crds, others = applied
    assert {item["kind"] for item in crds} == {"CustomResourceDefinition"}
    assert "CustomResourceDefinition" not in {item["kind"] for item in others}
    assert len(crds) + len(others) == len(objects())


def test_the_manifest_is_parsed_once_from_the_file_read_from_the_node() -> None:
    (task,) = [
        task
        for name, task in module_tasks("ansible.builtin.set_fact")
        if name == "apply.yml" and "calico_manifest_parsed" in task["ansible.builtin.set_fact"]
    ]
    slurped = {"content": base64.b64encode(MANIFEST.encode()).decode()}
    parsed = render(
        task["ansible.builtin.set_fact"]["calico_manifest_parsed"],
        calico_manifest_text=render(task["vars"]["calico_manifest_text"], calico_manifest_read=slurped),
    )
    assert render("{{ calico_objects }}", calico_manifest_parsed=parsed) == objects()
    assert render("{{ calico_objects }}", calico_manifest_parsed=parsed, calico_manifest_text="") == objects()
    stale = render(
        task["ansible.builtin.set_fact"]["calico_manifest_parsed"],
        calico_manifest_parsed=[],
        calico_manifest_text=MANIFEST,
    )
    assert stale == parsed, "a second read parses the manifest again"


def test_only_the_resource_definitions_the_cluster_lacks_or_holds_otherwise_are_applied() -> None:
    (task,) = [
        task for _, task in module_tasks("kubernetes.core.k8s") if "calico_crds_to_apply" in task.get("vars", {})
    ]
    crds = [item for item in objects() if item["kind"] == "CustomResourceDefinition"]
    # As the API server lists them: no kind or apiVersion per item, and fields of its own added.
    held = [
        {key: value for key, value in crd.items() if key not in ("kind", "apiVersion")}
        | {
            "status": {"acceptedNames": crd["spec"]["names"]},
            "spec": crd["spec"] | {"conversion": {"strategy": "None"}},
        }
        for crd in crds
    ]
    template = task["vars"]["calico_crds_to_apply"]
    assert render(template, calico_manifest_text=MANIFEST, calico_crds_held={"resources": held}) == []
    held[0] = held[0] | {"spec": held[0]["spec"] | {"group": "edited.example.org"}}
    changed = render(template, calico_manifest_text=MANIFEST, calico_crds_held={"resources": held[1:] + held[:1]})
    assert [item["metadata"]["name"] for item in changed] == [crds[0]["metadata"]["name"]]
    assert render(template, calico_manifest_text=MANIFEST, calico_crds_held={"resources": held[1:]}) == crds[:1]


def test_a_running_pool_is_patched_only_where_the_settings_allow_and_before_the_manifest_is_placed() -> None:
    main = [task.get("ansible.builtin.include_tasks") for task in opened_tasks(task_files()["main.yml"])]
    assert main.index("pool.yml") < main.index("manifest.yml")
    (patch,) = [task for name, task in module_tasks("kubernetes.core.k8s") if name == "pool.yml"]
    options = patch["kubernetes.core.k8s"]
    assert (options["state"], options["merge_type"]) == ("patched", "merge")
    assert patch["when"] == "calico_pool_changes | length > 0"


def test_a_run_applies_calico_once_and_a_second_use_only_waits() -> None:
    """site.yml uses the role once every node has joined without the wait, then after the certificate play for the
    wait only."""
    (apply_once, wait) = task_files()["main.yml"]
    assert apply_once["when"] == "not (calico_applied_in_this_run | default(false))"
    steps = [task.get("ansible.builtin.include_tasks") for task in apply_once["block"]]
    assert [step for step in steps if step] == ["validate.yml", "pool.yml", "manifest.yml", "apply.yml"]
    assert apply_once["block"][-1]["ansible.builtin.set_fact"] == {"calico_applied_in_this_run": True}
    assert wait["ansible.builtin.include_tasks"] == "verify.yml"
    assert "calico_wait" in wait["when"]
    plays = yaml.safe_load((ROOT / "playbooks/cluster.yml").read_text())
    names = [play["name"] for play in plays]
    (apply_play,) = [play for play in plays if [role["role"] for role in play.get("roles", [])] == ["calico"]]
    assert apply_play["roles"][0]["vars"] == {"calico_wait": False}
    assert names.index("Join the other control-plane nodes, one at a time") < names.index(apply_play["name"])
    assert names.index("Join the workers to the cluster") < names.index(apply_play["name"])
    assert names.index(apply_play["name"]) < names.index("Renew the control-plane certificates before they expire")
    assert apply_play["tags"] == ["network"]


def test_no_task_shells_out_to_kubectl() -> None:
    commands = module_tasks(
        "ansible.builtin.command", "ansible.builtin.shell", "ansible.legacy.command", "ansible.legacy.shell",
        "command", "shell", "ansible.builtin.raw", "raw",
    )  # fmt: skip
    assert [(name, task["name"]) for name, task in commands if "kubectl" in yaml.safe_dump(task)] == []
    # Nor any other way: no task names kubectl in what it runs.
    mentions = [
        (name, task["name"])
        for name, tasks in task_files().items()
        for task in opened_tasks(tasks)
        if "kubectl" in yaml.safe_dump({key: value for key, value in task.items() if key not in ("name", "block")})
    ]
    assert mentions == []


def test_every_cluster_task_runs_on_the_controller_with_the_roles_kubeconfig() -> None:
    tasks = module_tasks("kubernetes.core.")
    assert len(tasks) >= 6
    for name, task in tasks:
        module = module_of(task)
        assert (task.get("delegate_to"), task.get("become")) == ("localhost", False), (name, task["name"])
        assert task[module]["kubeconfig"] == "{{ calico_kubeconfig }}", (name, task["name"])


def test_the_kubeconfig_is_where_kubeadm_control_plane_fetches_it() -> None:
    kubeconfig = render("{{ calico_kubeconfig }}", inventory_dir="/srv/inventory")
    assert kubeconfig == "/srv/inventory/artifacts/admin.conf"
    fetched = KUBEADM_CONTROL_PLANE.render(
        "{{ kubeadm_control_plane_kubeconfig_local_path }}", inventory_dir="/srv/inventory"
    )
    assert kubeconfig == fetched


def test_extra_environment_is_added_and_replaces_entries_of_the_same_name() -> None:
    env = node_env(
        calico_node_extra_env=[
            {"name": "FELIX_DebugSkipCTLBCleanup", "value": "true"},
            {"name": "IP_AUTODETECTION_METHOD", "value": "interface=eth1"},
        ]
    )
    assert env["FELIX_DebugSkipCTLBCleanup"] == "true"
    assert env["IP_AUTODETECTION_METHOD"] == "interface=eth1"
    names = [entry["name"] for entry in node_container()["env"]]
    assert len(names) == len(set(names))


def test_an_entry_replaces_the_manifests_entry_of_the_same_name_whole() -> None:
    env = node_container(calico_node_extra_env=[{"name": "FELIX_VXLANMTU", "value": "1400"}])["env"]
    assert [entry for entry in env if entry["name"] == "FELIX_VXLANMTU"] == [
        {"name": "FELIX_VXLANMTU", "value": "1400"}
    ]


def test_the_roles_settings_come_first_then_the_manifests_other_entries() -> None:
    # The order kustomize's strategic merge gave, so a cluster an earlier version set up sees no change.
    names = [entry["name"] for entry in node_container()["env"]]
    assert names == [
        "CALICO_IPV4POOL_CIDR",
        "CALICO_IPV4POOL_BLOCK_SIZE",
        "CALICO_IPV4POOL_VXLAN",
        "CALICO_IPV4POOL_IPIP",
        "CALICO_IPV4POOL_NAT_OUTGOING",
        "IP_AUTODETECTION_METHOD",
        "DATASTORE_TYPE",
        "FELIX_VXLANMTU",
        "FELIX_HEALTHENABLED",
    ]
