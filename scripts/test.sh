#!/usr/bin/env bash
# Set everything up and run the whole check: ruff, mypy (strict) and pytest.
#
# Creates/refreshes .venv, makes sure PostgreSQL and Redis are reachable (starting or
# installing them where it can; see scripts/services.sh), then runs every check even when an
# earlier one failed, so one run shows all problems. Exits non-zero if any check failed,
# including pytest collecting no tests at all.
#
# Usage: scripts/test.sh [pytest arguments...]     e.g. scripts/test.sh -x -k ledger
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

PYTEST_NO_TESTS_COLLECTED=5
LINT_PATHS=(src tests bench scripts)
FAILED_CHECKS=()

# run_check NAME COMMAND...: run a check, remember it if it failed, never stop the script.
run_check() {
    local name="$1"
    shift
    section "$name"
    local status=0
    "$@" || status=$?
    if ((status != 0)); then
        FAILED_CHECKS+=("$name (exit $status)")
    fi
    return 0
}

run_ruff() {
    local existing=() path
    for path in "${LINT_PATHS[@]}"; do
        [[ -e "$path" ]] && existing+=("$path")
    done
    "$VENV_DIR/bin/ruff" check "${existing[@]}"
}

run_pytest() {
    local status=0
    "$VENV_DIR/bin/python" -m pytest "$@" || status=$?
    if ((status == PYTEST_NO_TESTS_COLLECTED)); then
        printf 'error: pytest collected no tests; that is a failure here, not a pass\n' >&2
    fi
    return "$status"
}

main() {
    cd "$REPO_ROOT"
    section "Python environment (.venv)"
    "$SCRIPTS_DIR/setup.sh"
    section "Test services (PostgreSQL, Redis)"
    "$SCRIPTS_DIR/services.sh"
    section "Headless browser (Chromium)"
    "$SCRIPTS_DIR/browser.sh"
    export_test_env

    run_check "ruff check" run_ruff
    run_check "mypy (strict)" "$VENV_DIR/bin/mypy"
    run_check "pytest" run_pytest "$@"

    section "Summary"
    if ((${#FAILED_CHECKS[@]} > 0)); then
        printf 'FAILED: %s\n' "${FAILED_CHECKS[@]}"
        exit 1
    fi
    info "All checks passed: ruff, mypy, pytest"
}

main "$@"
