#!/bin/sh
# sensorstack lab stand-in for grafana/grafana's /run.sh: serves the project's Grafana API double, NOT Grafana.
# The launcher reads what Grafana reads (GF_PATHS_*, grafana.ini, GF_<SECTION>_<KEY>, GF_*__FILE, provisioning).
set -e
export HOME="${GF_PATHS_HOME:-/usr/share/grafana}"
exec python3 /usr/lib/sensorstack/grafana_standin.py "$@"
