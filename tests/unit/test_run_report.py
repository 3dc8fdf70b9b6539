"""What `sensorstack check` (and every run) says about control-plane certificates: the kubeadm_certificates role's
report is picked out of ansible-runner's events by its marker, one line per control-plane node and in --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from sensorstack.events import CertificateExpiry, RunResult, RunStatus, certificate_expiry, job_events
from sensorstack.report import certificate_line, json_report, next_steps, print_summary


def report(days_left: dict[str, int], soonest: str, **extra: Any) -> dict[str, Any]:
    """The debug message of the role's report task (roles/kubeadm_certificates/vars/main.yml)."""
    return {
        "sensorstack_report": "control_plane_certificates",
        "days_left": days_left,
        "soonest": soonest,
        "soonest_days_left": days_left.get(soonest),
        "authorities_days_left": {"ca": 3649, "etcd-ca": 3649, "front-proxy-ca": 3649},
        "renew_days_before": 30,
        "renewal_enabled": True,
        **extra,
    }


def host_event(host: str, message: Any, kind: str = "runner_on_ok", task: str = "Report") -> dict[str, Any]:
    """An event as ansible-runner hands it over (and keeps it in job_events/)."""
    return {
        "event": kind,
        "event_data": {"host": host, "task": task, "res": {"msg": message, "changed": False}},
    }


FRESH = {"admin.conf": 364, "apiserver": 364, "etcd-server": 364, "super-admin.conf": 364}
EVENTS = [
    {"event": "playbook_on_play_start", "event_data": {"play": "Control plane", "play_pattern": "control_plane"}},
    {"event": "playbook_on_task_start", "event_data": {"task": "Report the days left of the control-plane ..."}},
    host_event("lab-cp2", report({"apiserver": 20, "admin.conf": 21}, "apiserver")),
    host_event("lab-cp1", report(FRESH, "apiserver")),
    # Other debug messages, dicts or not, and failures are not reports.
    host_event("lab-cp1", {"days_left": {"apiserver": 1}, "soonest": "apiserver"}),
    host_event("lab-cp1", "364 days left"),
    host_event("lab-cp3", report(FRESH, "apiserver"), kind="runner_on_failed"),
    host_event("lab-cp3", report({}, "")),  # kubeadm listed no certificate
    {"event": "playbook_on_stats", "event_data": {"ok": {"lab-cp1": 3}}},
]


def result(*certificates: CertificateExpiry) -> RunResult:
    return RunResult(
        playbook="site.yml", status=RunStatus.SUCCESSFUL, rc=0, check=True, certificates=list(certificates)
    )


def test_each_control_plane_nodes_report_is_found_by_its_marker() -> None:
    assert certificate_expiry(EVENTS) == [
        CertificateExpiry("lab-cp1", FRESH, "apiserver", 364, 30, True),
        CertificateExpiry("lab-cp2", {"apiserver": 20, "admin.conf": 21}, "apiserver", 20, 30, True),
    ]


def test_the_last_report_of_a_node_wins() -> None:
    later = host_event("lab-cp1", report({"apiserver": 400}, "apiserver"))
    [expiry, _] = certificate_expiry([*EVENTS, later])
    assert (expiry.host, expiry.soonest_days_left) == ("lab-cp1", 400)


def test_a_run_without_the_report_task_reports_no_certificates() -> None:
    assert certificate_expiry(EVENTS[:2] + EVENTS[4:]) == []


def test_one_line_per_node_says_the_days_left_and_the_soonest_certificate() -> None:
    lines = [certificate_line(expiry) for expiry in certificate_expiry(EVENTS)]
    assert lines == [
        "lab-cp1: control-plane certificates: 364 days left (soonest: apiserver)",
        "lab-cp2: control-plane certificates: 20 days left (soonest: apiserver)",
    ]
    assert certificate_line(CertificateExpiry("cp", {"a": 1}, "a", 1)).endswith(": 1 day left (soonest: a)")
    assert certificate_line(CertificateExpiry("cp", {"a": -2}, "a", -2)).endswith(": expired 2 days ago (soonest: a)")


def test_the_summary_prints_the_lines_and_says_what_to_do_when_renewal_is_due() -> None:
    console = Console(record=True, width=200)
    run = result(*certificate_expiry(EVENTS))
    print_summary(console, run, check=True)
    text = console.export_text()
    assert "lab-cp1: control-plane certificates: 364 days left (soonest: apiserver)" in text
    assert "lab-cp2: control-plane certificates: 20 days left (soonest: apiserver)" in text
    assert [step for step in next_steps(run, check=True) if "fall due" in step] == [
        "Certificates fall due on lab-cp2: the renewal timer renews them at its next run; "
        "`systemctl start kubeadm-certificates-renew.service` there renews them now."
    ]
    off = CertificateExpiry("lab-cp9", {"apiserver": 3}, "apiserver", 3, 30, renewal_enabled=False)
    assert any("renewal timer is off" in step for step in next_steps(result(off), check=True))


def test_the_json_report_holds_the_certificates_of_every_node() -> None:
    reported = json.loads(json_report(result(*certificate_expiry(EVENTS))))["certificates"]
    assert reported == [
        {
            "host": "lab-cp1",
            "days_left": FRESH,
            "soonest": "apiserver",
            "soonest_days_left": 364,
            "renew_days_before": 30,
            "renewal_enabled": True,
            "renewal_due": False,
        },
        {
            "host": "lab-cp2",
            "days_left": {"apiserver": 20, "admin.conf": 21},
            "soonest": "apiserver",
            "soonest_days_left": 20,
            "renew_days_before": 30,
            "renewal_enabled": True,
            "renewal_due": True,
        },
    ]


def test_the_events_kept_in_the_artifact_folder_are_read_in_the_order_they_happened(tmp_path: Path) -> None:
    folder = tmp_path / "job_events"
    folder.mkdir()
    for counter, event in enumerate(EVENTS, start=8):  # 8 to 16: numeric order, not the names'
        (folder / f"{counter}-{counter:08x}-aaaa-bbbb.json").write_text(json.dumps(event))
    (folder / "99-partial.json").write_text("{")  # a partial event ansible-runner had not finished
    (folder / "1234abcd-aaaa-partial.json").write_text("{}")
    (folder / "100-broken.json").write_text("{")
    assert list(job_events(tmp_path)) == EVENTS
    assert certificate_expiry(job_events(tmp_path)) == certificate_expiry(EVENTS)
    assert list(job_events(None)) == []
    assert list(job_events(tmp_path / "missing")) == []


def test_ansible_playbooks_own_words_are_printed_as_they_are() -> None:
    """Brackets in ansible-playbook's output are not Rich markup: none is dropped, and '[/...]' raises nothing."""
    console = Console(record=True, width=300)
    error = "[ERROR]: 'groups[sensorstack_control_plane_group]' in [defaults] of [/etc/ansible/ansible.cfg]"
    run = RunResult(playbook="site.yml", status=RunStatus.FAILED, rc=2, error=error)
    print_summary(console, run)
    assert f"ansible-playbook stopped: {error}" in console.export_text()
