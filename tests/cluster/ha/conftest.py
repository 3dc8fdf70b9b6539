"""The HA lane of the cluster tier: its own cluster, built by `site.yml` at the pinned release without the stack (the
upgrade and the stack are the other lane's story), one control plane and two workers first, then grown to three
control planes by `site.yml` (``three_control_planes``). Its tests stop, restore, reset and replace those control
planes, so they share it with no other test; `make cluster` runs them beside the upgraded cluster's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sensorstack.bundle.serve import BundleServer
from sensorstack.lab import containers

from ..conftest import Cluster, Node, built_cluster, node_container

# name -> fixed address of the HA cluster's nodes, on the lab subnet beside the upgraded cluster's (.53-.55) and the
# cluster benchmark's (.60-.65).
CONTROL_PLANE = ("cph-cp1", "10.213.0.66")
WORKERS = (("cph-worker1", "10.213.0.67"), ("cph-worker2", "10.213.0.68"))
# The two control planes three_control_planes joins, which test_reset.py resets one of.
EXTRA_CONTROL_PLANES = (("cph-cp2", "10.213.0.69"), ("cph-cp3", "10.213.0.70"))
CONTROL_PLANES = (CONTROL_PLANE, *EXTRA_CONTROL_PLANES)


@pytest.fixture(scope="session")
def cluster(mirror: BundleServer, host_sysctls_before: dict[str, str]) -> Iterator[Cluster]:
    """A control plane and two workers, built by site.yml at the pinned release; removed afterwards unless
    SENSORSTACK_KEEP_CLUSTER. Without the stack: its tests are the other lane's, and on a two-core machine its pods'
    load would slow both lanes."""
    with built_cluster("ha", mirror, (CONTROL_PLANE, *WORKERS), "--skip-tags", "stack,verify") as built:
        print(f"\nHA lane's cluster built by site.yml in {built.timings['first run']:.0f} s")
        yield built


@pytest.fixture(scope="session")
def three_control_planes(cluster: Cluster) -> list[Node]:
    """Two more control-plane nodes joined to the cluster by site.yml: 3 + 2 nodes from here on."""
    for name, address in EXTRA_CONTROL_PLANES:
        cluster.containers.append(node_container(name, address).container)
    cluster.set_inventory(CONTROL_PLANES, WORKERS)
    run = cluster.site("--skip-tags", "stack,verify")
    cluster.timings["control-plane joins"] = run.seconds
    print(f"\ntwo control-plane nodes joined by site.yml in {run.seconds:.0f} s")
    assert run.returncode == 0, run.tail()
    return [
        cluster.control_plane,
        *(Node(name, f"{containers.TEST_CONTAINER_PREFIX}{name}") for name, _ in EXTRA_CONTROL_PLANES),
    ]
