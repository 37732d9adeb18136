#!/usr/bin/env bash
# Set up .venv (fast when already done) and run the gateway: `costwarden serve` with the
# embedded default (one process, SQLite ledger, in-memory counters; no server needed).
#
# Usage: scripts/serve.sh [costwarden serve arguments...]
#   scripts/serve.sh --demo      # built-in simulated upstream, prints a demo key; no API key needed
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

"$SCRIPTS_DIR/setup.sh"
cd "$REPO_ROOT"
exec "$VENV_DIR/bin/costwarden" serve "$@"
