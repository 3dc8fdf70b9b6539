"""The kubeadm_reset role and playbooks/reset.yml: the argument spec mirrors the defaults; what the role decides from
what it reads on a node (kubeadm's files, an iptables-save dump, `nft list tables`, `ip -json address`, the drain
host's answer) removes exactly what kube-proxy, Calico and kubeadm left, and nothing of anyone else's; the playbook
asks first and goes on only on "yes".

Rendered by Ansible's own templating from the role's defaults and vars, as a play would. The cluster tier
(tests/cluster/test_reset.py) resets a real worker and joins it again.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from typing import Any

import pytest
import yaml

from sensorstack.bundle.versions import template

from .role_files import ROLES, ROOT, RoleFiles

ROLE = RoleFiles.load("kubeadm_reset")
TASKS = ROLES / "kubeadm_reset/tasks"
PLAYBOOK = yaml.safe_load((ROOT / "playbooks/reset.yml").read_text())


def render(expression: Any, **overrides: Any) -> Any:
    """An expression over the role's variables on worker w1 of a cluster whose first control plane is cp1."""
    host = {
        "inventory_hostname": "w1",
        "groups": {"control_plane": ["cp1", "cp2"], "workers": ["w1", "w2"]},
        "ansible_facts": {"nodename": "W1"},
        "ansible_play_hosts_all": ["w1"],
        "ansible_check_mode": False,
    }
    return ROLE.render(expression, **{**host, **overrides})


def task(file: str, name: str) -> dict[str, Any]:
    """A task of the role by its name, blocks searched too."""
    tasks = list(yaml.safe_load((TASKS / file).read_text()))
    while tasks:
        current = tasks.pop(0)
        if current["name"] == name:
            return current
        tasks += current.get("block", []) + current.get("rescue", [])
    raise KeyError(name)


def listing(*paths: str) -> dict[str, Any]:
    """What ansible.builtin.find registers for these paths."""
    return {"files": [{"path": path} for path in paths]}


# --- Draining ---------------------------------------------------------------------------------------------


def test_the_node_is_drained_through_the_first_control_plane_node_by_its_host_name() -> None:
    assert render("{{ kubeadm_reset_drain_host }}") == "cp1"
    assert render("{{ kubeadm_reset_drain_host }}", groups={"workers": ["w1"]}) == ""
    # A run that resets the first control plane of an HA cluster drains through the next one it keeps.
    assert render("{{ kubeadm_reset_drain_host }}", kubeadm_reset_nodes=["w1", "cp1"]) == "cp2"
    assert render("{{ kubeadm_reset_drain_host }}", kubeadm_reset_nodes=["w1", "cp1", "cp2"]) == ""
    # kubeadm registers the host name in lower case.
    assert render("{{ kubeadm_reset_node_name }}") == "w1"
    assert render("{{ kubeadm_reset_node_name }}", ansible_facts={}) == ""


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"kubeadm_reset_membership": {"rc": 0, "stdout": "node/w1"}}, ""),
        ({"kubeadm_reset_drain": False}, "kubeadm_reset_drain is false"),
        # -e kubeadm_reset_drain=false gives a string.
        ({"kubeadm_reset_drain": "false"}, "kubeadm_reset_drain is false"),
        ({"groups": {"workers": ["w1"]}}, "kubeadm_reset_drain_host is empty"),
        ({"kubeadm_reset_nodes": ["w1", "cp1", "cp2"]}, "this run resets every control-plane host"),
        ({"kubeadm_reset_drain_host": "cp1", "kubeadm_reset_nodes": ["w1", "cp1"]}, "cp1 is reset in the same run"),
        ({"kubeadm_reset_membership": {"unreachable": True, "msg": "Failed to connect"}}, "cp1 cannot be reached"),
        (
            {"kubeadm_reset_membership": {"rc": 1, "stderr": 'Error from server (NotFound): nodes "w1" not found'}},
            "the cluster of cp1 does not know w1 or does not answer: Error from server (NotFound)",
        ),
        (
            {"kubeadm_reset_membership": {"rc": 1, "stderr": "stat /etc/kubernetes/admin.conf: no such file"}},
            "does not answer: stat /etc/kubernetes/admin.conf",
        ),
    ],
)
def test_the_node_is_drained_only_from_a_live_cluster_that_stays(settings: dict[str, Any], reason: str) -> None:
    skipped = {"skipped": True, "changed": False}
    variables = {"kubeadm_reset_membership": skipped, **settings}
    rendered = render("{{ kubeadm_reset_drain_skip_reason }}", **variables)
    assert reason in rendered if reason else rendered == ""


