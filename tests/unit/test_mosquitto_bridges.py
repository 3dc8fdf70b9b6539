"""mosquitto_bridges: what the checks refuse before any change (naming the bridge, never its password or key), the TLS
files the bridges get, and the egress a bridge to an IP address needs on Kubernetes."""

from __future__ import annotations

from typing import Any

from ansible_collections.sensorstack.iot.plugins.filter.mosquitto import (
    bridge_address,
    mosquitto_bridge_egress,
    mosquitto_bridge_tls_files,
    mosquitto_bridge_tls_path,
    mosquitto_problems,
)

PASSWORD = "vaulted pass #1"
BRIDGE: dict[str, Any] = {
    "name": "central",
    "addresses": ["192.0.2.10:8883", "192.0.2.11"],
    "topics": [{"pattern": "sensors/#", "remote_prefix": "site-a/"}, {"pattern": "commands/#", "direction": "in"}],
    "remote_username": "site-a",
    "remote_password": PASSWORD,
}


def settings(*bridges: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "mosquitto_listeners": [{"port": 1883}],
        "mosquitto_bridges": list(bridges),
        "mosquitto_bridge_dir": "/etc/mosquitto/bridges",
        "mosquitto_config_dir": "/etc/mosquitto",
        "mosquitto_platform": "systemd",
        "mosquitto_config_extra": [],
        "mosquitto_kubernetes_extra_egress": [],
    } | more


def test_a_complete_bridge_passes_on_both_platforms() -> None:
    assert mosquitto_problems(settings(BRIDGE)) == []
    assert mosquitto_problems(settings(BRIDGE, mosquitto_platform="kubernetes")) == []


def test_every_mistake_names_its_bridge_and_never_the_password() -> None:
    broken = {
        "name": "central west",
        "addresses": ["broker.example.net:0", "two words", "2001:db8::1"],
        "topics": [
            {"pattern": "sensors/#", "direction": "sideways", "qos": 3},
            {"pattern": "a b", "local_prefix": "site/+/"},
        ],
        "remote_password": " " + PASSWORD,
        "remote_clientid": "edge one",
        "protocol_version": "mqttv5",
        "extra": ["keepalive_interval 30\nconnection injected"],
    }
    problems = mosquitto_problems(settings(broken, {"name": "bare", "addresses": [], "topics": []}))
    where = "mosquitto_bridges[central west]"
    assert problems == [
        f"{where}: name must be letters, digits, - and _ (got 'central west')",
        f"{where}: the address 'broker.example.net:0' is not host[:port] with a port from 1 to 65535",
        f"{where}: the address 'two words' is not host[:port] with a port from 1 to 65535",
        f"{where}: the address '2001:db8::1' is an IPv6 address, which Mosquitto's bridges cannot take (they split"
        " host and port at the first colon): use a host name",
        f"{where}: the topic sensors/# has direction 'sideways'; use out, in or both",
        f"{where}: the topic sensors/# has qos 3; use 0, 1 or 2",
        f"{where}: a topic pattern must be one word without spaces (got 'a b')",
        f"{where}: the topic a b has local_prefix 'site/+/': one word, no + or #",
        f"{where}: remote_clientid must be one word without spaces",
        f"{where}: remote_password needs remote_username",
        f"{where}: remote_password may not start or end with a space or hold a line break",
        f"{where}: protocol_version must be one of mqttv31, mqttv311, mqttv50",
        f"{where}.extra: each entry must be one line",
        "mosquitto_bridges[bare]: addresses must list the remote broker as host[:port]",
        "mosquitto_bridges[bare]: topics must list at least one {pattern}",
    ]
    assert not [problem for problem in problems if PASSWORD.strip() in problem]


def test_two_bridges_of_one_name_are_refused() -> None:
    assert mosquitto_problems(settings(BRIDGE, BRIDGE)) == [
        "mosquitto_bridges: the name central is used by more than one bridge"
    ]


