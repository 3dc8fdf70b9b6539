"""The repo source end to end, against a signed stand-in of Docker's apt repository served inside the lab host.

Docker's repository cannot be reached from the lab, so the test builds one of the same shape: packages named and
versioned as Docker's (containerd.io 1.7.28-1~debian.12~bookworm, docker-ce 5:28.5.2-1~debian.12~bookworm), with
a newer and an older version next to the pinned ones so that the pins have to choose, a Release file signed with a
throwaway key, and that key, armored, at <repository>/gpg. The stand-in containerd.io depends on Debian's
containerd; the stand-in docker-ce and docker-ce-cli carry the files of Debian's docker.io. The docker role runs
unchanged, pointed at the stand-in only through docker_repo_url and docker_repo_key_checksum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorstack.lab.containers import LAB_CONNECTION

from .conftest import PlaybookRun, run_in_container, run_playbook, write_inventory

PORT = 8765
# Builds and serves the repository; prints the key's SHA-256. Runs inside the lab host.
BUILD_REPOSITORY = r"""
set -euo pipefail
. /etc/os-release
suffix="~${ID}.${VERSION_ID}~${VERSION_CODENAME}"
repo=/srv/docker-stand-in
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apt-utils gnupg >/dev/null
mkdir -p "$repo/pool" "$repo/dists/$VERSION_CODENAME/stable/binary-amd64"
# Docker's packages are built from the same sources as Debian's docker.io, which conflicts with them: the
# stand-ins carry docker.io's files, split as Docker splits them (the client in docker-ce-cli).
work=$(mktemp -d)
cd "$work"
apt-get download docker.io >/dev/null 2>&1
dpkg-deb -x docker.io_*.deb engine
engine_depends=$(dpkg-deb -f docker.io_*.deb Depends)
mkdir -p cli/usr/bin
mv engine/usr/bin/docker cli/usr/bin/docker
package() {  # name version depends [files] [postinst]
  local root; root=$(mktemp -d)
  if [ -n "${4:-}" ]; then cp -a "$4/." "$root/"; fi
  mkdir -p "$root/DEBIAN"
  printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: sensorstack tests <tests@example.org>\n' \
    "$1" "$2" > "$root/DEBIAN/control"
  if [ -n "$3" ]; then printf 'Depends: %s\n' "$3" >> "$root/DEBIAN/control"; fi
  printf 'Description: stand-in for the package of Docker%ss repository\n' "'" >> "$root/DEBIAN/control"
  if [ -n "${5:-}" ]; then
    printf '#!/bin/sh\nset -e\n%s\n' "$5" > "$root/DEBIAN/postinst"
    chmod 755 "$root/DEBIAN/postinst"
  fi
  dpkg-deb -Znone --root-owner-group --build "$root" "$repo/pool/$1_${2/:/%3a}_amd64.deb" >/dev/null
  rm -rf "$root"
}
for version in 1.7.27 1.7.28 1.7.29; do package containerd.io "$version-1$suffix" containerd; done
for version in 28.5.2 28.5.3; do
  package docker-ce-cli "5:$version-1$suffix" "" cli
  package docker-ce "5:$version-1$suffix" "$engine_depends, containerd.io, docker-ce-cli" engine \
    'getent group docker >/dev/null || addgroup --system docker'
done
cd "$repo"
rm -rf "$work"
apt-ftparchive packages pool > "dists/$VERSION_CODENAME/stable/binary-amd64/Packages"
apt-ftparchive -o "APT::FTPArchive::Release::Suite=$VERSION_CODENAME" \
  -o "APT::FTPArchive::Release::Codename=$VERSION_CODENAME" -o APT::FTPArchive::Release::Components=stable \
  -o APT::FTPArchive::Release::Architectures=amd64 release "dists/$VERSION_CODENAME" > /tmp/Release
mv /tmp/Release "dists/$VERSION_CODENAME/Release"
export GNUPGHOME; GNUPGHOME=$(mktemp -d)
gpg --batch --quiet --passphrase '' --quick-gen-key 'sensorstack stand-in <tests@example.org>' ed25519 sign never
gpg --batch --quiet --armor --export > gpg
gpg --batch --quiet --yes --clearsign -o "dists/$VERSION_CODENAME/InRelease" "dists/$VERSION_CODENAME/Release"
systemd-run --quiet --unit=docker-stand-in-repository --working-directory="$repo" \
  python3 -m http.server PORT --bind 127.0.0.1
