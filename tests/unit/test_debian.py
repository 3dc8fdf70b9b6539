"""The Debian root file systems of the lab's images and the bundle's base: debootstrap checks what it downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorstack import debian


def test_debootstrap_refuses_a_release_it_cannot_verify() -> None:
    command = debian.debootstrap_command("trixie", Path("/tmp/rootfs"), ["systemd"], debian.DEFAULT_MIRROR, "minbase")
    # Without --force-check-gpg debootstrap only warns when it cannot check the Release file's signature.
    assert "--force-check-gpg" in command
    assert f"--keyring={debian.DEBIAN_ARCHIVE_KEYRING}" in command
    assert command[-3:] == ["trixie", "/tmp/rootfs", debian.DEFAULT_MIRROR]


def test_without_the_archive_keys_nothing_is_fetched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(debian, "DEBIAN_ARCHIVE_KEYRING", tmp_path / "absent.gpg")
    monkeypatch.setattr(debian.shutil, "which", lambda _name: "/usr/sbin/debootstrap")

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("debootstrap ran")

    monkeypatch.setattr(debian.subprocess, "run", never)
    with pytest.raises(RuntimeError, match="apt-get install debian-archive-keyring"):
        debian.debootstrap("trixie", tmp_path / "rootfs", ["systemd"], debian.DEFAULT_MIRROR)