@pytest.mark.parametrize(
    ("answer", "asked_again"),
    [
        ({"rc": 0, "stdout": "node/w1", "stderr": ""}, False),
        ({"rc": 1, "stderr": 'Error from server (NotFound): nodes "w1" not found'}, False),
        ({"rc": 1, "stderr": "error: stat /etc/kubernetes/admin.conf: no such file or directory"}, False),
        ({"rc": 2, "stderr": "", "msg": "Error executing command."}, False),
        ({"rc": 1, "stderr": 'Error from server (NotFound): nodes "geofence-1" not found'}, False),
        (
            {
                "rc": 1,
                "stderr": "memcache.go:265] couldn't get current server API group list: the server is currently unable "
                'to handle the request\nError from server (NotFound): nodes "w1" not found',
            },
            False,
        ),
        ({"rc": 1, "stderr": 'Error from server (Forbidden): nodes "w1" is forbidden'}, False),
        ({"rc": 1, "stderr": "error: You must be logged in to the server (Unauthorized)"}, False),
        (
            {"rc": 1, "stderr": "Error from server (ServiceUnavailable): the server is currently unable to handle it"},
            True,
        ),
        ({"rc": 1, "stderr": "Error from server: etcdserver: request timed out"}, True),
        (
            {
                "rc": 1,
                "stderr": "The connection to the server 10.213.0.11:6443 was refused - did you specify the right",
            },
            True,
        ),
        (
            {
                "rc": 1,
                "stderr": "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded)",
            },
            True,
        ),
    ],
)
def test_an_api_server_that_does_not_answer_is_asked_again_before_the_drain_is_skipped(
    answer: dict[str, Any], asked_again: bool
) -> None:
    read = task("drain.yml", "Read whether the cluster of the first control-plane node still counts this node")
    assert read["retries"] >= 2
    done = render("{{ " + read["until"] + " }}", kubeadm_reset_membership=answer)
    assert isinstance(done, bool) and done is not asked_again


def test_the_drain_is_bounded_keeps_daemonsets_and_forces_only_when_told() -> None:
    argv = task("drain.yml", "Ensure the node's pods have moved away")["ansible.builtin.command"]["argv"]
    assert render(argv)[:5] == ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "drain", "w1"]
    assert render(argv)[5:] == ["--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s"]
    forced = render(argv, kubeadm_reset_drain_force=True, kubeadm_reset_drain_timeout=60)
    assert forced[-2:] == ["--timeout=60s", "--force"]
    assert render(argv, kubeadm_reset_drain_force="false")[-1] == "--timeout=300s"


def test_drain_output_tells_a_change_from_a_node_drained_before() -> None:
    pattern = ROLE.vars["kubeadm_reset_drain_changed_pattern"]
    assert re.search(pattern, "node/w1 cordoned\nevicting pod default/web\npod/web evicted\nnode/w1 drained\n")
    assert re.search(pattern, "node/w1 already cordoned\npod/web evicted\nnode/w1 drained\n")
    assert not re.search(pattern, "node/w1 already cordoned\nnode/w1 drained\n")


# --- kubeadm and its files --------------------------------------------------------------------------------

NEVER_JOINED = listing(
    "/etc/kubernetes/manifests",
    "/etc/kubernetes/resolv.conf",
    "/etc/kubernetes/manifests/.kubelet-keep",
    "/var/lib/kubelet/.kubelet-keep",
)
JOINED_WORKER = listing(
    "/etc/kubernetes/manifests",
    "/etc/kubernetes/resolv.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/pki",
    "/etc/kubernetes/tmp",
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/pki",
    "/var/lib/kubelet/pods",
)


def test_a_node_that_never_joined_has_nothing_to_reset_or_remove() -> None:
    """The kubelet package's markers, the empty manifests directory and the operator's resolv.conf are all a node that
    never joined has: no kubeadm reset, nothing to remove."""
    assert render("{{ kubeadm_reset_joined_paths }}", kubeadm_reset_state=NEVER_JOINED) == []
    assert render("{{ kubeadm_reset_leftovers }}", kubeadm_reset_listing=NEVER_JOINED) == []


