#!/bin/sh
# sensorstack lab stand-in for eclipse-mosquitto's entrypoint. Started as root, it hands /mosquitto (config, data,
# log) to the mosquitto user (1883) and runs the command; mosquitto then drops to that user by itself. Started as
# any other user, it only runs the command.
set -e

if [ "$(id -u)" = 0 ] && [ -d /mosquitto ]; then
    # A read-only mount (a ConfigMap) cannot change owner: not an error.
    chown -R mosquitto:mosquitto /mosquitto 2>/dev/null || true
fi

exec "$@"
