"""The grafana role's rendering, as data: grafana.ini, the provisioning files and the dashboards.

The systemd platform cannot run here (no Grafana package), so the role's own ``validate`` and ``render`` tasks run
through ansible-playbook on localhost and the rendered files are written to a temporary directory, then read back
with real parsers (configparser, YAML, JSON). The filters behind the rendering are tested directly as well. One
playbook run covers the good case and one covers every refusal, so the whole file takes a few seconds.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter import grafana as render

from tests.integration.ansible_module import ROOT, run_local_play

ROLE = ROOT / "roles/grafana"
SHIPPED = ROLE / "files/dashboards/sensorstack-sensors.json"
ADMIN_PASSWORD = "vaulted-admin-9f2c"
# A well-formed pin of Grafana's apt key, as an inventory sets it (the role refuses to run without one).
KEY_CHECKSUM = "sha256:" + "0" * 64
INFLUX_PASSWORD = "vaulted-reader-41d7"
CLEAR_SECRET = "clear-credential-7b1e"


# --- The filters --------------------------------------------------------------------------------------------------


def test_ini_sections_and_keys_are_sorted_and_values_written_as_go_ini_reads_them() -> None:
    text = render.grafana_ini(
        {"server": {"http_port": 3000, "domain": "g.lab"}, "auth.anonymous": {"enabled": False}, "x": {"l": [1, 2]}}
    )
    assert text == ("[auth.anonymous]\nenabled = false\n\n[server]\ndomain = g.lab\nhttp_port = 3000\n\n[x]\nl = 1,2\n")


def test_ini_quotes_values_go_ini_would_cut_at_a_comment_sign() -> None:
    text = render.grafana_ini({"smtp": {"from_name": "Grafana #lab", "empty": None, "pad": " x"}})
    assert "from_name = `Grafana #lab`" in text and "empty = \n" in text and "pad = ` x`" in text


def test_ini_default_section_comes_first_without_a_header() -> None:
    text = render.grafana_ini({"server": {"a": 1}, "DEFAULT": {"instance_name": "lab"}}, "managed")
    assert text.startswith("# managed\n\ninstance_name = lab\n\n[server]\n")


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"server": "not a mapping"}, "section server must be a mapping"),
        ({"server": {"root_url": "a\nb"}}, "[server] root_url spans lines"),
        ({"server": {"nested": {"a": 1}}}, "[server] nested is a mapping"),
    ],
)
def test_ini_refuses_what_grafana_ini_cannot_hold(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        render.grafana_ini(sections)


def test_one_provider_per_folder_that_holds_a_dashboard() -> None:
    dashboards = [{"src": "a.json", "folder_uid": "site"}, {"src": "b.json"}, {"src": "c.json", "folder_uid": "site"}]
    folders = [{"uid": "site", "title": "Site"}, {"uid": "unused", "title": "Unused"}]
    providers = render.grafana_dashboard_providers(dashboards, folders, "/var/lib/grafana/dashboards/", 10)
    assert [(p["name"], p["folder"], p["folderUid"], p["options"]["path"]) for p in providers] == [
        ("sensorstack-general", "", "", "/var/lib/grafana/dashboards/general"),
        ("sensorstack-site", "Site", "site", "/var/lib/grafana/dashboards/site"),
    ]
    assert all(
        p["type"] == "file" and p["allowUiUpdates"] is False and p["updateIntervalSeconds"] == 10 for p in providers
    )


def test_a_provider_for_an_undeclared_folder_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="folder_uid nope is not in grafana_dashboard_folders"):
        render.grafana_dashboard_providers([{"src": "a.json", "folder_uid": "nope"}], [], "/d")


def test_dashboard_files_are_named_by_folder_and_uid() -> None:
    files = render.grafana_dashboard_files(
        [{"src": "a.json", "folder_uid": "site"}, {"src": "b.json"}], [{"uid": "a", "title": "A"}, {"uid": "b"}]
    )
    assert list(files) == ["site/a.json", "general/b.json"]
    assert json.loads(files["site/a.json"]) == {"uid": "a", "title": "A"}


def test_the_same_dashboard_twice_in_a_folder_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="provisioned twice"):
        render.grafana_dashboard_files([{"src": "a.json"}, {"src": "b.json"}], [{"uid": "a"}, {"uid": "a"}])


# --- The role's render tasks, run by ansible-playbook ----------------------------------------------------------------


def run_playbook(play: list[dict[str, Any]], workdir: Path) -> subprocess.CompletedProcess[str]:
    for entry in play:
        entry["vars"]["ansible_python_interpreter"] = "{{ ansible_playbook_python }}"
    return run_local_play(play, workdir)


def role_tasks(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"Run the role's {name} tasks",
            "ansible.builtin.include_role": {"name": "grafana", "tasks_from": name},
        }
        for name in names
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The role rendered with a user's overrides and files written out the way a platform places them."""
    workdir = tmp_path_factory.mktemp("grafana-render")
    user_dashboard = workdir / "mine.json"
    user_dashboard.write_text(
        json.dumps({"uid": "my-lab", "title": "My lab", "panels": [{"id": 1, "legendFormat": "{{ host }}"}]})
    )
    out = workdir / "out"
    variables = {
        "grafana_admin_password": ADMIN_PASSWORD,
        "grafana_apt_key_checksum": KEY_CHECKSUM,
        # The influxdb role's variables: the datasource takes its database and its user's password from them.
        "influxdb_databases": [{"name": "sensors"}, {"name": "other"}],
        "influxdb_users": [{"name": "telegraf", "password": "x"}, {"name": "grafana", "password": INFLUX_PASSWORD}],
        "grafana_influxdb_url": "http://influxdb.sensorstack.svc:8086",
        "grafana_ini": {
            "server": {"root_url": "https://grafana.lab/", "http_port": 3001},
            "auth.anonymous": {"enabled": True},
            "smtp": {"enabled": True, "host": "mail.lab:25"},
        },
        "grafana_extra_dashboards": [{"src": str(user_dashboard)}],
        "grafana_datasources": [{"name": "Loki", "type": "loki", "uid": "loki", "url": "http://loki:3100"}],
    }
    place = [
        {
            "name": "Check the variables against the role's argument spec",
            "ansible.builtin.validate_argument_spec": {
                "argument_spec": "{{ (lookup('ansible.builtin.file', '"
                + str(ROLE / "meta/argument_specs.yml")
                + "') | from_yaml).argument_specs.main.options }}"
            },
        },
        *role_tasks("validate", "render"),
        {
            "name": "Write grafana.ini where the test reads it",
            "ansible.builtin.copy": {
                "content": "{{ grafana_rendered.ini }}",
                "dest": f"{out}/grafana.ini",
                "mode": "0600",
            },
        },
        {
            "name": "Write the provisioning files and dashboards where the test reads them",
            "ansible.builtin.copy": {
                "content": "{{ item.value }}",
                "dest": f"{out}/{{{{ item.key }}}}",
                "mode": "0600",
            },
            "loop": "{{ (grafana_rendered.provisioning | dict2items) + (grafana_rendered.dashboards | dict2items) }}",
        },
    ]
    directories = ["datasources", "dashboards", "sensorstack", "general"]
    prepare = [
        {
            "name": "Make the output directories",
            "ansible.builtin.file": {"path": f"{out}/{d}", "state": "directory", "mode": "0700"},
        }
        for d in directories
    ]
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": prepare + place,
        }
    ]
    completed = run_playbook(play, workdir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


def read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())
    return parser


