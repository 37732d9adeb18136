"""Headless Chromium (the Debian ``chromium`` package) driven by Selenium, for the browser test
and the docs screenshot. Never Selenium Manager: the driver is the system's chromedriver, so
nothing is downloaded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1600",
)


def missing_browser() -> str | None:
    """Why no browser can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (run scripts/browser.sh, or apt-get install chromium "
            "chromium-driver)"
    return None


def require_browser() -> None:
    """Fail in CI (a missing browser is a broken setup there); skip, saying why, elsewhere."""
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test needs Chromium: {reason}", pytrace=False)
    pytest.skip(f"no headless Chromium: {reason} (CI unset, so skipped)")


def chromium(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
