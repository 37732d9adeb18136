#!/usr/bin/env bash
# Create or refresh .venv in the checkout and install costwarden (editable) with its test tools.
#
# Idempotent and fast on re-runs: the install is skipped while a stamp in .venv matches
# pyproject.toml and the interpreter. `--force` reinstalls anyway.
#
# Usage: scripts/setup.sh [--force]
#   PYTHON=/path/to/python3.12 scripts/setup.sh   # pick the interpreter (default: newest >= 3.11)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

STAMP_FILE="$VENV_DIR/.costwarden-install-stamp"
INSTALL_TARGET=".[test]"
MIN_PYTHON_MINOR=11 # pyproject: requires-python = ">=3.11"

python_is_supported() {
    "$1" -c "import sys; sys.exit(sys.version_info < (3, $MIN_PYTHON_MINOR))" >/dev/null 2>&1
}

# The newest supported interpreter on PATH, unless $PYTHON names one.
find_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        python_is_supported "$PYTHON" || die "PYTHON=$PYTHON is not Python >= 3.$MIN_PYTHON_MINOR"
        printf '%s\n' "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_is_supported "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    die "no Python >= 3.$MIN_PYTHON_MINOR found on PATH (set PYTHON=/path/to/python3.X)"
}

# Debian splits venv/ensurepip out of the system Python into python3-venv.
create_venv() {
    local python="$1"
    info "Creating $VENV_DIR with $("$python" --version 2>&1) ($python)"
    if "$python" -m venv "$VENV_DIR"; then
        return
    fi
    rm -rf "$VENV_DIR"
    if [[ "$python" == /usr/bin/* ]] && can_apt_install; then
        apt_install python3-venv
        "$python" -m venv "$VENV_DIR" && return
        rm -rf "$VENV_DIR"
    fi
    die "'$python -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"
}

# Why the existing .venv cannot be reused, or nothing when it can. Rebuilt: a venv whose
# interpreter no longer runs (its base Python was removed or upgraded), and one moved or
# copied from another checkout (venvs are not relocatable: its launchers start the old path).
venv_problem() {
    if [[ ! -x "$VENV_PYTHON" ]]; then
        echo "it has no runnable bin/python"
    elif ! python_is_supported "$VENV_PYTHON"; then
        echo "its Python does not run or is older than 3.$MIN_PYTHON_MINOR"
    elif ! grep -qF "$VENV_DIR/bin/python" "$VENV_DIR/bin/pip" 2>/dev/null; then
        echo "it was made for another path (moved or copied)"
    fi
}

# Only a directory that is a virtualenv is ever deleted: never a user's folder of that name.
remove_broken_venv() {
    [[ -f "$VENV_DIR/pyvenv.cfg" ]] ||
        die "$VENV_DIR exists but is not a virtualenv (no pyvenv.cfg); move it away and re-run"
    info "Rebuilding $VENV_DIR: $1"
    rm -rf "$VENV_DIR"
}

# What the installed environment depends on: the project metadata and the exact interpreter.
current_stamp() {
    local pyproject_hash
    pyproject_hash="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"
    printf '%s %s %s\n' "$pyproject_hash" "$INSTALL_TARGET" "$("$VENV_PYTHON" -VV | tr -s ' \n' ' ')"
}

install_project() {
    info "Installing costwarden (editable) with '$INSTALL_TARGET' extras"
    rm -f "$STAMP_FILE" # a failed install must not leave a stamp that says it succeeded
    (cd "$REPO_ROOT" && "$VENV_PYTHON" -m pip install --disable-pip-version-check \
        --progress-bar off --quiet --editable "$INSTALL_TARGET")
    current_stamp >"$STAMP_FILE"
}

main() {
    local force=false
    case "${1:-}" in
        "") ;;
        --force) force=true ;;
        *) die "usage: scripts/setup.sh [--force]" ;;
    esac

    if [[ -e "$VENV_DIR" ]]; then
        local problem
        problem="$(venv_problem)"
        [[ -z "$problem" ]] || remove_broken_venv "$problem"
    fi
    if [[ ! -e "$VENV_DIR" ]]; then
        create_venv "$(find_python)"
        force=true
    fi
    if [[ "$force" == false && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$(current_stamp)" ]]; then
        info ".venv is up to date ($("$VENV_PYTHON" --version)); nothing to install"
        return
    fi
    install_project
    info ".venv ready: $("$VENV_PYTHON" --version), costwarden at $VENV_DIR/bin/costwarden"
}

main "$@"