sha256sum gpg | cut -d' ' -f1
""".replace("PORT", str(PORT))


@pytest.fixture(scope="module")
def stand_in(lab_host_factory) -> dict[str, str]:
    container = lab_host_factory("docker-repo-source", "debian12")
    checksum = run_in_container(container, BUILD_REPOSITORY, shell="bash").splitlines()[-1]
    # An older setup's definition of the same repository, with another key: apt refuses the pair.
    run_in_container(
        container,
        "echo 'deb [signed-by=/usr/share/keyrings/old-docker.gpg] http://127.0.0.1:8765 bookworm stable'"
        " > /etc/apt/sources.list.d/docker.list",
    )
    return {"container": container, "checksum": f"sha256:{checksum}"}


def apply_docker_role(stand_in: dict[str, str], directory: Path, **variables: Any) -> PlaybookRun:
    playbook = directory / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Apply the docker role", "hosts": "all", "roles": ["docker"]}]))
    inventory = {
        "all": {
            "hosts": {"repo-host": {"ansible_host": stand_in["container"]}},
            "vars": {
                "ansible_connection": LAB_CONNECTION,
                "ansible_python_interpreter": "/usr/bin/python3",
                "docker_install_source": "repo",
                "docker_repo_url": f"http://127.0.0.1:{PORT}",
                "docker_repo_key_checksum": stand_in["checksum"],
                # The lab host's root is an overlay: keep Docker's data on a tmpfs (no image is ever stored).
                "docker_data_root": "/run/docker-data",
                **variables,
            },
        }
    }
    return run_playbook(str(playbook), write_inventory(directory, inventory))


def package_versions(container: str) -> dict[str, str]:
    output = run_in_container(
        container, "dpkg-query -W -f '${Package} ${Version}\\n' containerd.io docker-ce docker-ce-cli || true"
    )
    return dict(line.split(" ", 1) for line in output.splitlines() if " " in line and not line.endswith(" "))


def test_a_key_that_does_not_match_its_checksum_is_refused(stand_in: dict[str, str], tmp_path: Path) -> None:
    run = apply_docker_role(stand_in, tmp_path, docker_repo_key_checksum="sha256:" + "0" * 64)
    assert run.returncode != 0
    assert "checksum" in run.output.lower(), run.output
    assert package_versions(stand_in["container"]) == {}
    run_in_container(stand_in["container"], "test ! -e /etc/apt/sources.list.d/docker.sources")


def test_the_repo_source_installs_the_pinned_versions_and_holds_them(stand_in: dict[str, str], tmp_path: Path) -> None:
    run = apply_docker_role(stand_in, tmp_path)
    assert run.returncode == 0, run.output
    container = stand_in["container"]
    assert package_versions(container) == {
        "containerd.io": "1.7.28-1~debian.12~bookworm",
        "docker-ce": "5:28.5.2-1~debian.12~bookworm",
        "docker-ce-cli": "5:28.5.2-1~debian.12~bookworm",
    }
    assert set(run_in_container(container, "apt-mark showhold").split()) == {
        "containerd.io",
        "docker-ce",
        "docker-ce-cli",
    }


def test_the_repository_is_signed_by_its_own_keyring_and_replaces_older_definitions(stand_in: dict[str, str]) -> None:
    container = stand_in["container"]
    sources = run_in_container(container, "cat /etc/apt/sources.list.d/docker.sources")
    assert [line for line in sources.splitlines() if not line.startswith("#")] == [
        "Types: deb",
        f"URIs: http://127.0.0.1:{PORT}",
        "Suites: bookworm",
        "Components: stable",
        "Architectures: amd64",
        "Signed-By: /etc/apt/keyrings/docker.asc",
    ]
    assert (
        run_in_container(container, "cmp /etc/apt/keyrings/docker.asc /srv/docker-stand-in/gpg && echo same") == "same"
    )
    run_in_container(container, "test ! -e /etc/apt/sources.list.d/docker.list")
    # Trusted for this repository only: nothing joins apt's global keyrings (what apt-key did).
    run_in_container(container, "test ! -e /etc/apt/trusted.gpg && ! ls /etc/apt/trusted.gpg.d | grep -qi docker")


def test_the_daemons_run_and_a_second_run_changes_nothing(stand_in: dict[str, str], tmp_path: Path) -> None:
    container = stand_in["container"]
    assert run_in_container(container, "systemctl is-active docker containerd").split() == ["active", "active"]
    assert run_in_container(container, "docker info --format '{{.CgroupDriver}}'") == "systemd"
    run = apply_docker_role(stand_in, tmp_path)
    assert run.returncode == 0, run.output
    assert run.recap()["repo-host"]["changed"] == 0, run.output
