"""The kubeadm_join role: its argument spec mirrors its defaults, and the JoinConfiguration it renders carries what
`kubeadm token create --print-join-command` printed on the control plane, and this node's own settings.

Rendered by Ansible's own templating from the role's defaults and vars, as a play would; the cluster tier
(tests/cluster/test_cluster.py) joins a real worker with it.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml

from .role_files import ROOT, RoleFiles, opened_tasks

ROLE = RoleFiles.load("kubeadm_join")
HASH = "sha256:" + "ab" * 32
JOIN_COMMAND = f"kubeadm join 10.213.0.11:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n"


def render(expression: str, **overrides: Any) -> Any:
    host = {
        "inventory_hostname": "w1",
        "groups": {"control_plane": ["cp1"], "workers": ["w1"]},
        "ansible_facts": {"default_ipv4": {"address": "192.0.2.21"}},
        "kubeadm_join_command": {"stdout": JOIN_COMMAND},
    }
    return ROLE.render(expression, **{**host, **overrides})


def test_the_join_configuration_carries_the_printed_endpoint_token_and_ca_hash() -> None:
    configuration = render("{{ kubeadm_join_configuration }}")
    assert (configuration["apiVersion"], configuration["kind"]) == ("kubeadm.k8s.io/v1beta4", "JoinConfiguration")
    assert configuration["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "10.213.0.11:6443",
        "token": "abcdef.0123456789abcdef",
        "caCertHashes": [HASH],
    }


def test_the_node_registers_with_its_own_address_and_settings() -> None:
    registration = render("{{ kubeadm_join_configuration.nodeRegistration }}")
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "192.0.2.21"}]
    assert registration["ignorePreflightErrors"] == []
    registration = render(
        "{{ kubeadm_join_configuration.nodeRegistration }}",
        sensorstack_node_ip="10.213.0.21",
        kubeadm_join_ignore_preflight_errors=["SystemVerification"],
    )
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.213.0.21"}]
    assert registration["ignorePreflightErrors"] == ["SystemVerification"]
    assert registration["criSocket"] == "unix:///run/containerd/containerd.sock"


def test_the_token_comes_from_the_first_control_plane_node() -> None:
    assert render("{{ kubeadm_join_token_host }}") == "cp1"
    assert render("{{ kubeadm_join_token_host }}", groups={"workers": ["w1"]}) == ""


def test_durations_are_recognised() -> None:
    pattern = ROLE.render("{{ sensorstack_go_duration_pattern }}")
    assert all(re.match(pattern, value) for value in ("15m0s", "10m", "1h30m", "90s"))
    assert not any(re.match(pattern, value) for value in ("15", "15 minutes", "", "m"))


def test_a_worker_joins_without_a_control_plane_section() -> None:
    assert "controlPlane" not in render("{{ kubeadm_join_document }}")
    assert render("{{ kubeadm_join_control_plane }}") is False


def test_a_control_plane_host_joins_with_its_own_api_endpoint_and_the_certificate_key() -> None:
    document = render(
        "{{ kubeadm_join_document }}",
        inventory_hostname="cp2",
        groups={"control_plane": ["cp1", "cp2", "cp3"], "workers": []},
        sensorstack_node_ip="10.213.0.12",
        kubeadm_join_certificate_key={"stdout": "c0ffee" * 10 + "abcd"},
    )
    assert document["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "10.213.0.12", "bindPort": 6443},
        "certificateKey": "c0ffee" * 10 + "abcd",
    }
    assert document["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.213.0.11:6443"


CONTROL_PLANE_HOST = {
    "inventory_hostname": "cp2",
    "groups": {"control_plane": ["cp1", "cp2"], "workers": []},
    "kubeadm_join_certificate_key": {"stdout": "k" * 64},
}


def test_control_planes_join_untainted_only_where_the_first_one_takes_workloads() -> None:
    # kubeadm taints a control plane it joins NoSchedule unless the configuration names its taints.
    tainted = render("{{ kubeadm_join_document }}", **CONTROL_PLANE_HOST)
    assert "taints" not in tainted["nodeRegistration"]
    untainted = render(
        "{{ kubeadm_join_document }}", **CONTROL_PLANE_HOST, kubeadm_control_plane_schedule_workloads=True
    )
    assert untainted["nodeRegistration"]["taints"] == []
    # The rest of the registration stays.
    assert untainted["nodeRegistration"]["criSocket"] == tainted["nodeRegistration"]["criSocket"]
    assert untainted["controlPlane"] == tainted["controlPlane"]
    worker = render("{{ kubeadm_join_document }}", kubeadm_control_plane_schedule_workloads=True)
    assert "taints" not in worker["nodeRegistration"]


def test_the_upload_configuration_is_the_init_configuration_with_the_key_added() -> None:
    init = (
        "# managed\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n"
        "  advertiseAddress: 10.213.0.11\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        "kubernetesVersion: v1.35.4\n"
    )
    documents = render(
        "{{ kubeadm_join_upload_documents }}",
        kubeadm_join_init_config={"content": base64.b64encode(init.encode()).decode()},
        kubeadm_join_certificate_key={"stdout": "k" * 64},
    )
    assert [document["kind"] for document in documents] == ["InitConfiguration", "ClusterConfiguration"]
    assert documents[0]["certificateKey"] == "k" * 64
    assert documents[0]["localAPIEndpoint"] == {"advertiseAddress": "10.213.0.11"}
    # kubeadm would look the version up on the internet without it.
    assert documents[1]["kubernetesVersion"] == "v1.35.4"
    assert "certificateKey" not in documents[1]


JOIN = yaml.safe_load((ROOT / "roles/kubeadm_join/tasks/join.yml").read_text())


def test_the_second_attempt_gets_a_fresh_token_and_the_failure_names_both_attempts() -> None:
    # The first attempt may have used up the token's life (a TLS bootstrap that timed out takes minutes).
    [attempts] = [task for task in JOIN if "block" in task]
    rescue = [task["name"] for task in attempts["rescue"]]
    assert (
        rescue.index("Undo the failed join before trying once more")
        < rescue.index("Create a fresh bootstrap token for the second attempt, and upload the certificates again")
        < rescue.index("Join the node a second time, or undo it and stop")
    )
    fresh = [task for task in opened_tasks(JOIN) if task.get("ansible.builtin.include_tasks") == "credentials.yml"]
    assert len(fresh) == 2
    [stop] = [task for task in opened_tasks(JOIN) if task["name"] == "Stop with kubeadm's own account of the failure"]
    message = stop["ansible.builtin.fail"]["msg"]
    assert message.index("{{ kubeadm_join_first_failure }}") < message.index("{{ kubeadm_join_failure }}")


def test_a_failed_attempt_is_told_by_kubeadms_own_output() -> None:
    result = {"stderr": "error execution phase kubelet-start: timed out", "stdout_lines": ["[preflight] Running"]}
    failure = ROLE.render("{{ kubeadm_join_failure }}", kubeadm_join_result=result)
    assert failure.splitlines() == ["error execution phase kubelet-start: timed out", "[preflight] Running"]
    assert ROLE.render("{{ kubeadm_join_failure }}").startswith("kubeadm config validate refused")