def test_grafana_ini_has_the_hardening_and_the_users_settings(rendered: Path) -> None:
    ini = read_ini(rendered / "grafana.ini")
    assert ini["server"]["root_url"] == "https://grafana.lab/" and ini["server"]["http_port"] == "3001"
    assert ini["smtp"]["enabled"] == "true" and ini["analytics"]["reporting_enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false"


def test_anonymous_access_and_the_admin_stay_the_roles_whatever_grafana_ini_says(rendered: Path) -> None:
    ini = read_ini(rendered / "grafana.ini")
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["security"]["admin_user"] == "admin"
    assert ini["security"]["admin_password"] == "$__file{/etc/grafana/secrets/admin_password}"
    assert ini["paths"]["provisioning"] == "/etc/grafana/provisioning"


def test_no_rendered_file_holds_a_secret(rendered: Path) -> None:
    for path in rendered.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert ADMIN_PASSWORD not in text and INFLUX_PASSWORD not in text, path


def test_the_influxdb_datasource_is_provisioned_for_influxql_over_post(rendered: Path) -> None:
    document = yaml.safe_load((rendered / "datasources/sensorstack.yaml").read_text())
    assert document["apiVersion"] == 1
    influx, loki = document["datasources"]
    assert influx == {
        "name": "InfluxDB",
        "uid": "sensorstack-influxdb",
        "type": "influxdb",
        "access": "proxy",
        "url": "http://influxdb.sensorstack.svc:8086",
        "user": "grafana",
        "isDefault": True,
        "editable": False,
        "jsonData": {"dbName": "sensors", "httpMode": "POST"},
        "secureJsonData": {"password": "$__file{/etc/grafana/secrets/influxdb_password}"},
    }
    assert loki["name"] == "Loki"


def test_dashboard_providers_point_at_one_directory_per_folder(rendered: Path) -> None:
    document = yaml.safe_load((rendered / "dashboards/sensorstack.yaml").read_text())
    folders = {p["folderUid"]: (p["folder"], p["options"]["path"]) for p in document["providers"]}
    assert folders == {
        "": ("", "/var/lib/grafana/dashboards/general"),
        "sensorstack": ("Sensorstack", "/var/lib/grafana/dashboards/sensorstack"),
    }


def test_the_shipped_and_the_users_dashboards_are_rendered_unchanged(rendered: Path) -> None:
    assert json.loads((rendered / "sensorstack/sensorstack-sensors.json").read_text()) == json.loads(
        SHIPPED.read_text()
    )
    mine = json.loads((rendered / "general/my-lab.json").read_text())
    assert mine["panels"][0]["legendFormat"] == "{{ host }}"


# --- Refusals -------------------------------------------------------------------------------------------------------

REFUSALS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "no admin password": ({"grafana_admin_password": None}, ["grafana_admin_password must be set"]),
    "admin as password": ({"grafana_admin_password": "admin"}, ["grafana_admin_password must be set", "none of admin"]),
    "unpinned apt key": ({"grafana_apt_key_checksum": ""}, ["grafana_apt_key_checksum must pin"]),
    "unknown platform": ({"grafana_platform": "nomad"}, ["grafana_platform must be systemd or kubernetes", "nomad"]),
    "user without password": (
        {"grafana_influxdb_password": ""},
        ["grafana_influxdb_user is grafana", "password is empty"],
    ),
    "two defaults": (
        {"grafana_datasources": [{"name": "Other", "type": "loki", "isDefault": True}]},
        ["more than one default datasource", "InfluxDB, Other"],
    ),
    "unknown folder": (
        {"grafana_extra_dashboards": [{"src": "dashboards/sensorstack-sensors.json", "folder_uid": "nope"}]},
        ["folder_uid nope", "not in grafana_dashboard_folders"],
    ),
    "dashboard without uid": ({"grafana_extra_dashboards": [{"src": "NO_UID"}]}, ["needs a title and a uid"]),
    "multi-line setting": ({"grafana_ini": {"server": {"root_url": "a\nb"}}}, ["[server] root_url spans lines"]),
    # On Kubernetes grafana.ini and datasources.yaml are a ConfigMap: no credential in the clear there.
    "clear ini credential on kubernetes": (
        {"grafana_platform": "kubernetes", "grafana_ini": {"smtp": {"password": CLEAR_SECRET}}},
        ["grafana_ini [smtp] password holds a credential in the clear", "ConfigMap grafana-config", "grafana_secrets"],
    ),
    "clear datasource credential on kubernetes": (
        {
            "grafana_platform": "kubernetes",
            "grafana_datasources": [
                {"name": "Loki", "type": "loki", "secureJsonData": {"basicAuthPassword": CLEAR_SECRET}}
            ],
        },
        ["grafana_datasources entry Loki holds secureJsonData.basicAuthPassword in the clear"],
    ),
    "undeclared secret file": (
        {"grafana_ini": {"smtp": {"password": "$__file{/etc/grafana/secrets/smtp_password}"}}},
        ["grafana_ini refers to $__file{/etc/grafana/secrets/smtp_password}", "grafana_secrets does not declare"],
    ),
    "secret named like one of the role": (
        {"grafana_secrets": {"admin_password": CLEAR_SECRET}},
        ["grafana_secrets names admin_password, a file of the role's own"],
    ),
    "environment on kubernetes": (
        {"grafana_platform": "kubernetes", "grafana_ini": {"auth.generic_oauth": {"client_secret": "${OAUTH}"}}},
        ["grafana_ini [auth.generic_oauth] client_secret read an environment variable", "an empty value"],
    ),
    "credential inside a url on kubernetes": (
        {
            "grafana_platform": "kubernetes",
            "grafana_ini": {"database": {"url": f"mysql://grafana:{CLEAR_SECRET}@db/g"}},
        },
        ["grafana_ini [database] url holds a credential in the clear"],
    ),
    "secret without a value": ({"grafana_secrets": {"smtp_password": ""}}, ["grafana_secrets gives smtp_password no"]),
    "file the role does not write": (
        {
            "grafana_influxdb_user": "",
            "grafana_influxdb_password": "",
            "grafana_ini": {"x": {"password": "$__file{/etc/grafana/secrets/influxdb_password}"}},
        },
        ["refers to $__file{/etc/grafana/secrets/influxdb_password}"],
    ),
    "secret name outside the directory": (
        {"grafana_secrets": {"../grafana.ini": CLEAR_SECRET}},
        ["grafana_secrets names the file '../grafana.ini'"],
    ),
}

