"""ip_pool_differences / ip_pool_refused_changes: what the calico role compares before and after it applies."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.calico_pool import (
    ip_pool_differences,
    ip_pool_fields,
    ip_pool_refused_changes,
)

# As the role's calico_pool_wanted renders it (strings and numbers as Jinja gives them).
WANTED = {"cidr": "10.244.0.0/16", "blockSize": "26", "vxlanMode": "Always", "ipipMode": "Never", "natOutgoing": True}
# As the API returns the pool calico-node created: ipipMode Never left out as the zero value.
CREATED = {
    "cidr": "10.244.0.0/16",
    "blockSize": 26,
    "vxlanMode": "Always",
    "natOutgoing": True,
    "nodeSelector": "all()",
}


def test_the_pool_calico_node_created_from_the_settings_has_no_difference() -> None:
    assert ip_pool_differences(CREATED, WANTED) == []


def test_a_field_the_api_leaves_out_reads_as_its_zero_value() -> None:
    assert ip_pool_differences({**CREATED, "natOutgoing": False}, {**WANTED, "natOutgoing": "False"}) == []
    without_nat = {key: value for key, value in CREATED.items() if key != "natOutgoing"}
    assert ip_pool_differences(without_nat, WANTED) == ["natOutgoing"]


def test_each_difference_is_named_once_in_a_stable_order() -> None:
    running = {**CREATED, "cidr": "192.168.0.0/16", "blockSize": 24, "vxlanMode": "CrossSubnet"}
    assert ip_pool_differences(running, WANTED) == ["cidr", "blockSize", "vxlanMode"]


def test_no_pool_yet_differs_in_every_set_field() -> None:
    # The settings' ipipMode Never and blockSize 26 are the API's zero values already.
    assert ip_pool_differences(None, WANTED) == ["cidr", "vxlanMode", "natOutgoing"]


def test_an_unknown_field_is_a_programming_error() -> None:
    with pytest.raises(AnsibleFilterError, match="unknown IPPool fields"):
        ip_pool_differences(CREATED, {**WANTED, "encapsulation": "VXLAN"})


@pytest.mark.parametrize(
    ("differences", "allowed", "refused"),
    [
        (["vxlanMode"], False, ["vxlanMode"]),
        (["vxlanMode", "ipipMode"], True, []),
        (["natOutgoing"], False, []),
        (["cidr", "vxlanMode"], True, ["cidr"]),
        (["blockSize", "natOutgoing", "vxlanMode"], False, ["blockSize", "vxlanMode"]),
    ],
)
def test_the_cidr_and_block_size_are_never_changed_in_place_and_the_encapsulation_only_when_allowed(
    differences: list[str], allowed: bool, refused: list[str]
) -> None:
    assert ip_pool_refused_changes(differences, allowed) == refused


def test_the_fields_of_a_spec_fill_in_what_the_api_leaves_out() -> None:
    assert ip_pool_fields({"cidr": "10.244.0.0/16", "vxlanMode": "Always"}) == {
        "cidr": "10.244.0.0/16",
        "blockSize": 26,
        "vxlanMode": "Always",
        "ipipMode": "Never",
        "natOutgoing": False,
    }