@pytest.mark.parametrize(
    "evidence",
    ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf", "/etc/kubernetes/manifests/kube-apiserver.yaml"],
)
def test_kubeadm_reset_is_due_where_kubeadm_wrote_its_files(evidence: str) -> None:
    state = listing(*(entry["path"] for entry in NEVER_JOINED["files"]), evidence)
    assert render("{{ kubeadm_reset_joined_paths }}", kubeadm_reset_state=state) == [evidence]


def test_the_cleanup_empties_the_kubelet_and_kubernetes_directories_but_keeps_the_operators_files() -> None:
    assert render("{{ kubeadm_reset_leftovers }}", kubeadm_reset_listing=JOINED_WORKER) == [
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki",
        "/etc/kubernetes/tmp",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/pki",
        "/var/lib/kubelet/pods",
    ]


def test_a_kept_file_keeps_the_directories_above_it_and_only_its_own_name() -> None:
    found = listing(
        "/etc/kubernetes/policies",
        "/etc/kubernetes/resolv.conf",
        "/etc/kubernetes/resolv.conf.orig",
        "/etc/kubernetes/p",
    )
    leftovers = render(
        "{{ kubeadm_reset_leftovers }}",
        kubeadm_reset_listing=found,
        kubeadm_reset_keep_files=["/etc/kubernetes/policies/audit.yaml"],
    )
    assert leftovers == ["/etc/kubernetes/p", "/etc/kubernetes/resolv.conf", "/etc/kubernetes/resolv.conf.orig"]


def test_volumes_still_mounted_below_the_kubelets_directory_are_found() -> None:
    mountinfo = (
        "612 590 254:1 /var/lib/docker/volumes/6f/_data /var/lib/kubelet rw,relatime - ext4 /dev/vda rw\n"
        "700 612 0:90 / /var/lib/kubelet/pods/3c/volumes/kubernetes.io~projected/kube-api-access rw - tmpfs tmpfs rw\n"
        "701 590 0:91 / /var/lib/kubelet-old rw - tmpfs tmpfs rw\n"
    )
    content = {"content": base64.b64encode(mountinfo.encode()).decode()}
    assert render("{{ kubeadm_reset_kubelet_mounts }}", kubeadm_reset_mountinfo=content) == [
        "/var/lib/kubelet/pods/3c/volumes/kubernetes.io~projected/kube-api-access"
    ]
    assert render("{{ kubeadm_reset_kubelet_mounts }}", kubeadm_reset_mountinfo={"skipped": True}) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, None),
        ({"kubeadm_reset_keep_files": ["/etc/kubernetes/resolv.conf", "/var/lib/kubelet/x"]}, None),
        ({"kubeadm_reset_keep_files": ["/etc/hosts"]}, "kubeadm_reset_keep_files must hold"),
        ({"kubeadm_reset_keep_files": ["resolv.conf"]}, "kubeadm_reset_keep_files must hold"),
        ({"kubeadm_reset_keep_files": ["/etc/kubernetes/../hosts"]}, "kubeadm_reset_keep_files must hold"),
        ({"kubeadm_reset_keep_files": ["/etc/kubernetes/pki/"]}, "kubeadm_reset_keep_files must hold"),
        ({"ansible_facts": {}}, "kubeadm_reset_node_name is empty"),
        ({"ansible_facts": {}, "kubeadm_reset_drain": False}, None),
        ({"kubeadm_reset_drain_timeout": 0}, "kubeadm_reset_drain_timeout must be"),
        ({"kubeadm_reset_cri_socket": "/run/containerd/containerd.sock"}, "kubeadm_reset_cri_socket must be"),
        ({"kubeadm_reset_kubeconfigs": ["~/.kube/config"]}, "kubeadm_reset_kubeconfigs must hold"),
    ],
)
def test_settings_are_checked_before_anything_changes(settings: dict[str, Any], message: str | None) -> None:
    check = task("validate.yml", "Check the node name, the drain timeout, the CRI socket and the paths to keep")
    problems = render("{{ kubeadm_reset_problems }}", **check["vars"], **settings)
    assert [problem for problem in problems if message is None or message in problem] == problems
    assert bool(problems) == (message is not None), problems


