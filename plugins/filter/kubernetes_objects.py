"""Filters for the stack's Kubernetes objects: their volumes, checksums and address rules, and how they are written
for review (``sensorstack render``)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.stack import left_out_node_problems, pod_network_problems

REDACTED = "<left out by sensorstack render: set from the inventory when the roles apply it>"
# The config checksum's input holds passwords, and the annotation is read by whoever reads the workload (and sits in
# rendered files): a salted PBKDF2 at OWASP's rounds for HMAC-SHA256 makes guessing a password from it as costly as
# from a stored password hash.
CHECKSUM_SALT = b"sensorstack.io/config-checksum"
CHECKSUM_ROUNDS = 600_000


def config_checksum(value: Any) -> str:
    """The pod template's config-checksum annotation over ``value`` (what the pod reads, secrets included): equal
    values give equal checksums, so a rerun rolls nothing and a changed file or password rolls the pod."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.pbkdf2_hmac("sha256", data, CHECKSUM_SALT, CHECKSUM_ROUNDS).hex()


def ip_block(cidr: str, pod_cidr: str, left_out: Sequence[str] = (), variable: str = "the network") -> dict[str, Any]:
    """A NetworkPolicy peer for the network ``cidr`` (of the list ``variable``) that never admits a pod, by its own
    address or by its node's: Calico matches ipBlock against pod addresses too, so a network that holds the pod
    network (10.0.0.0/8 over 10.244.0.0/16) leaves it out; and Calico's natOutgoing gives a pod's traffic to another
    node's node port its own node's address, so the addresses of ``left_out`` (every node but the first control
    plane) in the network are left out too. Pods are admitted by their labels alone. A network inside the pod
    network, and one that is a left-out address, which no ``except`` can express, are refused (by preflight too)."""
    network, pods = ipaddress.ip_network(cidr), ipaddress.ip_network(pod_cidr)
    problems = pod_network_problems(variable, [network], pods) + left_out_node_problems(variable, [network], left_out)
    if problems:
        raise AnsibleFilterError(problems[0])
    excepted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    if network.version == pods.version and network != pods and pods.subnet_of(network):  # type: ignore[arg-type]
        excepted.append(pods)
    for address in map(ipaddress.ip_address, left_out):
        if address in network and not (address.version == pods.version and address in pods):
            excepted.append(ipaddress.ip_network(address))
    block: dict[str, Any] = {"cidr": str(network)}
    if excepted:
        block["except"] = [str(excluded) for excluded in sorted(excepted)]  # type: ignore[type-var]
    return {"ipBlock": block}


def redact_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects with every value of every Secret replaced by a placeholder; the keys stay, so a review sees which
    files and variables a Secret holds, and a rendered directory never carries a password or a private key."""
    redacted = []
    for manifest in objects:
        if manifest.get("kind") == "Secret":
            manifest = dict(manifest)
            for field in ("data", "stringData"):
                if field in manifest:
                    manifest[field] = {key: REDACTED for key in manifest[field]}
        redacted.append(manifest)
    return redacted


def secret_key(path: str, directory: str) -> str:
    """The key of a file mounted from a Secret or ConfigMap at ``directory``: its path under it, '/' written as '.'
    (a key may hold letters, digits, '-', '_' and '.' only)."""
    prefix = directory.rstrip("/") + "/"
    if not path.startswith(prefix):
        raise AnsibleFilterError(f"{path} does not lie under {directory}")
    return path[len(prefix) :].replace("/", ".")


def relative_path(path: str, directory: str) -> str:
    """``path`` under ``directory``, as a projected volume's item names it."""
    secret_key(path, directory)
    return path[len(directory.rstrip("/")) + 1 :]


