# Shared helpers for the scripts in this folder. Sourced, never run.
# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPTS_DIR/.." && pwd)"
VENV_DIR="$REPO_ROOT/.venv"
VENV_PYTHON="$VENV_DIR/bin/python"

# The servers the test suite talks to. Tests read these two variables; set them yourself to
# point the suite at other servers (the scripts then only check them, never start them).
DEFAULT_TEST_PG_DSN="postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL="redis://127.0.0.1:6379/0"

section() {
    printf '\n==== %s ====\n' "$*"
}

info() {
    printf '%s\n' "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

is_root() {
    [[ "$(id -u)" == 0 ]]
}

# apt-get is only used when we may change the machine: as root on a Debian-like system.
can_apt_install() {
    is_root && command -v apt-get >/dev/null 2>&1
}

# apt/dpkg progress goes to a log, shown only when the install fails.
apt_install() {
    local log
    log="$(mktemp -t costwarden-apt.XXXXXX)"
    info "Installing Debian packages: $* (log: $log)"
    # 'update' first: on a fresh machine the package lists are empty or stale.
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; } \
        >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get install $* failed (full log: $log)"
    fi
}

# Defaults for the test-server variables, exported so pytest and its fixtures see them.
export_test_env() {
    export COSTWARDEN_TEST_PG_DSN="${COSTWARDEN_TEST_PG_DSN:-$DEFAULT_TEST_PG_DSN}"
    export COSTWARDEN_TEST_REDIS_URL="${COSTWARDEN_TEST_REDIS_URL:-$DEFAULT_TEST_REDIS_URL}"
}
