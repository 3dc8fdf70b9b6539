"""Placing cached files into a bundle: atomic, and safe when two builds place the same file at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sensorstack.bundle.cache import place


def test_a_placed_file_has_the_cached_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    source = tmp_path / "cache/image.oci.tar"
    source.parent.mkdir()
    source.write_bytes(b"layers")
    target = tmp_path / "bundle/images/node.oci.tar"

    assert place(source, target) == target
    assert target.read_bytes() == b"layers"
    assert sorted(path.name for path in target.parent.iterdir()) == ["node.oci.tar"]


def test_builds_placing_the_same_file_at_once_neither_fail_nor_leave_temporaries(tmp_path: Path) -> None:
    """Two make targets that both set up the bundle used to collide on one temporary name (SameFileError)."""
    source = tmp_path / "cache/image.oci.tar"
    source.parent.mkdir()
    source.write_bytes(b"layers" * 1000)
    target = tmp_path / "bundle/images/node.oci.tar"

    with ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(pool.map(lambda _: place(source, target), range(64)))

    assert placed == [target] * 64
    assert target.read_bytes() == source.read_bytes()
    assert sorted(path.name for path in target.parent.iterdir()) == ["node.oci.tar"]