# Cases the role must let through, run in the same playbook.
ACCEPTED: dict[str, dict[str, Any]] = {
    "secret through grafana_secrets on kubernetes": {
        "grafana_platform": "kubernetes",
        "grafana_influxdb_database": "telemetry",
        "grafana_secrets": {"smtp_password": CLEAR_SECRET},
        "grafana_ini": {
            "smtp": {"password": "$__file{/etc/grafana/secrets/smtp_password}", "enabled": True},
            "auth.generic_oauth": {"use_refresh_token": "true", "token_url": "https://sso.lab/token"},
            "database": {"url": "postgres://grafana@db.lab:5432/grafana"},
        },
        "grafana_datasources": [
            {
                "name": "Loki",
                "type": "loki",
                "jsonData": {"httpHeaderName1": "Authorization"},
                "secureJsonData": {"httpHeaderValue1": "Bearer $__file{/etc/grafana/secrets/smtp_password}"},
            }
        ],
    },
}


# A looped assert fails with "One or more items failed"; the item's own message is in its result.
FAILURE_MESSAGE = (
    "(ansible_failed_result.msg | default('') | string) ~ ' '"
    " ~ (ansible_failed_result.results | default([]) | map(attribute='msg', default='') | join(' '))"
)


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every refusal case in one playbook: each case's failure message, or 'passed' if the role let it through."""
    workdir = tmp_path_factory.mktemp("grafana-refusals")
    no_uid = workdir / "no-uid.json"
    no_uid.write_text(json.dumps({"title": "No uid"}))
    results = workdir / "results.json"
    base = {
        "grafana_admin_password": ADMIN_PASSWORD,
        "grafana_influxdb_password": INFLUX_PASSWORD,
        "grafana_apt_key_checksum": KEY_CHECKSUM,
    }
    tasks: list[dict[str, Any]] = [{"name": "Start with no results", "ansible.builtin.set_fact": {"outcomes": {}}}]
    for case, overrides in {**{case: overrides for case, (overrides, _) in REFUSALS.items()}, **ACCEPTED}.items():
        case_vars = base | json.loads(json.dumps(overrides).replace("NO_UID", str(no_uid)))
        case_vars = {key: value for key, value in case_vars.items() if value is not None}
        tasks.append(
            {
                "name": f"Try the case {case}",
                "block": [
                    *role_tasks("validate", "render"),
                    {
                        "name": "Record a pass",
                        "ansible.builtin.set_fact": {
                            "outcomes": f"{{{{ outcomes | combine({{'{case}': 'passed'}}) }}}}"
                        },
                    },
                ],
                "rescue": [
                    {
                        "name": "Record the failure message",
                        "ansible.builtin.set_fact": {
                            "outcomes": f"{{{{ outcomes | combine({{'{case}': {FAILURE_MESSAGE}}}) }}}}"
                        },
                    }
                ],
                "vars": case_vars,
            }
        )
    tasks.append(
        {
            "name": "Write the outcomes",
            "ansible.builtin.copy": {"content": "{{ outcomes | to_json }}", "dest": str(results), "mode": "0600"},
        }
    )
    play = [
        {
            "name": "Refusals",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {},
            "tasks": tasks,
        }
    ]
    completed = run_playbook(play, workdir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(results.read_text())


@pytest.mark.parametrize("case", REFUSALS)
def test_the_role_refuses_bad_settings_with_a_message_naming_them(refusals: dict[str, str], case: str) -> None:
    message = refusals[case]
    assert message != "passed", f"{case} was not refused"
    for fragment in REFUSALS[case][1]:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert CLEAR_SECRET not in message


def test_a_credential_read_from_grafana_secrets_is_accepted_on_kubernetes(refusals: dict[str, str]) -> None:
    assert refusals["secret through grafana_secrets on kubernetes"] == "passed"
