#!/bin/bash
# sensorstack lab stand-in for the influxdb:1.x entrypoint: flags alone mean influxd's flags, and influxd is
# preceded by the first-start initialisation of /init-influxdb.sh. Any other command runs as given.
set -e

case "${1:-}" in
    -*) set -- influxd "$@" ;;
esac

if [ "${1:-}" = influxd ]; then
    /init-influxdb.sh "${@:2}"
fi

exec "$@"