def claim_selector(component: str, namespace: str, part_of: str) -> dict[str, str]:
    """The labels of ``component``'s local volume, which its claim selects."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": part_of,
        "sensorstack.io/namespace": namespace,
    }


def local_volume(
    component: str,
    namespace: str,
    storage_class: str,
    node: str,
    directory: str,
    sizes: dict[str, str],
    part_of: str,
) -> dict[str, Any]:
    """The local PersistentVolume of ``component``'s claim (``<component>-data``): on ``node`` only, kept when the claim
    goes (Retain). The claim selects it by its labels (``claim_selector``); a claimRef would do too, but the binder
    rewrites it, and every apply would then take it back."""
    if component not in sizes:
        raise AnsibleFilterError(f"sensorstack_stack_volume_sizes has no size for {component}")
    claim = f"{component}-data"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"{namespace}-{claim}",
            "labels": claim_selector(component, namespace, part_of),
        },
        "spec": {
            "capacity": {"storage": sizes[component]},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "volumeMode": "Filesystem",
            "local": {"path": f"{directory.rstrip('/')}/{namespace}-{claim}"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }


def _volume_nodes(volume: Mapping[str, Any]) -> list[str]:
    terms = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    return [
        value for term in terms or [] for e in term.get("matchExpressions") or [] for value in e.get("values") or []
    ]


def _volume_place(volume: Mapping[str, Any]) -> tuple[list[str], str]:
    return _volume_nodes(volume), str(((volume.get("spec") or {}).get("local") or {}).get("path", ""))


def moved_volumes(existing: list[Mapping[str, Any]], wanted: list[Mapping[str, Any]]) -> list[str]:
    """The local volumes the cluster holds on another node, or in another directory, than ``wanted`` places them, as
    "name (on node, in directory)": the API refuses to change either, and the data is where the volume has it."""
    held = {
        volume["metadata"]["name"]: _volume_place(volume)
        for volume in existing
        if volume.get("kind", "") in ("", "PersistentVolume")
    }
    moved = []
    for volume in wanted:
        name = volume["metadata"]["name"] if volume.get("kind") == "PersistentVolume" else None
        if name in held and held[name] != _volume_place(volume):
            nodes, path = held[name]
            moved.append(f"{name} (on {', '.join(nodes)}, in {path})")
    return moved


def claims_of_another_class(existing: list[Mapping[str, Any]], wanted_class: str, components: list[str]) -> list[str]:
    """The stack's claims (``<component>-data`` of ``components``) the cluster holds in another StorageClass than
    ``wanted_class``, as "name (class)": a claim's class cannot change, and its data is in the volume it has."""
    names = {f"{component}-data" for component in components}
    return sorted(
        f"{claim['metadata']['name']} ({(claim.get('spec') or {}).get('storageClassName') or 'no class'})"
        for claim in existing
        if claim.get("metadata", {}).get("name") in names
        and (claim.get("spec") or {}).get("storageClassName") != wanted_class
    )


def released_volumes(existing: list[Mapping[str, Any]], wanted: list[Mapping[str, Any]]) -> list[str]:
    """The local volumes of ``wanted`` that the cluster holds Released: their claim was deleted (to resize, or with a
    service taken out), and the binder gives a Released volume to no new claim while its claimRef names the old one.
    Their data stays (Retain); freed of that claimRef, the claim of the same name binds to them again."""
    names = {volume["metadata"]["name"] for volume in wanted if volume.get("kind") == "PersistentVolume"}
    return [
        volume["metadata"]["name"]
        for volume in existing
        if volume.get("kind", "") in ("", "PersistentVolume")
        and volume["metadata"]["name"] in names
        and (volume.get("status") or {}).get("phase") == "Released"
    ]


def volume_claim(
    component: str, namespace: str, storage_class: str, local_class: str, sizes: dict[str, str], part_of: str
) -> dict[str, Any]:
    """``component``'s claim, ``<component>-data``: of ``storage_class``, and with the static local volumes
    (``storage_class == local_class``) selecting the one made for it (a selector would stop a provisioner)."""
    if component not in sizes:
        raise AnsibleFilterError(f"sensorstack_stack_volume_sizes has no size for {component}")
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": storage_class,
        "resources": {"requests": {"storage": sizes[component]}},
    }
    if storage_class == local_class:
        spec["selector"] = {"matchLabels": claim_selector(component, namespace, part_of)}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"{component}-data",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": part_of},
        },
        "spec": spec,
    }


class _ReviewDumper(yaml.SafeDumper):
    """Multi-line text (every configuration file) as a literal block, as it reads in the file itself."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ReviewDumper.add_representer(str, _represent_text)


def _plain(value: Any) -> Any:
    """Ansible's own string, number and container types as the built-in ones, which the dumper knows."""
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise AnsibleFilterError(f"cannot write {type(value).__name__} into a manifest")


def to_yaml_documents(objects: list[dict[str, Any]]) -> str:
    """One YAML stream, a document per object, keys in the order the roles wrote them (kubectl apply -f reads it; a
    redacted Secret's placeholder is not base64, so kubectl refuses that object rather than apply it)."""
    return "".join(
        "---\n" + yaml.dump(_plain(manifest), Dumper=_ReviewDumper, sort_keys=False, width=120) for manifest in objects
    )


def _omitted_when_empty(value: Any) -> bool:
    # The API server's Go types leave out a field at its zero value (``omitempty``): a CRD's
    # ``preserveUnknownFields: false`` is not in what the server returns.
    return value is None or value is False or (not isinstance(value, bool) and value in (0, "", [], {}))


