#!/usr/bin/env bash
# Make sure the headless browser the dashboard's browser test drives is installed: Debian's
# chromium and its chromedriver (Selenium is pointed at /usr/bin/chromedriver and never downloads
# a driver). As root on Debian a missing browser is installed; anywhere else a missing browser
# is an error with what to do, never a silent skip.
#
# Usage: scripts/browser.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

browser_installed() {
    [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]
}

main() {
    [[ $# == 0 ]] || die "usage: scripts/browser.sh (takes no arguments)"
    if ! browser_installed; then
        can_apt_install || die "Chromium is not installed ($CHROMIUM, $CHROMEDRIVER), and" \
            "installing it here needs root and apt-get; install the Debian packages" \
            "chromium and chromium-driver"
        apt_install chromium chromium-driver
        browser_installed || die "installed chromium but $CHROMIUM or $CHROMEDRIVER is missing"
    fi
    info "Chromium ready: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
}

main "$@"
