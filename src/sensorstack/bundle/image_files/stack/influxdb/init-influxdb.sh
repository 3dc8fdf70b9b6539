#!/bin/bash
# sensorstack lab stand-in for the influxdb:1.x image's first-start initialisation, driven by the same environment:
#   INFLUXDB_HTTP_AUTH_ENABLED (else auth-enabled = true in the config file) with INFLUXDB_ADMIN_USER and
#   INFLUXDB_ADMIN_PASSWORD: create that admin (a random password is printed when none is given);
#   INFLUXDB_DB: create that database; INFLUXDB_USER, INFLUXDB_WRITE_USER, INFLUXDB_READ_USER (each with _PASSWORD):
#   users with ALL, WRITE or READ on INFLUXDB_DB (they need the admin);
#   /docker-entrypoint-initdb.d: *.sh sourced (with $INFLUX_CMD), *.iql executed.
# It runs only while the meta directory (INFLUXDB_META_DIR, default /var/lib/influxdb/meta) does not exist, on a
# temporary influxd that listens on loopback only. Credentials reach the influx CLI through its environment
# (INFLUX_USERNAME, INFLUX_PASSWORD), not its command line.
set -e

config="${INFLUXDB_CONFIG_PATH:-/etc/influxdb/influxdb.conf}"
meta_dir="${INFLUXDB_META_DIR:-/var/lib/influxdb/meta}"
init_port=8086

auth_enabled() {
    if [ -n "${INFLUXDB_HTTP_AUTH_ENABLED:-}" ]; then
        [[ "${INFLUXDB_HTTP_AUTH_ENABLED,,}" == *true* ]]
    else
        grep -qiE '^[[:space:]]*auth-enabled[[:space:]]*=[[:space:]]*true' "$config" 2>/dev/null
    fi
}

random_password() {
    tr -dc '_A-Za-z0-9-' </dev/urandom | head -c 32
}

# InfluxQL literals: "identifier" and 'string', with their quote characters escaped.
identifier() {
    local value="${1//\\/\\\\}"
    printf '"%s"' "${value//\"/\\\"}"
}
string() {
    local value="${1//\\/\\\\}"
    printf "'%s'" "${value//\'/\\\'}"
}

initdb_files() {
    ls -A /docker-entrypoint-initdb.d 2>/dev/null
}

create_admin=""
if auth_enabled && [ -n "${INFLUXDB_ADMIN_USER:-}" ]; then
    create_admin=yes
fi

if [ -d "$meta_dir" ] || { [ -z "$create_admin" ] && [ -z "${INFLUXDB_DB:-}" ] && [ -z "$(initdb_files)" ]; }; then
    exit 0
fi

INFLUX_CMD="influx -host 127.0.0.1 -port $init_port -execute "
if [ -n "$create_admin" ]; then
    if [ -z "${INFLUXDB_ADMIN_PASSWORD:-}" ]; then
        INFLUXDB_ADMIN_PASSWORD="$(random_password)"
        echo "INFLUXDB_ADMIN_PASSWORD:$INFLUXDB_ADMIN_PASSWORD"
    fi
    first_query="CREATE USER $(identifier "$INFLUXDB_ADMIN_USER") WITH PASSWORD $(string "$INFLUXDB_ADMIN_PASSWORD") WITH ALL PRIVILEGES"
elif [ -n "${INFLUXDB_DB:-}" ]; then
    first_query="CREATE DATABASE $(identifier "$INFLUXDB_DB")"
else
    first_query="SHOW DATABASES"
fi

INFLUXDB_HTTP_BIND_ADDRESS="127.0.0.1:$init_port" INFLUXDB_HTTP_HTTPS_ENABLED=false influxd "$@" &
influxd_pid=$!

ready=""
for _ in $(seq 30); do
    if $INFLUX_CMD "$first_query" >/dev/null 2>&1; then
        ready=yes
        break
    fi
    echo "influxdb init process in progress..."
    sleep 1
done
if [ -z "$ready" ]; then
    echo "influxdb init process failed." >&2
    exit 1
fi

if [ -n "$create_admin" ]; then
    export INFLUX_USERNAME="$INFLUXDB_ADMIN_USER" INFLUX_PASSWORD="$INFLUXDB_ADMIN_PASSWORD"
    if [ -n "${INFLUXDB_DB:-}" ]; then
        $INFLUX_CMD "CREATE DATABASE $(identifier "$INFLUXDB_DB")"
    fi
    # user variable prefix, privilege on INFLUXDB_DB
    for role in "USER ALL" "WRITE_USER WRITE" "READ_USER READ"; do
        read -r prefix privilege <<<"$role"
        user_variable="INFLUXDB_$prefix"
        password_variable="INFLUXDB_${prefix}_PASSWORD"
        user="${!user_variable:-}"
        [ -n "$user" ] || continue
        password="${!password_variable:-}"
        if [ -z "$password" ]; then
            password="$(random_password)"
            echo "$password_variable:$password"
        fi
        $INFLUX_CMD "CREATE USER $(identifier "$user") WITH PASSWORD $(string "$password")"
        $INFLUX_CMD "REVOKE ALL PRIVILEGES FROM $(identifier "$user")"
        if [ -n "${INFLUXDB_DB:-}" ]; then
            $INFLUX_CMD "GRANT $privilege ON $(identifier "$INFLUXDB_DB") TO $(identifier "$user")"
        fi
    done
fi

for file in /docker-entrypoint-initdb.d/*; do
    [ -e "$file" ] || continue
    case "$file" in
        *.sh) echo "$0: running $file"; . "$file" ;;
        *.iql) echo "$0: running $file"; $INFLUX_CMD "$(cat "$file")"; echo ;;
        *) echo "$0: ignoring $file" ;;
    esac
done

if ! kill -s TERM "$influxd_pid" || ! wait "$influxd_pid"; then
    echo "influxdb init process failed (could not stop the temporary influxd)." >&2
    exit 1
fi