def test_the_bridges_folder_may_not_be_or_hold_a_folder_or_file_of_the_brokers_own() -> None:
    for folder in ("/etc/mosquitto", "/etc/mosquitto/", "/etc"):
        assert mosquitto_problems(settings(mosquitto_bridge_dir=folder)) == [
            f"mosquitto_bridge_dir ({folder.rstrip('/') or '/'}) must be a folder of its own: the role removes what"
            " else it holds, and it holds mosquitto_config_dir (/etc/mosquitto)"
        ]
    own = {"mosquitto_persistence_location": "/var/lib/mosquitto", "mosquitto_tls_dir": "/etc/mosquitto/tls"}
    assert mosquitto_problems(settings(mosquitto_bridge_dir="/var/lib/mosquitto", **own)) == [
        "mosquitto_bridge_dir (/var/lib/mosquitto) must be a folder of its own: the role removes what else it holds,"
        " and it holds mosquitto_persistence_location (/var/lib/mosquitto)"
    ]
    assert mosquitto_problems(settings(mosquitto_bridge_dir="/etc/mosquitto/tls", **own)) == [
        "mosquitto_bridge_dir (/etc/mosquitto/tls) must be a folder of its own: the role removes what else it holds,"
        " and it holds mosquitto_tls_dir (/etc/mosquitto/tls)"
    ]
    assert mosquitto_problems(settings(mosquitto_bridge_dir="/etc/mosquitto/bridges", **own)) == []
    assert mosquitto_problems(settings(mosquitto_bridge_dir="bridges")) == [
        "mosquitto_bridge_dir must be an absolute path (got 'bridges')"
    ]


def test_on_kubernetes_a_bridge_to_a_host_name_needs_an_egress_rule() -> None:
    named = BRIDGE | {"addresses": ["mqtt.example.net:8883"]}
    assert mosquitto_problems(settings(named)) == []
    assert mosquitto_problems(settings(named, mosquitto_platform="kubernetes")) == [
        "mosquitto_bridges[central]: on Kubernetes the namespace denies the broker's egress, and only an IP address"
        " is allowed by itself: add a rule for mqtt.example.net to mosquitto_kubernetes_extra_egress"
    ]
    rule = {"to": [{"ipBlock": {"cidr": "198.51.100.0/28"}}], "ports": [{"protocol": "TCP", "port": 8883}]}
    assert (
        mosquitto_problems(settings(named, mosquitto_platform="kubernetes", mosquitto_kubernetes_extra_egress=[rule]))
        == []
    )


def test_on_kubernetes_a_credential_in_mosquitto_conf_is_refused_as_it_would_land_in_a_config_map() -> None:
    lines = ["connection central", "address 192.0.2.10", f"remote_password {PASSWORD}"]
    listener = {"port": 1883, "extra": ["bridge_psk 0123abcd"]}
    on_host = settings(mosquitto_config_extra=lines, mosquitto_listeners=[listener])
    assert mosquitto_problems(on_host) == []
    problems = mosquitto_problems(on_host | {"mosquitto_platform": "kubernetes"})
    suffix = (
        "on Kubernetes mosquitto.conf is the ConfigMap mosquitto-config, readable by whoever reads ConfigMaps;"
        " declare the bridge with its {} in mosquitto_bridges, whose file is a key of the Secret mosquitto"
    )
    assert problems == [
        "mosquitto_config_extra: " + suffix.format("remote_password"),
        "mosquitto_listeners: the listener on port 1883, extra: " + suffix.format("bridge_psk"),
    ]
    assert not [problem for problem in problems if PASSWORD in problem]


def test_an_address_without_a_port_takes_mqtts_default() -> None:
    assert bridge_address("192.0.2.10") == ("192.0.2.10", 1883)
    assert bridge_address("broker.example.net:8883") == ("broker.example.net", 8883)
    assert bridge_address("broker:http") == ("broker", None)


CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIGH vaulted\n-----END PRIVATE KEY-----\n"


