"""The stack's lab stand-in images: their contracts, the package layer's pure parts and the Grafana launcher."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sensorstack.bundle import stack_images
from sensorstack.bundle.debian_base import DebianBase
from sensorstack.bundle.debian_packages import (
    PackageLayer,
    PackageLayerRecipe,
    SystemAccount,
    account_commands,
    changes,
    stage_changes,
    whiteout,
)
from sensorstack.bundle.image_names import ImageName
from sensorstack.bundle.oci_layout import Layer

VERSIONS = {
    "sensorstack_mosquitto_image": "docker.io/library/eclipse-mosquitto:2.0.22",
    "sensorstack_influxdb_image": "docker.io/library/influxdb:1.12.4",
    "sensorstack_telegraf_image": "docker.io/library/telegraf:1.37.2",
    "sensorstack_grafana_image": "docker.io/grafana/grafana:12.4.5",
}
PASSWD = "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n"


def specs_by_component() -> dict[str, stack_images.ImageSpec]:
    specs = stack_images.stack_images(VERSIONS, {"influxdb": "debian trixie influxdb 1.6.7~rc0-2+b12"})
    return {standin.component: spec for standin, spec in zip(stack_images.STANDINS, specs, strict=True)}


# --- the official contracts ---------------------------------------------------------------------------------------


def test_each_stand_in_takes_the_official_name_and_tag_from_versions() -> None:
    names = [str(spec.name) for spec in stack_images.stack_images(VERSIONS)]

    assert names == list(VERSIONS.values())


def test_a_missing_pin_names_its_variable() -> None:
    versions = {key: value for key, value in VERSIONS.items() if key != "sensorstack_influxdb_image"}

    with pytest.raises(KeyError, match="sensorstack_influxdb_image"):
        stack_images.stack_images(versions)


def test_every_stand_in_says_what_it_really_carries() -> None:
    specs = specs_by_component()

    labels = {component: dict(spec.config.labels) for component, spec in specs.items()}
    assert labels["influxdb"][stack_images.STANDIN_LABEL] == "debian trixie influxdb 1.6.7~rc0-2+b12"
    assert "NOT Grafana" in labels["grafana"][stack_images.STANDIN_LABEL].replace("not Grafana", "NOT Grafana")
    assert all(label[stack_images.STANDIN_LABEL] for label in labels.values())


def test_mosquitto_keeps_the_official_layout_entrypoint_and_port() -> None:
    spec = specs_by_component()["mosquitto"]
    entries = {entry.path: entry for entry in spec.extra}

    assert spec.config.entrypoint == ("/docker-entrypoint.sh",)
    assert spec.config.cmd == ("/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf")
    assert spec.config.exposed_ports == ("1883/tcp",)
    for folder in ("/mosquitto/config", "/mosquitto/data", "/mosquitto/log"):
        assert (entries[folder].uid, entries[folder].gid) == (1883, 1883)
    assert "/mosquitto-no-auth.conf" in entries


def test_influxdb_runs_as_its_user_with_the_official_entrypoint_and_config_path() -> None:
    spec = specs_by_component()["influxdb"]
    paths = {entry.path for entry in spec.extra}

    assert spec.config.user == "influxdb"
    assert (spec.config.entrypoint, spec.config.cmd) == (("/entrypoint.sh",), ("influxd",))
    assert {"/entrypoint.sh", "/init-influxdb.sh", "/etc/influxdb/influxdb.conf"} <= paths
    assert spec.config.exposed_ports == ("8086/tcp",)
    assert stack_images.INFLUXDB.uid == 1500


def test_telegraf_carries_the_build_where_the_official_image_has_its_binary() -> None:
    spec = specs_by_component()["telegraf"]

    assert [(file.path, file.binary) for file in spec.files] == [("/usr/bin/telegraf", "telegraf")]
    assert "/etc/telegraf/telegraf.conf" in {entry.path for entry in spec.extra}
    assert spec.config.exposed_ports == ("8092/udp", "8094/tcp", "8125/udp")
    assert spec.config.user == ""  # root: the entrypoint drops to telegraf (999) itself


def test_grafana_runs_as_472_with_the_official_paths() -> None:
    spec = specs_by_component()["grafana"]
    environment = dict(item.split("=", 1) for item in spec.config.env)
    entries = {entry.path: entry for entry in spec.extra}

    assert spec.config.user == "472"
    assert spec.config.entrypoint == ("/run.sh",)
    assert spec.config.working_dir == "/usr/share/grafana"
    assert environment["GF_PATHS_DATA"] == "/var/lib/grafana"
    assert environment["GF_PATHS_PROVISIONING"] == "/etc/grafana/provisioning"
    assert (entries["/var/lib/grafana"].uid, entries["/var/lib/grafana"].gid) == (472, 0)
    assert "/usr/lib/sensorstack/grafana_double/server.py" in entries
    # The image's grafana binary on its PATH, as `grafana cli admin reset-admin-password` finds it in a pod.
    assert "/usr/share/grafana/bin" in environment["PATH"].split(":")
    assert entries["/usr/share/grafana/bin/grafana"].mode == 0o755


def test_every_file_a_stand_in_carries_exists() -> None:
    for spec in stack_images.stack_images(VERSIONS):
        for entry in spec.extra:
            assert entry.source is None or entry.source.is_file(), entry.path


def test_a_telegraf_build_of_another_release_is_refused() -> None:
    name = ImageName.parse(VERSIONS["sensorstack_telegraf_image"])

    stack_images.check_telegraf(name, "1.37.2")
    with pytest.raises(ValueError, match=r"promises Telegraf 1\.37\.2"):
        stack_images.check_telegraf(name, "1.37.3")


def test_descriptions_name_the_debian_package_version() -> None:
    influxdb = next(standin for standin in stack_images.STANDINS if standin.component == "influxdb")

    description = stack_images.describe(influxdb, {"influxdb": "1.6.7~rc0-2+b12"})

    assert description == "debian trixie influxdb 1.6.7~rc0-2+b12"


def test_the_package_layer_is_part_of_the_image_recipe(tmp_path: Path) -> None:
    layer = Layer("sha256:base", 1, "sha256:base-diff")
    base = DebianBase(tmp_path, layer, 0, ())
    packages = PackageLayer(tmp_path, Layer("sha256:packages", 1, "sha256:packages-diff"))
    spec = specs_by_component()["mosquitto"]
    plain = stack_images.StackImageBuilder({}, cache=tmp_path, debian_base=base)
    layered = stack_images.StackImageBuilder(
        {}, cache=tmp_path, debian_base=base, package_layers={str(spec.name): packages}
    )

    assert plain._base_id(spec) != layered._base_id(spec)
    assert layered._base_layers(spec, tmp_path)[-1] == (packages.layer_path, packages.layer)


# --- the package layer ----------------------------------------------------------------------------------------------


def test_a_missing_account_is_created_with_its_ids() -> None:
    account = SystemAccount("mosquitto", 1883, 1883, "mosquitto", home="/var/empty")

    commands, previous = account_commands(account, PASSWD, GROUP)

    assert commands[0] == ["groupadd", "--system", "--gid", "1883", "mosquitto"]
    assert commands[1][:5] == ["useradd", "--system", "--no-create-home", "--uid", "1883"]
    assert previous == {}


def test_an_account_a_package_created_is_renumbered() -> None:
    passwd = PASSWD + "influxdb:x:100:101::/var/lib/influxdb:/bin/false\n"
    group = GROUP + "influxdb:x:101:\n"
    account = SystemAccount("influxdb", 1500, 1500, "influxdb", home="/var/lib/influxdb", shell="/bin/false")

    commands, previous = account_commands(account, passwd, group)

    assert commands == [
        ["groupmod", "--gid", "1500", "influxdb"],
        [
            "usermod",
            "--uid",
            "1500",
            "--gid",
            "1500",
            "--home",
            "/var/lib/influxdb",
            "--shell",
            "/bin/false",
            "influxdb",
        ],
    ]
    assert previous == {"uid": 100, "gid": 101}


def test_an_account_with_the_right_ids_needs_nothing() -> None:
    passwd = PASSWD + "grafana:x:472:0::/usr/share/grafana:/usr/sbin/nologin\n"
    account = SystemAccount("grafana", 472, 0, "root", home="/usr/share/grafana")

    assert account_commands(account, passwd, GROUP) == ([], {})


def test_ids_another_account_holds_are_refused() -> None:
    with pytest.raises(ValueError, match="uid 42 for telegraf already belongs to user _apt"):
        account_commands(SystemAccount("telegraf", 42, 999, "telegraf"), PASSWD, GROUP)
    with pytest.raises(ValueError, match="gid 42 for telegraf already belongs to group shadow"):
        account_commands(SystemAccount("telegraf", 999, 42, "telegraf"), PASSWD, GROUP)


def test_changes_list_new_and_changed_paths_and_only_the_topmost_removed_one() -> None:
    same = (1, 1, 0o100644, 0, 0, "")
    before = {"etc": same, "etc/passwd": same, "opt": same, "opt/a": same, "opt/a/b": same}
    after = {"etc": same, "etc/passwd": (2, 2, 0o100644, 0, 0, ""), "etc/new": same}

    changed, removed = changes(before, after)

    assert changed == ["etc/new", "etc/passwd"]
    assert removed == ["opt"]
    assert whiteout("opt") == ".wh.opt"
    assert whiteout("etc/mosquitto/old.conf") == "etc/mosquitto/.wh.old.conf"


def test_staged_changes_keep_hard_links_owners_and_whiteouts(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "usr/bin/mosquitto_pub").write_text("binary")
    os.link(rootfs / "usr/bin/mosquitto_pub", rootfs / "usr/bin/mosquitto_rr")
    (rootfs / "var/lib/mosquitto").mkdir(parents=True, mode=0o750)
    (rootfs / "usr/bin/link").symlink_to("mosquitto_pub")

    changed = ["usr/bin/link", "usr/bin/mosquitto_pub", "usr/bin/mosquitto_rr", "var/lib/mosquitto"]
    stage_changes(rootfs, tmp_path / "delta", changed, ["etc/old.conf"])

    delta = tmp_path / "delta"
    assert (delta / "usr/bin/mosquitto_pub").stat().st_ino == (delta / "usr/bin/mosquitto_rr").stat().st_ino
    assert os.readlink(delta / "usr/bin/link") == "mosquitto_pub"
    assert (delta / "var/lib/mosquitto").stat().st_mode & 0o777 == 0o750
    assert (delta / "etc/.wh.old.conf").is_file()


def test_the_layer_recipe_follows_packages_accounts_and_base(tmp_path: Path) -> None:
    base = DebianBase(tmp_path, Layer("sha256:base", 1, "sha256:diff"), 0, ())
    other_base = DebianBase(tmp_path, Layer("sha256:other", 1, "sha256:diff"), 0, ())
    recipe = PackageLayerRecipe("influxdb", ("influxdb",), (stack_images.INFLUXDB,))

    assert recipe.recipe(base) == PackageLayerRecipe("influxdb", ("influxdb",), (stack_images.INFLUXDB,)).recipe(base)
    assert recipe.recipe(base) != recipe.recipe(other_base)
    assert recipe.recipe(base) != PackageLayerRecipe("influxdb", ("influxdb", "influxdb-client")).recipe(base)


# --- the Grafana stand-in's launcher --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launcher() -> ModuleType:
    path = stack_images.STACK_FILES / "grafana/grafana_standin.py"
    spec = importlib.util.spec_from_file_location("grafana_standin", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_admin_password_comes_from_the_environment_over_grafana_ini(launcher: ModuleType) -> None:
    ini = (
        "app_mode = production\n[security]\nadmin_user = root\nadmin_password = from-file\n[server]\nhttp_port = 3001\n"
    )

    settings = launcher.read_settings({"GF_SECURITY_ADMIN_PASSWORD": "from-env"}, ini)

    assert (settings.admin_user, settings.admin_password, settings.http_port) == ("root", "from-env", 3001)


def test_grafana_defaults_apply_without_a_file(launcher: ModuleType) -> None:
    settings = launcher.read_settings({}, "")

    assert (settings.admin_user, settings.admin_password, settings.http_port) == ("admin", "admin", 3000)


def test_file_variables_carry_secrets_and_refuse_both_forms(launcher: ModuleType, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret")

    resolved = launcher.resolve_file_variables({"GF_SECURITY_ADMIN_PASSWORD__FILE": str(secret)})

    assert resolved == {"GF_SECURITY_ADMIN_PASSWORD": "s3cret"}
    with pytest.raises(SystemExit, match="Both GF_SECURITY_ADMIN_PASSWORD"):
        launcher.resolve_file_variables(
            {"GF_SECURITY_ADMIN_PASSWORD": "x", "GF_SECURITY_ADMIN_PASSWORD__FILE": str(secret)}
        )


def test_provisioning_files_expand_variables_like_grafana(launcher: ModuleType) -> None:
    text = "url: $URL/${PATH_PART}, user: $__env{USER_NAME}, cost: $$5"

    expanded = launcher.expand(text, {"URL": "http://influxdb:8086", "PATH_PART": "x", "USER_NAME": "grafana"})

    assert expanded == "url: http://influxdb:8086/x, user: grafana, cost: $5"


def test_file_and_environment_references_expand_like_grafana(launcher: ModuleType, tmp_path: Path) -> None:
    secret = tmp_path / "admin_password"
    secret.write_text("from-a-file\n")
    ini = f"[security]\nadmin_user = $__env{{ADMIN}}\nadmin_password = $__file{{{secret}}}\n"

    settings = launcher.read_settings({"ADMIN": "root"}, ini)
    provisioned = launcher.expand(f"password: $__file{{{secret}}}", {})

    assert (settings.admin_user, settings.admin_password, provisioned) == (
        "root",
        "from-a-file",
        "password: from-a-file",
    )


def test_a_file_that_grafana_ini_names_and_that_is_missing_stops_the_start(
    launcher: ModuleType, tmp_path: Path
) -> None:
    ini = f"[smtp]\npassword = $__file{{{tmp_path / 'missing'}}}\n"

    with pytest.raises(SystemExit, match=r"Failed to expand \[smtp\] password"):
        launcher.read_settings({}, ini)


def test_a_provisioning_reload_updates_the_datasources_of_the_files_and_keeps_the_others(
    launcher: ModuleType, tmp_path: Path
) -> None:
    from tests.grafana_double import GrafanaDouble, JsonApi, basic_auth

    (tmp_path / "datasources").mkdir()
    source = tmp_path / "datasources/influxdb.yaml"
    entry = "  - {{name: {name}, type: {name}, uid: {name}, url: {url}}}\n"
    source.write_text(
        "datasources:\n" + entry.format(name="influx", url="http://a") + entry.format(name="loki", url="x")
    )
    settings = launcher.Settings(provisioning=tmp_path)
    with GrafanaDouble(password="pw", token=None) as double:
        launcher._provision(double, settings, {})
        double.routes.append(launcher.reload_route(double, settings, {}))
        api = JsonApi(double.url, basic_auth("admin", "pw"))
        # One changed, the other dropped from the files: Grafana updates the first and keeps the second.
        source.write_text("datasources:\n" + entry.format(name="influx", url="http://b"))
        before = api("GET", "/api/datasources/uid/influx")[1]["url"]
        status, answer = api("POST", "/api/admin/provisioning/datasources/reload")
        after = api("GET", "/api/datasources/uid/influx")[1]
        kept = api("GET", "/api/datasources/uid/loki")[0]

    assert (before, status, answer["message"]) == ("http://a", 200, "Datasources config reloaded")
    assert (after["url"], after["readOnly"], kept) == ("http://b", True, 200)


def test_provisioned_datasources_and_dashboards_are_read(launcher: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "datasources").mkdir()
    (tmp_path / "datasources/influxdb.yaml").write_text(
        "apiVersion: 1\ndatasources:\n  - name: InfluxDB\n    type: influxdb\n    uid: influx\n    orgId: 1\n"
        "    url: http://influxdb:8086\n    secureJsonData:\n      password: $INFLUX_PASSWORD\n"
    )
    dashboards = tmp_path / "json"
    dashboards.mkdir()
    (dashboards / "sensors.json").write_text(json.dumps({"title": "Sensors", "id": 7}))
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards/providers.yaml").write_text(
        f"apiVersion: 1\nproviders:\n  - name: sensorstack\n    folder: IoT\n    options:\n      path: {dashboards}\n"
    )

    datasources = launcher.provisioned_datasources(tmp_path, {"INFLUX_PASSWORD": "pw"})
    found = launcher.provisioned_dashboards(tmp_path, {})

    assert datasources == [
        (
            1,
            {
                "name": "InfluxDB",
                "type": "influxdb",
                "uid": "influx",
                "url": "http://influxdb:8086",
                "secureJsonData": {"password": "pw"},
            },
        )
    ]
    assert [(item.folder_title, item.dashboard) for item in found] == [("IoT", {"title": "Sensors", "uid": "sensors"})]


def test_the_data_folder_comes_from_the_image_environment_over_grafana_ini(launcher: ModuleType) -> None:
    ini = "[paths]\ndata = /srv/grafana\n"

    assert launcher.read_settings({}, ini).data == Path("/srv/grafana")
    assert launcher.read_settings({"GF_PATHS_DATA": "/var/lib/grafana"}, ini).data == Path("/var/lib/grafana")


def test_what_the_api_wrote_survives_a_restart_in_the_data_folder(launcher: ModuleType, tmp_path: Path) -> None:
    from tests.grafana_double import GrafanaDouble, JsonApi, basic_auth

    database = launcher.StateFile(tmp_path / launcher.STATE_FILE)
    with GrafanaDouble(password="pw", token=None) as first:
        first.on_write = database.save
        JsonApi(first.url, basic_auth("admin", "pw"))("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})

    with GrafanaDouble(password="pw", token=None) as second:
        assert database.load(second)
        status, folder = JsonApi(second.url, basic_auth("admin", "pw"))("GET", "/api/folders/site-a")

    assert (status, folder["title"]) == (200, "Site A")
    assert [path.name for path in tmp_path.iterdir()] == [launcher.STATE_FILE]
    assert "pw" not in database.path.read_text()  # a salted hash, as in grafana.db


def test_a_restart_keeps_the_admin_password_of_the_database_not_the_configured_one(
    launcher: ModuleType, tmp_path: Path
) -> None:
    """Grafana applies admin_password only when it creates its database: a new Secret alone changes nothing."""
    from tests.grafana_double import GrafanaDouble, JsonApi, basic_auth

    database = launcher.StateFile(tmp_path / launcher.STATE_FILE)
    with GrafanaDouble(password="first", token=None) as created:
        assert not database.load(created)
        database.save(created.state)

    with GrafanaDouble(password="second", token=None) as restarted:
        assert database.load(restarted)
        old = JsonApi(restarted.url, basic_auth("admin", "first"))("GET", "/api/user")[0]
        new = JsonApi(restarted.url, basic_auth("admin", "second"))("GET", "/api/user")[0]

    assert (old, new) == (200, 401)


def test_the_cli_resets_the_admin_password_of_a_running_server_from_stdin(
    launcher: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from tests.grafana_double import GrafanaDouble, JsonApi, basic_auth

    monkeypatch.syspath_prepend(str(Path("tests").resolve()))  # the image puts the double beside the launcher
    environ = {"GF_PATHS_DATA": str(tmp_path), "GF_PATHS_CONFIG": str(tmp_path / "absent.ini")}
    database = launcher.StateFile(tmp_path / launcher.STATE_FILE)
    with GrafanaDouble(password="old", token=None) as server:
        database.save(server.state)
        server.on_write, server.on_request = database.save, database.read_users_if_changed
        arguments = ["--homepath", "/usr/share/grafana", "admin", "reset-admin-password", "--password-from-stdin"]
        said = launcher.reset_admin_password(environ, arguments, io.StringIO("rotated\n"))
        old = JsonApi(server.url, basic_auth("admin", "old"))("GET", "/api/user")[0]
        new = JsonApi(server.url, basic_auth("admin", "rotated"))("GET", "/api/user")[0]

    assert said == "Admin password changed successfully ✔"
    assert (old, new) == (401, 200)


def test_the_cli_refuses_a_data_folder_without_a_database(launcher: ModuleType, tmp_path: Path) -> None:
    import io

    environ = {"GF_PATHS_DATA": str(tmp_path)}
    with pytest.raises(SystemExit, match="no database"):
        launcher.reset_admin_password(environ, ["admin", "reset-admin-password", "x"], io.StringIO())
