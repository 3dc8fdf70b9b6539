"""The certificate_expiry filters read real `kubeadm certs check-expiration` output (tests/unit/data/kubeadm-certs-*,
captured with the bundle's kubeadm: kubeadm-certs-samples.md) the way kubeadm itself counts days; the role's files
mirror each other and its report carries the marker `sensorstack check` picks it up by."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.kubeadm_certificates import (
    certificate_expiry,
    certificate_names,
    certificate_soonest,
    missing_certificate_names,
)

from sensorstack.events import CERTIFICATE_REPORT_MARKER

from .role_files import RoleFiles

DATA = Path(__file__).parent / "data"
FRESH = (DATA / "kubeadm-certs-check-expiration.json").read_text()
FRESH_TABLE = (DATA / "kubeadm-certs-check-expiration.txt").read_text()
TEN_DAYS = (DATA / "kubeadm-certs-check-expiration-10-days.json").read_text()
EXTERNAL_CA = (DATA / "kubeadm-certs-check-expiration-external-ca.json").read_text()
# The moment kubeadm wrote each sample: expirationDate - residualTime, the same for every entry
# (kubeadm-certs-samples.md).
FRESH_AT = datetime.datetime(2026, 12, 2, 6, 11, 27, tzinfo=datetime.UTC)
TEN_DAYS_AT = "2026-12-02T06:11:29Z"
EXTERNAL_CA_AT = "2026-12-02T06:11:27Z"
CONTROL_PLANE_CERTIFICATES = {
    "admin.conf",
    "apiserver",
    "apiserver-etcd-client",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "etcd-healthcheck-client",
    "etcd-peer",
    "etcd-server",
    "front-proxy-client",
    "scheduler.conf",
    "super-admin.conf",
}
ROLE = RoleFiles.load("kubeadm_certificates")


def kubeadm_table(text: str) -> dict[str, str]:
    """Certificate -> the RESIDUAL TIME column of kubeadm's first (certificates) table."""
    table = text.split("CERTIFICATE AUTHORITY   EXPIRES")[0]
    return dict(re.findall(r"^(\S+)\s+\w{3} \d\d, \d{4} \d\d:\d\d UTC\s+(\S+)", table, flags=re.MULTILINE))


def test_a_fresh_control_plane_has_a_year_less_a_day_on_every_certificate() -> None:
    days = certificate_expiry(FRESH, FRESH_AT)
    assert set(days) == CONTROL_PLANE_CERTIFICATES
    assert set(days.values()) == {364}


@pytest.mark.parametrize(("output", "now"), [(FRESH, FRESH_AT), (TEN_DAYS, TEN_DAYS_AT), (EXTERNAL_CA, EXTERNAL_CA_AT)])
def test_days_left_are_kubeadms_residual_seconds_in_whole_days(output: str, now: Any) -> None:
    document = yaml.safe_load(output)
    for authorities, key in ((False, "certificates"), (True, "certificateAuthorities")):
        residual = {entry["name"]: entry["residualTime"] for entry in document[key] if not entry["missing"]}
        assert certificate_expiry(output, now, authorities) == {name: left // 86400 for name, left in residual.items()}


def test_days_left_agree_with_kubeadms_own_residual_time_column() -> None:
    days = certificate_expiry(FRESH, FRESH_AT)
    assert {name: f"{left}d" for name, left in days.items()} == kubeadm_table(FRESH_TABLE)


def test_the_certificate_authorities_are_read_on_request() -> None:
    assert certificate_expiry(FRESH, FRESH_AT, authorities=True) == {
        "ca": 3649,
        "etcd-ca": 3649,
        "front-proxy-ca": 3649,
    }


def test_short_lived_certificates_count_down_to_negative_days_once_expired() -> None:
    assert set(certificate_expiry(TEN_DAYS, TEN_DAYS_AT).values()) == {9}
    # Every certificate of this sample expires on 2026-12-12 at 06:11:27.
    assert set(certificate_expiry(TEN_DAYS, "2026-12-12T06:11:26Z").values()) == {0}
    assert set(certificate_expiry(TEN_DAYS, "2026-12-12T06:11:28Z").values()) == {-1}


def test_missing_certificates_are_left_out_and_externally_managed_ones_kept() -> None:
    days = certificate_expiry(EXTERNAL_CA, EXTERNAL_CA_AT)
    assert set(days) == CONTROL_PLANE_CERTIFICATES - {
        "apiserver-etcd-client",
        "etcd-healthcheck-client",
        "etcd-peer",
        "etcd-server",
    }
    assert certificate_expiry(EXTERNAL_CA, EXTERNAL_CA_AT, authorities=True) == {"ca": 3649, "front-proxy-ca": 3649}


def test_the_soonest_certificate_is_the_first_to_expire_to_the_second() -> None:
    # apiserver was signed a second before admin.conf: both have 364 days left.
    assert certificate_soonest(FRESH) == "apiserver"
    assert certificate_soonest(FRESH, authorities=True) == "ca"
    assert certificate_soonest({"kind": "CertificateExpirationInfo", "certificates": []}) == ""


def test_yaml_output_parsed_data_and_naive_utc_times_give_the_same_days() -> None:
    document = yaml.safe_load(FRESH)
    as_yaml = yaml.safe_dump(document)
    naive = FRESH_AT.replace(tzinfo=None)  # what Ansible's now(utc=true) returns
    expected = certificate_expiry(FRESH, FRESH_AT)
    assert certificate_expiry(as_yaml, naive) == expected
    assert certificate_expiry(document, "2026-12-02T06:11:27+00:00") == expected


@pytest.mark.parametrize(
    "output",
    [FRESH_TABLE, "", "{}", '{"kind": "Pod"}'],
    ids=["text-table", "empty", "no-kind", "other-kind"],
)
def test_anything_but_the_machine_readable_document_is_refused(output: str) -> None:
    with pytest.raises(AnsibleFilterError, match="CertificateExpirationInfo"):
        certificate_expiry(output, FRESH_AT)


def test_a_now_that_is_not_a_time_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        certificate_expiry(FRESH, "yesterday")


def test_the_report_carries_the_marker_the_cli_reads() -> None:
    report = ROLE.vars["kubeadm_certificates_report"]
    assert CERTIFICATE_REPORT_MARKER.items() <= report.items()
    assert {"days_left", "soonest", "soonest_days_left"} <= set(report)


# openssl 3's `x509 -noout -ext subjectAltName` of a kubeadm API server certificate.
APISERVER_SANS = (
    "X509v3 Subject Alternative Name: \n"
    "    DNS:cpc-cp1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, "
    "DNS:kubernetes.default.svc.cluster.local, IP Address:10.96.0.1, IP Address:10.213.0.53, IP Address:127.0.0.1, "
    "IP Address:FD00:0:0:0:0:0:0:1\n"
)


def test_the_names_of_a_certificate_are_read_from_openssl() -> None:
    assert certificate_names(APISERVER_SANS) == [
        "cpc-cp1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
        "10.213.0.53",
        "127.0.0.1",
        "fd00::1",
    ]
    assert certificate_names("") == []


def test_only_wanted_names_the_certificate_lacks_are_missing() -> None:
    wanted = ["127.0.0.1", "10.213.0.53", "Kubernetes.Default.", "fd00::1", "api.lab.example", "10.213.0.99"]
    assert missing_certificate_names(APISERVER_SANS, wanted) == ["api.lab.example", "10.213.0.99"]
    assert missing_certificate_names(APISERVER_SANS, []) == []
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        missing_certificate_names(APISERVER_SANS, "api.lab.example")