def test_each_bridge_gets_its_own_ca_certificate_and_key_files() -> None:
    bridges = [BRIDGE | {"tls_ca": CA, "tls_cert": CERT, "tls_key": KEY}, BRIDGE | {"name": "plain"}]
    assert mosquitto_bridge_tls_path("central", "/etc/mosquitto/bridges/", "tls_ca") == (
        "/etc/mosquitto/bridges/central.ca.crt"
    )
    assert mosquitto_bridge_tls_files(bridges, "/etc/mosquitto/bridges") == {
        "/etc/mosquitto/bridges/central.ca.crt": CA.strip() + "\n",
        "/etc/mosquitto/bridges/central.crt": CERT,
        "/etc/mosquitto/bridges/central.key": KEY,
    }
    assert mosquitto_bridge_tls_files([BRIDGE | {"tls_ca": CA}], "/b") == {"/b/central.ca.crt": CA.strip() + "\n"}


def test_a_client_certificate_with_its_key_and_the_remotes_ca_passes_in_any_key_form() -> None:
    for key in (KEY, KEY.replace("PRIVATE", "EC PRIVATE"), KEY.replace("PRIVATE", "RSA PRIVATE")):
        assert mosquitto_problems(settings(BRIDGE | {"tls_ca": CA, "tls_cert": CERT, "tls_key": key})) == []


def test_a_client_certificate_without_its_key_or_a_ca_or_as_a_path_is_refused_without_showing_the_key() -> None:
    where = "mosquitto_bridges[central]"
    assert mosquitto_problems(settings(BRIDGE | {"tls_ca": CA, "tls_cert": CERT})) == [
        f"{where}: tls_cert and tls_key (the bridge's client certificate) go together"
    ]
    assert mosquitto_problems(settings(BRIDGE | {"tls_cert": CERT, "tls_key": KEY})) == [
        f"{where}: a client certificate needs tls_ca, the CA of the remote broker's certificate"
    ]
    problems = mosquitto_problems(
        settings(BRIDGE | {"tls_ca": "/etc/ssl/central-ca.crt", "tls_cert": CERT, "tls_key": "MIGH vaulted"})
    )
    assert problems == [
        f"{where}: tls_ca must be PEM text (-----BEGIN CERTIFICATE-----), not a path",
        f"{where}: tls_key must be PEM text (-----BEGIN PRIVATE KEY-----), not a path",
    ]
    encrypted = KEY.replace("PRIVATE", "ENCRYPTED PRIVATE")
    problems = mosquitto_problems(settings(BRIDGE | {"tls_ca": CA, "tls_cert": CERT, "tls_key": encrypted}))
    assert problems == [f"{where}: tls_key is encrypted, and the broker cannot ask for its passphrase"]
    assert not [problem for problem in problems if "vaulted" in problem]


def test_the_egress_allows_each_ip_address_on_its_port_once_and_leaves_host_names_to_the_user() -> None:
    bridges = [BRIDGE, BRIDGE | {"name": "again", "addresses": ["192.0.2.11:1883", "mqtt.example.net"]}]
    assert mosquitto_bridge_egress(bridges) == [
        {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"protocol": "TCP", "port": 8883}]},
        {"to": [{"ipBlock": {"cidr": "192.0.2.11/32"}}], "ports": [{"protocol": "TCP", "port": 1883}]},
    ]


def test_lines_given_as_one_string_are_refused_rather_than_written_a_character_a_line() -> None:
    assert mosquitto_problems(settings(BRIDGE | {"extra": "keepalive_interval 30"})) == [
        "mosquitto_bridges[central].extra must be a list of mosquitto.conf lines"
    ]
    assert mosquitto_problems(settings(mosquitto_config_extra="remote_password x")) == [
        "mosquitto_config_extra must be a list of mosquitto.conf lines"
    ]


def test_a_numeric_login_from_unquoted_yaml_is_a_login() -> None:
    assert mosquitto_problems(settings(BRIDGE | {"remote_username": 4711, "remote_password": 12345678})) == []
