"""Lab base images are tagged by their recipe, so a changed recipe means a new image and nothing else does."""

from __future__ import annotations

import dataclasses

import pytest

from sensorstack.lab.images import RECIPES, recipe_for


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
        ValueError, match=r"unknown lab image 'centos7' \(lab_image\); known images: debian12, debian13"
    ):
        recipe_for("centos7")