# --- iptables ---------------------------------------------------------------------------------------------

# An iptables-nft-save dump of a node with kube-proxy (iptables mode), Calico and Docker: Calico's jumps and its own
# ACCEPT/MARK rules in FORWARD, kube-proxy's jumps, the kubelet's canaries, and Docker's chains and an operator's rule
# that must stay.
DUMP = """\
# Generated by iptables-nft-save v1.8.11 (nf_tables) on Tue Dec  2 06:00:00 2025
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:cali-PREROUTING - [0:0]
:cali-from-host-endpoint - [0:0]
-A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING
-A cali-PREROUTING -m comment --comment "cali:6BJqBjBC7crtA-u" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A cali-PREROUTING -m comment --comment "cali:wNH7KsA3ILKJBsY9" -j cali-from-host-endpoint
COMMIT
# Completed on Tue Dec  2 06:00:00 2025
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:cali-FORWARD - [0:0]
:cali-INPUT - [0:0]
-A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -j KUBE-FIREWALL
-A INPUT -i lo -j ACCEPT
-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m comment --comment "Policy explicitly accepted packet." \
-m mark --mark 0x10000/0x10000 -j ACCEPT
-A FORWARD -m comment --comment "cali:mp77cMpurHhyjLrM" -j MARK --set-xmark 0x10000/0x10000
-A DOCKER-USER -j RETURN
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A cali-FORWARD -m comment --comment "cali:vjrMJCRpqwy5oRoX" -j MARK --set-xmark 0x0/0xe0000
-A cali-INPUT -m comment --comment "cali:PajejrV4aFdkZojI" -g cali-FORWARD
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
"""
THEIRS = re.compile(r"^(KUBE-|cali-)")


def parse(dump: str) -> dict[str, dict[str, list[str]]]:
    """table -> chain -> rules (their text after the chain name), as iptables holds them."""
    tables: dict[str, dict[str, list[str]]] = {}
    for table, body in re.findall(r"(?ms)^\*(\S+)$(.*?)^COMMIT$", dump):
        chains = tables[table] = {name: [] for name in re.findall(r"(?m)^:(\S+) ", body)}
        for chain, rule in re.findall(r"(?m)^-A (\S+) (.*)$", body):
            chains[chain].append(rule)
    return tables


def restore(tables: dict[str, dict[str, list[str]]], script: str) -> None:
    """Apply an iptables-restore --noflush input as iptables does, refusing what iptables refuses."""
    table = None
    for line in script.splitlines():
        if line.startswith("*"):
            table = tables[line[1:]]
            continue
        if line == "COMMIT" or not line:
            continue
        assert table is not None, line
        command, chain, *rule = line.split(" ", 2)
        if command == "-D":
            table[chain].remove(rule[0])  # ValueError: iptables' "Bad rule (does a matching rule exist?)"
        elif command == "-F":
            table[chain].clear()
        elif command == "-X":
            assert not table[chain], f"{chain} is not empty"
            targets = [shlex.split(rule) for rules in table.values() for rule in rules]
            assert not [words for words in targets if chain in words], f"{chain} is still referenced"
            del table[chain]
        else:
            raise AssertionError(f"unexpected command {line}")


def test_the_iptables_script_removes_kube_proxys_and_calicos_chains_and_the_rules_that_lead_to_them() -> None:
    script = render("{{ kubeadm_reset_iptables_script }}", kubeadm_reset_iptables_dump=DUMP)
    tables = parse(DUMP)
    restore(tables, script)
    assert {table: [chain for chain in chains if THEIRS.match(chain)] for table, chains in tables.items()} == {
        "mangle": [],
        "filter": [],
        "nat": [],
    }
    assert tables["filter"]["INPUT"] == ["-i lo -j ACCEPT"]
    assert tables["filter"]["FORWARD"] == ["-j DOCKER-USER", "-o docker0 -j DOCKER"]
    assert tables["filter"]["DOCKER-USER"] == ["-j RETURN"]
    assert tables["mangle"]["PREROUTING"] == []
    # Docker's nat table holds nothing of theirs: it is not even named in the script.
    assert tables["nat"] == parse(DUMP)["nat"]
    assert "*nat" not in script


