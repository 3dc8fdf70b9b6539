"""The filters that shape the stack's cluster objects: Secret keys of mounted files, claims and their local volumes,
and how `sensorstack render` writes objects for review (Secrets without values)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.kubernetes_objects import (
    REDACTED,
    claims_of_another_class,
    config_checksum,
    holds,
    ip_block,
    local_volume,
    moved_volumes,
    new_selectors,
    not_held_by,
    redact_secrets,
    relative_path,
    released_volumes,
    rollouts_pending,
    secret_key,
    statefulsets_to_recreate,
    to_yaml_documents,
    volume_claim,
)

from .role_files import ROLES, RoleFiles

SIZES = {"mosquitto": "1Gi", "influxdb": "10Gi"}


def test_a_file_in_a_subdirectory_gets_a_key_a_secret_accepts_and_keeps_its_path() -> None:
    assert secret_key("/etc/mosquitto/tls/server.key", "/etc/mosquitto/") == "tls.server.key"
    assert relative_path("/etc/mosquitto/tls/server.key", "/etc/mosquitto") == "tls/server.key"


def test_a_file_outside_the_mounted_directory_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="/var/lib/passwd does not lie under /etc/mosquitto"):
        secret_key("/var/lib/passwd", "/etc/mosquitto")
    with pytest.raises(AnsibleFilterError):
        relative_path("/etc/mosquittoX/passwd", "/etc/mosquitto")


def test_the_local_claim_selects_exactly_the_volume_made_for_it() -> None:
    claim = volume_claim("influxdb", "stack", "sensorstack-local", "sensorstack-local", SIZES, "sensorstack")
    volume = local_volume("influxdb", "stack", "sensorstack-local", "worker1", "/srv/volumes/", SIZES, "sensorstack")
    assert claim["metadata"] == {
        "name": "influxdb-data",
        "namespace": "stack",
        "labels": {"app.kubernetes.io/name": "influxdb", "app.kubernetes.io/part-of": "sensorstack"},
    }
    assert claim["spec"]["selector"]["matchLabels"] == volume["metadata"]["labels"]
    assert claim["spec"]["resources"]["requests"]["storage"] == volume["spec"]["capacity"]["storage"] == "10Gi"
    assert volume["spec"]["local"]["path"] == "/srv/volumes/stack-influxdb-data"
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["worker1"]}]}]
    # Another namespace's stack never takes this volume.
    other = volume_claim("influxdb", "other", "sensorstack-local", "sensorstack-local", SIZES, "sensorstack")
    assert other["spec"]["selector"]["matchLabels"] != volume["metadata"]["labels"]


def test_a_claim_of_a_provisioners_class_has_no_selector_which_would_stop_provisioning() -> None:
    claim = volume_claim("mosquitto", "stack", "longhorn", "sensorstack-local", SIZES, "sensorstack")
    assert "selector" not in claim["spec"]
    assert claim["spec"]["storageClassName"] == "longhorn"


def test_a_service_without_a_size_is_named() -> None:
    with pytest.raises(AnsibleFilterError, match="no size for grafana"):
        volume_claim("grafana", "stack", "x", "x", SIZES, "sensorstack")
    with pytest.raises(AnsibleFilterError, match="no size for grafana"):
        local_volume("grafana", "stack", "x", "node", "/srv", SIZES, "sensorstack")


def test_rendered_secrets_keep_their_keys_and_lose_every_value() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"passwd": "hash"}, "data": {"k": "djE="}}
    config = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a.conf": "x"}}
    redacted = redact_secrets([secret, config])
    assert redacted[0]["stringData"] == {"passwd": REDACTED} and redacted[0]["data"] == {"k": REDACTED}
    assert redacted[1] == config
    # The objects the roles apply are left as they were.
    assert secret["stringData"] == {"passwd": "hash"}
    # Not base64: kubectl apply of a rendered folder refuses the Secret instead of writing the placeholder over it.
    with pytest.raises(binascii.Error):
        base64.b64decode(REDACTED, validate=True)


def test_objects_are_written_as_one_stream_kubectl_reads_back_in_order() -> None:
    objects = [{"kind": "ConfigMap", "data": {"a.conf": "line 1\nline 2\n"}}, {"kind": "Service", "spec": {}}]
    text = to_yaml_documents(objects)
    assert text.startswith("---\n")
    assert list(yaml.safe_load_all(text)) == objects


def test_the_config_checksum_follows_the_values_and_is_not_a_plain_hash_of_them() -> None:
    files = {"grafana.ini": "[server]\n", "admin_password": "weak"}

    checksum = config_checksum(files)

    assert checksum == config_checksum(dict(reversed(files.items())))
    assert checksum != config_checksum(files | {"admin_password": "weak2"})
    plain = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    assert len(checksum) == 64 and checksum != hashlib.sha256(plain).hexdigest()


def test_an_object_with_fields_the_server_added_is_held() -> None:
    wanted = {"metadata": {"name": "a"}, "spec": {"versions": [{"name": "v1", "served": True}]}}
    live = {"metadata": {"name": "a", "uid": "1"}, "spec": {"versions": [{"name": "v1", "served": True, "x": 1}]}}
    assert holds(live, wanted)
    assert holds(live, wanted | {"spec": wanted["spec"] | {"preserveUnknownFields": False, "x": [], "y": ""}})
    assert not holds(live, wanted | {"spec": wanted["spec"] | {"preserveUnknownFields": True}})
    assert holds(live, wanted | {"metadata": {"name": "a", "creationTimestamp": None}})


@pytest.mark.parametrize(
    "live_spec",
    [
        {"versions": [{"name": "v1", "served": False}]},
        {"versions": [{"name": "v1", "served": 1}]},
        {"versions": [{"name": "v1", "served": True}, {"name": "v2", "served": True}]},
        {"versions": []},
        {},
    ],
)
def test_a_changed_missing_or_extra_item_is_not_held(live_spec: dict) -> None:
    wanted = {"metadata": {"name": "a"}, "spec": {"versions": [{"name": "v1", "served": True}]}}
    assert not holds({"metadata": {"name": "a"}, "spec": live_spec}, wanted)


def test_objects_the_listing_lacks_or_holds_otherwise_are_to_be_applied() -> None:
    wanted = [
        {"apiVersion": "v1", "kind": "X", "metadata": {"name": name}, "spec": {"n": index}}
        for index, name in enumerate("abc")
    ]
    live = [{"metadata": {"name": "a"}, "spec": {"n": 0}}, {"metadata": {"name": "b"}, "spec": {"n": 9}}]
    wanted[0]["status"] = {"acceptedNames": {"kind": ""}, "storedVersions": None}
    assert [item["metadata"]["name"] for item in not_held_by(wanted, live)] == ["b", "c"]


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.0.0.0/8", {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}),
        ("10.213.0.0/24", {"cidr": "10.213.0.0/24"}),
        ("0.0.0.0/0", {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}),
        ("fd00::/8", {"cidr": "fd00::/8"}),
    ],
)
def test_a_network_peer_never_admits_a_pod_by_its_address(cidr: str, expected: dict) -> None:
    assert ip_block(cidr, "10.244.0.0/16") == {"ipBlock": expected}


def test_a_network_peer_leaves_out_every_node_but_the_first_control_plane() -> None:
    # Calico masquerades a pod's traffic to another node's node port as its own node: those nodes' addresses are left
    # out, sorted, where the network holds them; a tunnel address is in the pod network, left out already.
    left_out = ["10.213.0.22", "10.213.0.21", "10.244.1.0", "192.0.2.21", "fd00::21"]

    assert ip_block("10.213.0.0/24", "10.244.0.0/16", left_out) == {
        "ipBlock": {"cidr": "10.213.0.0/24", "except": ["10.213.0.21/32", "10.213.0.22/32"]}
    }
    assert ip_block("10.0.0.0/8", "10.244.0.0/16", left_out) == {
        "ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.213.0.21/32", "10.213.0.22/32", "10.244.0.0/16"]}
    }
    assert ip_block("fd00::/64", "10.244.0.0/16", left_out) == {
        "ipBlock": {"cidr": "fd00::/64", "except": ["fd00::21/128"]}
    }
    # The first control plane's own address (not left out) is admitted as such.
    assert ip_block("10.213.0.11/32", "10.244.0.0/16", left_out) == {"ipBlock": {"cidr": "10.213.0.11/32"}}


def test_a_network_that_is_only_a_left_out_node_is_refused_with_its_variable() -> None:
    with pytest.raises(
        AnsibleFilterError, match=r"sensorstack_stack_admin_cidrs: 10\.213\.0\.21/32 is the address of a"
    ):
        ip_block("10.213.0.21/32", "10.244.0.0/16", ["10.213.0.21"], "sensorstack_stack_admin_cidrs")


@pytest.mark.parametrize("cidr", ["10.244.3.0/24", "10.244.0.0/16"])
def test_a_network_inside_the_pod_network_is_refused_with_its_variable(cidr: str) -> None:
    # sensorstack render and stack.yml run alone meet it here, without preflight: no except could keep pods out.
    with pytest.raises(AnsibleFilterError, match=rf"sensorstack_stack_device_cidrs: {cidr} lies in the pod network"):
        ip_block(cidr, "10.244.0.0/16", [], "sensorstack_stack_device_cidrs")


def test_a_volume_the_cluster_holds_on_another_node_or_in_another_directory_is_named() -> None:
    def volume(component: str, node: str, directory: str = "/srv/volumes") -> dict:
        return local_volume(component, "stack", "sensorstack-local", node, directory, SIZES, "sensorstack")

    held = [volume("influxdb", "worker1"), volume("mosquitto", "worker1")]
    # As the API lists them: items without their kind.
    listed = [{key: value for key, value in item.items() if key != "kind"} for item in held]
    assert moved_volumes(listed, [volume("influxdb", "worker1"), volume("mosquitto", "worker1")]) == []
    assert moved_volumes(listed, [volume("influxdb", "worker2"), volume("mosquitto", "worker2")]) == [
        "stack-influxdb-data (on worker1, in /srv/volumes/stack-influxdb-data)",
        "stack-mosquitto-data (on worker1, in /srv/volumes/stack-mosquitto-data)",
    ]
    assert moved_volumes(listed, [volume("influxdb", "worker1", "/data")]) == [
        "stack-influxdb-data (on worker1, in /srv/volumes/stack-influxdb-data)"
    ]
    # A volume the cluster does not hold yet goes anywhere.
    assert moved_volumes([], [volume("influxdb", "worker2")]) == []


def test_a_claim_the_cluster_holds_in_another_class_is_named() -> None:
    def claim(component: str, storage_class: str) -> dict:
        return volume_claim(component, "stack", storage_class, "sensorstack-local", SIZES, "sensorstack")

    # Another claim of the namespace, not the stack's: not compared.
    other = {"metadata": {"name": "other-data"}, "spec": {"storageClassName": "x"}}
    held = [claim("influxdb", "sensorstack-local"), claim("mosquitto", "sensorstack-local"), other]
    components = ["mosquitto", "telegraf", "influxdb"]
    assert claims_of_another_class(held, "sensorstack-local", components) == []
    assert claims_of_another_class(held, "longhorn", components) == [
        "influxdb-data (sensorstack-local)",
        "mosquitto-data (sensorstack-local)",
    ]
    # A service taken out of the stack keeps its claim: not compared.
    assert claims_of_another_class(held, "longhorn", ["telegraf"]) == []


def test_a_volume_whose_claim_was_deleted_is_freed_for_the_new_claim() -> None:
    def volume(component: str) -> dict:
        return local_volume(component, "stack", "sensorstack-local", "worker1", "/srv/volumes", SIZES, "sensorstack")

    def listed(component: str, phase: str) -> dict:
        # As the API lists a volume: no kind, the binder's claimRef and a status.
        item = {key: value for key, value in volume(component).items() if key != "kind"}
        claim = {"namespace": "stack", "name": f"{component}-data", "uid": "0f0e"}
        return item | {"spec": item["spec"] | {"claimRef": claim}, "status": {"phase": phase}}

    held = [listed("influxdb", "Released"), listed("mosquitto", "Bound")]
    wanted = [volume("influxdb"), volume("mosquitto")]
    assert released_volumes(held, wanted) == ["stack-influxdb-data"]
    assert released_volumes([listed("influxdb", "Available")], wanted) == []
    # A volume of another stack, or of a service no longer deployed, is left as it is.
    assert released_volumes(held, [volume("mosquitto")]) == []
    assert released_volumes([], wanted) == []


REFUSED = (
    'StatefulSet.apps "influxdb" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
    "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
STACK_OBJECTS = [
    {"kind": "Service", "metadata": {"name": "influxdb", "namespace": "sensorstack"}},
    {"kind": "StatefulSet", "metadata": {"name": "influxdb", "namespace": "sensorstack"}},
]


def apply_failure(message: str, body_as_bytes: bool) -> str:
    """kubernetes.core's message for a refused apply: the API's Status body, as bytes or text."""
    body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "reason": "Invalid", "code": 422})
    return f"Failed to apply object: {body.encode() if body_as_bytes else body}"


@pytest.mark.parametrize("body_as_bytes", [True, False], ids=["body as bytes", "body as text"])
def test_a_statefulset_whose_fixed_fields_changed_is_recreated(body_as_bytes: bool) -> None:
    failure = apply_failure(REFUSED, body_as_bytes)
    assert statefulsets_to_recreate(STACK_OBJECTS, failure) == [{"namespace": "sensorstack", "name": "influxdb"}]


@pytest.mark.parametrize(
    "message",
    [
        'Service "influxdb" is invalid: spec.ports[0].nodePort: Invalid value: 30086: port is already allocated',
        REFUSED.replace('"influxdb"', '"prometheus"'),
        "",
    ],
    ids=["another refusal", "a StatefulSet the role does not declare", "no failure"],
)
def test_any_other_failure_recreates_nothing(message: str) -> None:
    assert statefulsets_to_recreate(STACK_OBJECTS, apply_failure(message, True) if message else "") == []


def test_a_new_selector_is_named_since_the_running_pods_would_not_be_adopted() -> None:
    declared = [
        {"kind": "Service", "metadata": {"name": "influxdb"}, "spec": {"selector": {"app": "influxdb"}}},
        {"kind": "StatefulSet", "metadata": {"name": "influxdb"}, "spec": {"selector": {"matchLabels": {"app": "i"}}}},
    ]
    same = [
        {"metadata": {"name": "influxdb"}, "spec": {"selector": {"matchLabels": {"app": "i"}, "matchExpressions": []}}}
    ]
    other = [{"metadata": {"name": "influxdb"}, "spec": {"selector": {"matchLabels": {"app": "old"}}}}]
    assert new_selectors(declared, same) == []
    assert new_selectors(declared, other) == ["influxdb"]
    assert new_selectors(declared, []) == []


def deployment(generation: int, observed: int, replicas: int, updated: int, available: int) -> dict:
    return {
        "metadata": {"name": "grafana", "generation": generation},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": available,
        },
    }


@pytest.mark.parametrize(
    ("status", "pending"),
    [
        # A Recreate rollout's first moment: the old pod told to stop but still counted available.
        (deployment(2, 2, 1, 0, 1), ["grafana"]),
        (deployment(2, 1, 1, 1, 1), ["grafana"]),  # the controller has not seen the new spec yet
        (deployment(2, 2, 0, 0, 0), ["grafana"]),  # old pods gone, the new one not yet running
        (deployment(2, 2, 1, 1, 0), ["grafana"]),  # the new pod runs, not yet available (minReadySeconds)
        (deployment(2, 2, 1, 1, 1), []),
    ],
)
def test_a_rollout_is_done_when_every_replica_runs_the_new_template_and_is_available(
    status: dict, pending: list[str]
) -> None:
    assert rollouts_pending([status]) == pending


def test_the_rollout_wait_waits_for_each_changed_deployment_and_no_other() -> None:
    [wait, stop] = yaml.safe_load((ROLES / "sensorstack/tasks/kubernetes_rollout.yml").read_text())
    files = RoleFiles.load("sensorstack")

    def rendered(expression: str, *pending: str) -> Any:
        resources = []
        for name in ("mosquitto", "telegraf", "grafana"):
            status = deployment(2, 2, 1, 0 if name in pending else 1, 1)
            status["metadata"]["name"] = name
            resources.append(status)
        changed = [{"namespace": "sensorstack", "name": "telegraf"}, {"namespace": "sensorstack", "name": "grafana"}]
        variables = {"sensorstack_rollout_found": {"resources": resources}, "sensorstack_rollout_deployments": changed}
        variables |= {name: files.render(value, **variables) for name, value in wait["vars"].items()}
        variables["sensorstack_stack_wait_timeout"] = 600
        return files.render(expression, **variables)

    def done(*pending: str) -> bool:
        return rendered("{{ " + wait["until"] + " }}", *pending)

    assert done() is True
    assert done("grafana") is False  # the second of the changed Deployments counts too
    assert done("telegraf") is False
    assert done("mosquitto") is True  # not changed by this apply: not waited for
    # The wait that runs out passes (failed_when): the next task stops, naming what is not done and the setting.
    assert stop["vars"] == wait["vars"]
    assert " ".join(rendered(stop["ansible.builtin.fail"]["msg"], "grafana", "mosquitto").split()) == (
        "the rollout of grafana in namespace sensorstack is not done after 600 s (sensorstack_stack_wait_timeout): "
        "kubectl --namespace sensorstack describe deployment grafana, and the events of its pods, say why"
    )
