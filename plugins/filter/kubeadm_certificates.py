"""Days left of a kubeadm control plane's certificates, from ``kubeadm certs check-expiration -o json`` (or ``-o
yaml``): the ``output.kubeadm.k8s.io`` ``CertificateExpirationInfo`` document.

``sensorstack.iot.certificate_expiry(output, now)`` maps each certificate kubeadm found to its whole days left at
``now``, rounded down as kubeadm's own table rounds its RESIDUAL TIME (364d for 364 days and 23 hours), negative once
it has expired. Certificates kubeadm reports as missing (no local etcd, say) are left out; externally managed ones
(no CA key on the node) are in, since they expire all the same. ``authorities=true`` reads the certificate
authorities instead. ``sensorstack.iot.certificate_soonest(output)`` names the certificate that expires first, to the
second. Pure functions, run on the controller; the role kubeadm_certificates reports with them.

``sensorstack.iot.certificate_names(openssl_output)`` reads the names of a certificate from ``openssl x509 -noout
-ext subjectAltName``; ``sensorstack.iot.missing_certificate_names(openssl_output, wanted)`` lists the wanted names
(the ClusterConfiguration's ``apiServer.certSANs``) the certificate lacks, addresses compared as addresses and DNS
names without case, so the role re-issues the API server's certificate only when a name is missing.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

KIND = "CertificateExpirationInfo"
_DAY = datetime.timedelta(days=1)


def _document(output: Any) -> Mapping[str, Any]:
    """kubeadm's document, from its JSON or YAML text or already parsed."""
    expected = f"certificate_expiry: expected the {KIND} document of `kubeadm certs check-expiration -o json`"
    document = output
    if isinstance(output, str):
        try:
            document = json.loads(output)
        except ValueError:
            try:
                document = yaml.safe_load(output)
            except yaml.YAMLError as error:
                raise AnsibleFilterError(f"{expected}, got text that is neither JSON nor YAML: {error}") from error
    if not isinstance(document, Mapping) or document.get("kind") != KIND:
        raise AnsibleFilterError(f"{expected}, got {str(output)[:80]!r}")
    return document


def _moment(value: Any, what: str) -> datetime.datetime:
    """A point in time, timezone-aware; a naive one (Ansible's ``now(utc=true)``) is taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as error:
            raise AnsibleFilterError(f"certificate_expiry: {what} {value!r} is not an ISO 8601 time") from error
    if not isinstance(value, datetime.datetime):
        raise AnsibleFilterError(f"certificate_expiry: {what} must be a datetime or an ISO 8601 string, got {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _expiry(output: Any, authorities: bool = False) -> dict[str, datetime.datetime]:
    """Name -> expiry of every certificate (or authority) kubeadm found, in kubeadm's order."""
    entries = _document(output).get("certificateAuthorities" if authorities else "certificates") or []
    return {
        str(entry["name"]): _moment(entry["expirationDate"], f"the expiry of {entry['name']}")
        for entry in entries
        if not entry.get("missing") and entry.get("expirationDate")
    }


def certificate_expiry(output: Any, now: Any, authorities: bool = False) -> dict[str, int]:
    """Certificate name -> whole days left at ``now`` (rounded down; negative once expired)."""
    moment = _moment(now, "now")
    return {name: (expires - moment) // _DAY for name, expires in _expiry(output, authorities).items()}


def certificate_soonest(output: Any, authorities: bool = False) -> str:
    """The name of the certificate that expires first ('' when kubeadm found none)."""
    expiry = _expiry(output, authorities)
    return min(expiry, key=lambda name: expiry[name]) if expiry else ""


def _name(entry: str) -> str:
    """One certificate name in a comparable form: an address as Python writes it, a DNS name in lower case."""
    text = entry.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower().rstrip(".")


def certificate_names(output: Any) -> list[str]:
    """The DNS names and IP addresses of ``openssl x509 -noout -ext subjectAltName`` output, in its order."""
    names = []
    for line in str(output or "").splitlines():
        if "Subject Alternative Name" in line:
            continue
        for entry in line.split(","):
            kind, _, value = entry.strip().partition(":")
            if kind in ("DNS", "IP Address", "IP") and value:
                names.append(_name(value))
    return names


def missing_certificate_names(output: Any, wanted: Any) -> list[str]:
    """The names in ``wanted`` that the certificate does not carry (none when ``wanted`` is empty)."""
    if isinstance(wanted, str) or not isinstance(wanted, (list, tuple)):
        raise AnsibleFilterError(f"the wanted certificate names must be a list, got {wanted!r}")
    present = set(certificate_names(output))
    return [str(name) for name in wanted if _name(str(name)) not in present]


class FilterModule:
    """Certificate expiry of a kubeadm control plane, exposed as sensorstack.iot.* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "certificate_expiry": certificate_expiry,
            "certificate_soonest": certificate_soonest,
            "certificate_names": certificate_names,
            "missing_certificate_names": missing_certificate_names,
        }
