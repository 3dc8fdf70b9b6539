#!/bin/bash
# sensorstack lab stand-in for the telegraf image's entrypoint. Flags alone mean telegraf's flags. Started as root,
# telegraf gets the capabilities to ping and bind low ports and runs as the telegraf user (999) with that user's
# groups plus any the container was given (not root); started as any other user, the command runs as it is.
set -e

case "${1:-}" in
    -*) set -- telegraf "$@" ;;
esac

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

setcap cap_net_raw,cap_net_bind_service+ep /usr/bin/telegraf \
    || echo "entrypoint: could not give /usr/bin/telegraf cap_net_raw,cap_net_bind_service" >&2
HOME="$(getent passwd telegraf | cut -d: -f6)"
export HOME
groups="$({ id -Gn telegraf; id -Gn; } | tr ' ' '\n' | grep -vx root | sort -u | paste -sd, -)"
exec setpriv --reuid telegraf --regid telegraf --groups "$groups" "$@"