def holds(live: Any, wanted: Any) -> bool:
    """Whether ``live`` (an object as the API server returns it) has every field of ``wanted`` at the same value.
    The server adds fields of its own (status, managedFields, defaults), and an apply of ``wanted`` would leave
    those; it leaves out fields at their zero value; a list must match item by item, as an apply replaces it."""
    if wanted is None:  # generators write creationTimestamp: null; the server keeps its own value
        return True
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            holds(live[key], value) if key in live else _omitted_when_empty(value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(holds, live, wanted))
    if isinstance(wanted, bool) or isinstance(live, bool):
        return live is wanted
    return live == wanted


# What an apply of an object does not write: the listing's items carry no kind or apiVersion, and status goes through
# its own subresource (controller-gen's CRDs ship an empty one).
NOT_APPLIED = ("apiVersion", "kind", "status")


def not_held_by(wanted: list[dict[str, Any]], live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of ``wanted`` that ``live``, a k8s_info listing of their one kind, does not hold as they are
    (found by name): those an apply would change or create."""
    by_name = {item.get("metadata", {}).get("name"): item for item in live}
    return [
        manifest
        for manifest in wanted
        if not holds(
            by_name.get(manifest.get("metadata", {}).get("name")),
            {key: value for key, value in manifest.items() if key not in NOT_APPLIED},
        )
    ]


# The API server's refusal of a change to a StatefulSet's fixed fields (podManagementPolicy, serviceName, selector,
# volumeClaimTemplates), as kubernetes.core passes it on: the Status body's message, its quotes escaped once or twice.
FIXED_FIELDS_REFUSED = re.compile(
    r'StatefulSet\.apps \\*"(?P<name>[^"\\]+)\\*" is invalid: '
    r"spec: Forbidden: updates to statefulset spec for fields other"
)


def statefulsets_to_recreate(objects: list[Mapping[str, Any]], failure: str) -> list[dict[str, str]]:
    """The declared StatefulSets whose change the API refused in ``failure`` (an apply's message) because it touches
    a field that cannot change in place, as {namespace, name}: such a StatefulSet is deleted with its pods left
    running (orphaned) and applied again, and the new one adopts its pods. Empty when the failure is another one."""
    refused = {match.group("name") for match in FIXED_FIELDS_REFUSED.finditer(failure)}
    return [
        {"namespace": str(manifest["metadata"].get("namespace", "")), "name": str(manifest["metadata"]["name"])}
        for manifest in objects
        if manifest.get("kind") == "StatefulSet" and manifest.get("metadata", {}).get("name") in refused
    ]


def rollouts_pending(deployments: list[Mapping[str, Any]]) -> list[str]:
    """The names of the Deployments (as the API returns them) whose rollout is not done, by the test of ``kubectl
    rollout status``: the controller has seen the latest spec, and every wanted replica runs the new template and is
    available. kubernetes.core's own wait leaves out the updated replicas, so it can pass a Recreate Deployment in
    the moment after the old pods were told to stop, while the status still counts them available."""

    def done(deployment: Mapping[str, Any]) -> bool:
        metadata, spec, status = (deployment.get(key) or {} for key in ("metadata", "spec", "status"))
        wanted = spec.get("replicas", 1)
        return (
            status.get("observedGeneration", 0) >= metadata.get("generation", 0)
            and status.get("updatedReplicas", 0) == wanted
            and status.get("replicas", 0) == wanted
            and status.get("availableReplicas", 0) == wanted
        )

    return [str((deployment.get("metadata") or {}).get("name")) for deployment in deployments if not done(deployment)]


def new_selectors(objects: list[Mapping[str, Any]], live: list[Mapping[str, Any]]) -> list[str]:
    """The names of the declared StatefulSets whose selector differs from the one the cluster holds (``live``). The
    API refuses such a change in place too, but recreating cannot serve it: the running pods keep their labels, so
    the new StatefulSet would not adopt them, and could not create its own (the pods' names are taken)."""
    held = {str(item.get("metadata", {}).get("name")): item.get("spec", {}).get("selector") or {} for item in live}

    def meaningful(selector: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in selector.items() if value}

    return [
        str(manifest["metadata"]["name"])
        for manifest in objects
        if manifest.get("kind") == "StatefulSet"
        and manifest["metadata"]["name"] in held
        and meaningful(held[manifest["metadata"]["name"]]) != meaningful(manifest.get("spec", {}).get("selector") or {})
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "claim_selector": claim_selector,
            "config_checksum": config_checksum,
            "ip_block": ip_block,
            "local_volume": local_volume,
            "moved_volumes": moved_volumes,
            "claims_of_another_class": claims_of_another_class,
            "released_volumes": released_volumes,
            "new_selectors": new_selectors,
            "not_held_by": not_held_by,
            "redact_secrets": redact_secrets,
            "relative_path": relative_path,
            "rollouts_pending": rollouts_pending,
            "secret_key": secret_key,
            "statefulsets_to_recreate": statefulsets_to_recreate,
            "to_yaml_documents": to_yaml_documents,
            "volume_claim": volume_claim,
        }
