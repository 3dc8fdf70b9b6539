"""A Debian package named grafana that installs the lab's Grafana stand-in as Grafana's own package lays it out.

Grafana is not packaged here and its licence keeps the project from building it, so the grafana role's systemd
platform is tested with this package in its place: the project's Grafana API double (tests/grafana_double), served
by the same launcher as the bundle's Grafana image (grafana_standin.py: grafana.ini with $__file, provisioning, the
database on /var/lib/grafana, ``grafana cli admin reset-admin-password``), under the paths, unit, account and
conffile of Grafana's .deb: /usr/sbin/grafana, grafana-server.service running as grafana, /etc/grafana/grafana.ini,
/var/lib/grafana and /var/log/grafana. Like Grafana's package, it does not start the service on installation.
"""

from __future__ import annotations

from pathlib import Path

from sensorstack.bundle import debs
from sensorstack.bundle.stack_images import GRAFANA_DOUBLE, STACK_FILES

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = "/usr/lib/sensorstack/grafana_standin.py"
UNIT = """[Unit]
Description=Grafana instance (sensorstack lab stand-in: the Grafana API double, not Grafana)
After=network-online.target

[Service]
User=grafana
Group=grafana
Type=simple
WorkingDirectory=/usr/share/grafana
ExecStart=/usr/sbin/grafana server --config=/etc/grafana/grafana.ini
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent group grafana >/dev/null || groupadd --system grafana
  getent passwd grafana >/dev/null || useradd --system --gid grafana --home-dir /usr/share/grafana \\
    --shell /usr/sbin/nologin grafana
  install -d -o grafana -g grafana -m 0755 /var/lib/grafana /var/log/grafana
  chown root:grafana /etc/grafana /etc/grafana/grafana.ini
  chmod 0640 /etc/grafana/grafana.ini
  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi
"""


def build_grafana_standin_deb(version: str, out_dir: Path) -> Path:
    """grafana_<version>_amd64.deb of the stand-in, in out_dir."""
    wrapper = f'#!/bin/sh\nexec python3 {LAUNCHER} "$@"\n'.encode()
    double = [
        debs.PackagedFile(f"/usr/lib/sensorstack/grafana_double/{path.name}", source=path)
        for path in sorted((ROOT / GRAFANA_DOUBLE).glob("*.py"))
    ]
    files = (
        debs.PackagedFile("/usr/sbin/grafana", 0o755, content=wrapper),
        debs.PackagedFile(LAUNCHER, source=STACK_FILES / "grafana/grafana_standin.py"),
        *double,
        debs.PackagedFile("/etc/grafana/grafana.ini", source=STACK_FILES / "grafana/grafana.ini"),
        debs.PackagedFile("/usr/lib/systemd/system/grafana-server.service", content=UNIT.encode()),
        # Grafana's home (its web assets and default configuration), where the unit starts and the CLI points.
        debs.PackagedFile("/usr/share/grafana/README", content=b"sensorstack lab stand-in for Grafana, not Grafana\n"),
    )
    spec = debs.PackageSpec(
        name="grafana",
        version=version,
        section="default",
        summary="sensorstack lab stand-in for Grafana: the project's Grafana API double, not Grafana",
        files=files,
        depends=("python3", "python3-yaml", "passwd"),
        conffiles=("/etc/grafana/grafana.ini",),
        maintainer_scripts={"postinst": POSTINST},
        maintainer="sensorstack developers <sensorstack@localhost>",
        homepage="",
    )
    return debs.build_deb(spec, out_dir)