def test_the_iptables_script_deletes_rules_before_flushing_and_flushes_before_deleting_chains() -> None:
    script = render("{{ kubeadm_reset_iptables_script }}", kubeadm_reset_iptables_dump=DUMP)
    for block in re.findall(r"(?ms)^\*\S+$(.*?)^COMMIT$", script):
        commands = [line.split()[0] for line in block.strip().splitlines()]
        assert commands == sorted(commands, key=["-D", "-F", "-X"].index), block


@pytest.mark.parametrize(
    "dump",
    ["", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n", DUMP.split("*nat")[0].split("*mangle")[0]],
)
def test_a_dump_without_their_chains_gives_no_script(dump: str) -> None:
    assert not render("{{ kubeadm_reset_iptables_script }}", kubeadm_reset_iptables_dump=dump)


def test_the_iptables_tools_are_each_backend_and_family_the_node_has() -> None:
    found = listing("/usr/sbin/iptables-nft-save", "/usr/sbin/ip6tables-nft-save", "/usr/sbin/nft")
    assert render("{{ kubeadm_reset_iptables_present }}", kubeadm_reset_netfilter_found=found) == [
        "iptables-nft",
        "ip6tables-nft",
    ]
    assert render("{{ kubeadm_reset_netfilter_present }}", kubeadm_reset_netfilter_found=found)[-1] == "nft"


# --- nftables and interfaces ------------------------------------------------------------------------------


def test_only_kube_proxys_and_calicos_nftables_tables_are_deleted() -> None:
    tables = "\n".join(
        [
            "table ip filter",
            "table ip nat",
            "table ip kube-proxy",
            "table ip6 kube-proxy",
            "table ip calico",
            "table ip6 calico-raw",
            "table inet firewalld",
            "table ip kube-proxy-old",
            "table inet calicoish",
        ]
    )
    assert render("{{ kubeadm_reset_nft_tables }}", kubeadm_reset_nft_read={"stdout": tables}) == [
        "ip kube-proxy",
        "ip6 kube-proxy",
        "ip calico",
        "ip6 calico-raw",
    ]
    assert render("{{ kubeadm_reset_nft_tables }}", kubeadm_reset_nft_read={"skipped": True}) == []


def link(name: str, kind: str | None = None, addresses: int = 0) -> dict[str, Any]:
    """One entry of `ip -json -details address show`."""
    entry: dict[str, Any] = {"ifname": name, "flags": ["UP"], "addr_info": [{"local": "10.244.1.1"}] * addresses}
    if kind:
        entry["linkinfo"] = {"info_kind": kind}
    return entry


def test_calicos_interfaces_are_deleted_and_no_other() -> None:
    links = [
        link("lo", addresses=1),
        link("eth0", "veth", addresses=1),
        link("vxlan.calico", "vxlan", addresses=1),
        link("cali0123456789a", "veth"),
        link("calibration0", "dummy"),
        link("tunl0", "ipip"),
        link("docker0", "bridge", addresses=1),
    ]
    commands = render("{{ kubeadm_reset_link_commands }}", kubeadm_reset_links_read={"stdout": json.dumps(links)})
    assert commands == [["ip", "link", "delete", "vxlan.calico"], ["ip", "link", "delete", "cali0123456789a"]]


def test_calicos_ipip_tunnel_address_is_flushed_from_tunl0() -> None:
    links = [link("lo", addresses=1), link("tunl0", "ipip", addresses=1)]
    commands = render("{{ kubeadm_reset_link_commands }}", kubeadm_reset_links_read={"stdout": json.dumps(links)})
    assert commands == [["ip", "address", "flush", "dev", "tunl0"], ["ip", "link", "set", "dev", "tunl0", "down"]]


# --- The playbook -----------------------------------------------------------------------------------------


def confirm_play_task(name: str) -> dict[str, Any]:
    return next(item for item in PLAYBOOK[0]["tasks"] if item["name"] == name)


def test_the_reset_is_not_part_of_site_yml() -> None:
    assert "reset" not in (ROOT / "site.yml").read_text()


def test_the_playbook_asks_first_naming_the_hosts_unless_reset_confirm_is_given() -> None:
    play = PLAYBOOK[0]
    assert "roles" not in play
    assert play["gather_facts"] is False
    # A refusal on the host that asked stops every host and every later play.
    assert play["any_errors_fatal"] is True
    ask = confirm_play_task("Ask before resetting the nodes")
    assert "ansible_play_hosts_all" in ask["ansible.builtin.pause"]["prompt"]
    assert "yes" in ask["ansible.builtin.pause"]["prompt"]
    assert ask["when"] == "reset_confirm is not defined"
    assert ask["run_once"] is True
    stop = confirm_play_task("Stop unless the reset is confirmed with yes")
    assert stop["run_once"] is True
    assert stop["ansible.builtin.assert"]["fail_msg"].startswith("Nothing was reset")


@pytest.mark.parametrize(
    ("answers", "confirmed"),
    [
        ({"reset_confirm": "yes"}, True),
        ({"reset_answer": {"user_input": "yes"}}, True),
        ({"reset_confirm": "no", "reset_answer": {"skipped": True}}, False),
        ({"reset_confirm": "YES"}, False),
        ({"reset_confirm": "y"}, False),
        ({"reset_confirm": " yes"}, False),
        ({"reset_confirm": True}, False),
        ({"reset_confirm": ""}, False),
        # A run without a terminal: ansible.builtin.pause does not wait and answers nothing.
        ({"reset_answer": {"user_input": ""}}, False),
        ({"reset_answer": {"user_input": "no"}}, False),
    ],
)
def test_only_yes_confirms_the_reset(answers: dict[str, Any], confirmed: bool) -> None:
    stop = confirm_play_task("Stop unless the reset is confirmed with yes")
    condition = stop["ansible.builtin.assert"]["that"]
    assert template(f"{{{{ {condition} }}}}", {**stop["vars"], **answers}) is confirmed


def test_workers_are_reset_before_control_planes_knowing_every_node_of_the_run() -> None:
    remember = confirm_play_task("Remember the nodes this run resets")
    assert remember["ansible.builtin.set_fact"] == {"reset_nodes": "{{ ansible_play_hosts_all }}"}
    assert "sensorstack_control_plane_group" in PLAYBOOK[0]["hosts"]
    assert "sensorstack_worker_group" in PLAYBOOK[0]["hosts"]
    workers, control_planes = PLAYBOOK[1:]
    assert workers["hosts"] == "{{ sensorstack_worker_group | default('workers') }}"
    assert control_planes["hosts"] == "{{ sensorstack_control_plane_group | default('control_plane') }}"
    for play in (workers, control_planes):
        assert play["roles"] == [{"role": "kubeadm_reset", "vars": {"kubeadm_reset_nodes": "{{ reset_nodes }}"}}]
        # --tags reset runs the confirmation too; no tag selects the reset without it.
        assert play["tags"] == PLAYBOOK[0]["tags"]


@pytest.mark.parametrize(
    ("host", "nodes", "ends"),
    [
        ("cp2", ["w1", "w2", "cp1", "cp2"], True),  # the last control plane of a run that resets them all
        ("cp1", ["w1", "w2", "cp1", "cp2"], False),  # cp2 still to come
        ("cp2", ["cp2"], False),  # cp1 keeps the cluster
        ("w2", ["w1", "w2", "cp1", "cp2"], False),  # the workers' play, before the control planes
    ],
)
def test_the_controllers_admin_kubeconfig_goes_with_the_last_control_plane(host: str, nodes: list, ends: bool) -> None:
    rendered = render("{{ kubeadm_reset_ends_the_cluster }}", inventory_hostname=host, kubeadm_reset_nodes=nodes)
    assert rendered is ends
    assert render("{{ kubeadm_reset_controller_kubeconfig }}", inventory_dir="/site") == "/site/artifacts/admin.conf"
    [removal] = [item for item in yaml.safe_load((TASKS / "cleanup.yml").read_text()) if "controller" in item["name"]]
    assert removal["delegate_to"] == "localhost" and removal["when"] == "kubeadm_reset_ends_the_cluster | bool"
    every_node = {"inventory_hostname": "cp2", "kubeadm_reset_nodes": ["w1", "w2", "cp1", "cp2"]}
    assert render("{{ kubeadm_reset_ends_the_cluster }}", kubeadm_reset_controller_kubeconfig="", **every_node) is False
