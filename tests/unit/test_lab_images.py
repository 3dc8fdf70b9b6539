"""Lab images are tagged by their recipe, so a changed recipe means a new image and nothing else does."""

from __future__ import annotations

import dataclasses

import pytest

from sensorstack.lab import images
from sensorstack.lab.images import RECIPES, NodeImageRecipe, node_dockerfile, recipe_for


def test_the_tag_is_stable_for_an_unchanged_recipe() -> None:
    recipe = RECIPES["debian12"]
    assert recipe.tag == dataclasses.replace(recipe).tag
    assert recipe.tag.startswith("sensorstack/lab:debian12-")


def test_any_change_to_the_recipe_changes_the_tag() -> None:
    recipe = RECIPES["debian12"]
    changed = [
        dataclasses.replace(recipe, suite="trixie"),
        dataclasses.replace(recipe, packages=(*recipe.packages, "vim")),
        dataclasses.replace(recipe, variant="buildd"),
    ]
    assert len({recipe.tag, *(other.tag for other in changed)}) == 4


def test_the_mirror_is_not_part_of_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = RECIPES["debian13"].tag
    monkeypatch.setenv("SENSORSTACK_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert RECIPES["debian13"].tag == before


def test_an_unknown_image_names_the_variable() -> None:
    with pytest.raises(
        ValueError, match=r"unknown lab image 'centos7' \(lab_image\); known images: debian12, debian13, debian13-node"
    ):
        recipe_for("centos7")


def test_the_node_image_is_debian13_plus_the_node_files() -> None:
    node = RECIPES["debian13-node"]
    assert isinstance(node, NodeImageRecipe) and node.base is RECIPES["debian13"]
    assert node.kubernetes_node and not RECIPES["debian13"].kubernetes_node
    assert node.tag.startswith("sensorstack/lab:debian13-node-")


def test_the_node_tag_follows_its_base_and_its_files(monkeypatch: pytest.MonkeyPatch) -> None:
    node = RECIPES["debian13-node"]
    assert isinstance(node, NodeImageRecipe)
    before = node.tag
    rebased = dataclasses.replace(node, base=dataclasses.replace(node.base, packages=("python3", "systemd"))).tag
    original = images._node_files()
    monkeypatch.setattr(images, "_node_files", lambda: original | {images.NODE_SCRIPT: "# changed\n"})
    assert len({before, rebased, node.tag}) == 3
    monkeypatch.undo()
    assert node.tag == before


def test_the_node_files_guard_the_runtime_and_the_kubelet() -> None:
    files = images._node_files()
    unit = files[f"/etc/systemd/system/{images.NODE_PREPARE_UNIT}"]
    assert f"ExecStart=/usr/bin/python3 {images.NODE_SCRIPT} prepare" in unit
    assert "Before=sysinit.target systemd-sysctl.service containerd.service kubelet.service" in unit
    for service in ("containerd", "kubelet"):
        drop_in = files[f"/etc/systemd/system/{service}.service.d/10-sensorstack-node.conf"]
        assert f"Requires={images.NODE_PREPARE_UNIT}" in drop_in and f"After={images.NODE_PREPARE_UNIT}" in drop_in
    assert files[images.NODE_SCRIPT].startswith('"""Make a lab container fit to run a kubelet')


def test_the_node_dockerfile_masks_module_loading_and_enables_the_preparation() -> None:
    node = RECIPES["debian13-node"]
    assert isinstance(node, NodeImageRecipe)
    dockerfile = node_dockerfile(node)
    assert dockerfile.startswith(f"FROM {RECIPES['debian13'].tag}\n")
    assert "ln -sf /dev/null /etc/systemd/system/systemd-modules-load.service" in dockerfile
    assert f"sysinit.target.wants/{images.NODE_PREPARE_UNIT}" in dockerfile
    assert f'CMD ["/usr/bin/python3", "{images.NODE_SCRIPT}", "boot"]' in dockerfile
    assert "STOPSIGNAL SIGRTMIN+3" in dockerfile
