#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis servers the test suite needs are reachable.
#
# With the default addresses (PostgreSQL 127.0.0.1:5432 as user postgres, database `test`;
# Redis 127.0.0.1:6379) a server that does not answer is started, and, as root on Debian,
# installed first. When COSTWARDEN_TEST_PG_DSN / COSTWARDEN_TEST_REDIS_URL point elsewhere,
# those servers are only checked: this script never starts or installs anything for them.
# Running servers are never stopped or reconfigured.
#
# Usage: scripts/services.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

WAIT_FOR_START_S=30
PROBE="$SCRIPTS_DIR/check_services.py"
PROBE_MESSAGE="" # the last probe's explanation, shown when we give up
PROBE_READY=0
PROBE_UNREACHABLE=1

redact_url() {
    printf '%s\n' "$1" | sed -E 's#//([^:/@]*):[^@/]*@#//\1:***@#'
}

# probe postgres|redis ADDRESS [flags]: sets PROBE_MESSAGE, returns check_services.py's status.
probe() {
    local status=0
    PROBE_MESSAGE="$("$VENV_PYTHON" "$PROBE" "$@" 2>&1)" || status=$?
    return "$status"
}

# wait_until_ready postgres|redis ADDRESS [flags]: poll until ready; fail fast on a refusal.
wait_until_ready() {
    local attempt status
    for ((attempt = 0; attempt < WAIT_FOR_START_S; attempt++)); do
        status=0
        probe "$@" || status=$?
        if ((status != PROBE_UNREACHABLE)); then
            return "$status"
        fi
        sleep 1
    done
    return "$PROBE_UNREACHABLE"
}

newest_postgres_version() {
    find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
}

postgres_is_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 && [[ -n "$(newest_postgres_version)" ]]
}

# A cluster this script just installed only allows password logins over TCP; let the local
# postgres user in without one, as the test suite expects. Never done to an existing server.
trust_local_postgres_user() {
    local hba_file="/etc/postgresql/$1/main/pg_hba.conf"
    local rules_file
    rules_file="$(mktemp)"
    {
        echo "# Added by costwarden scripts/services.sh: a test-only server on loopback."
        echo "host all postgres 127.0.0.1/32 trust"
        echo "host all postgres ::1/128 trust"
        cat "$hba_file"
    } >"$rules_file"
    cat "$rules_file" >"$hba_file" # rewrite in place: keeps the file's owner and mode
    rm -f "$rules_file"
}

install_postgres() {
    can_apt_install || die "PostgreSQL is not installed, and installing it here needs root and apt-get;" \
        "install it (apt-get install postgresql) or set COSTWARDEN_TEST_PG_DSN to a server"
    apt_install postgresql
    local version
    version="$(newest_postgres_version)"
    [[ -n "$version" ]] || die "installed postgresql but found no cluster under /etc/postgresql"
    trust_local_postgres_user "$version"
    # The package may have started the cluster already; a reload picks up the new rules.
    if pg_ctlcluster --skip-systemctl-redirect "$version" main status >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    else
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
}

# start_postgres SHOWN_DSN: install (as root on Debian) or start the local cluster.
start_postgres() {
    if ! postgres_is_installed; then
        install_postgres
        return
    fi
    local version
    version="$(newest_postgres_version)"
    if pg_ctlcluster --skip-systemctl-redirect "$version" main status >/dev/null 2>&1; then
        die "PostgreSQL $version/main is running but does not answer at $1" \
            "(check its port and listen_addresses): $PROBE_MESSAGE"
    fi
    info "Starting PostgreSQL $version (cluster main)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        die "could not start PostgreSQL; as root run:" \
            "pg_ctlcluster --skip-systemctl-redirect $version main start"
}

ensure_postgres() {
    local dsn="$COSTWARDEN_TEST_PG_DSN"
    local shown
    shown="$(redact_url "$dsn")"
    local status=0
    probe postgres "$dsn" --create-database || status=$?
    if ((status == PROBE_UNREACHABLE)) && [[ "$dsn" == "$DEFAULT_TEST_PG_DSN" ]]; then
        info "PostgreSQL does not answer at $shown"
        start_postgres "$shown"
        status=0
        wait_until_ready postgres "$dsn" --create-database || status=$?
    fi
    ((status == PROBE_READY)) || die "PostgreSQL is not usable at $shown: $PROBE_MESSAGE"
    [[ -z "$PROBE_MESSAGE" ]] || info "$PROBE_MESSAGE"
    info "PostgreSQL ready at $shown"
}

start_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        can_apt_install || die "Redis is not installed, and installing it here needs root and apt-get;" \
            "install it (apt-get install redis-server) or set COSTWARDEN_TEST_REDIS_URL to a server"
        apt_install redis-server
        # The package may have started its own service already.
        probe redis "$DEFAULT_TEST_REDIS_URL" && return
    fi
    info "Starting redis-server on 127.0.0.1:6379 (no persistence)"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no ||
        die "could not start redis-server"
}

ensure_redis() {
    local url="$COSTWARDEN_TEST_REDIS_URL"
    local shown
    shown="$(redact_url "$url")"
    local status=0
    probe redis "$url" || status=$?
    if ((status == PROBE_UNREACHABLE)) && [[ "$url" == "$DEFAULT_TEST_REDIS_URL" ]]; then
        info "Redis does not answer at $shown"
        start_redis
        status=0
        wait_until_ready redis "$url" || status=$?
    fi
    ((status == PROBE_READY)) || die "Redis is not usable at $shown: $PROBE_MESSAGE"
    info "Redis ready at $shown"
}

main() {
    [[ $# == 0 ]] || die "usage: scripts/services.sh (takes no arguments)"
    # The probes use the project's own drivers (asyncpg, redis), so the venv comes first.
    [[ -x "$VENV_PYTHON" ]] || "$SCRIPTS_DIR/setup.sh"
    export_test_env
    ensure_postgres
    ensure_redis
}

main "$@"
