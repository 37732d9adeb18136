"""The dashboard in a real headless Chromium against a real gateway on a seeded SQLite ledger:
log in through the form, read the numbers off the pages, check them with SQL on the ledger file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from costwarden.config import settings_from_dict
from costwarden.ledger.sqlite import SqliteStore
from tests.dashboard.browser import chromium, require_browser
from tests.dashboard.seed import HOSTILE_TEAM, seed, seed_records
from tests.gateway.conftest import ADMIN_KEY, StartGateway

_WAIT_S = 15


def _ledger_rows(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _window(driver: webdriver.Chrome, days: int) -> tuple[str, str]:
    """The page's window, from its as-of moment: up to the end of that hour, ``days`` back."""
    as_of = datetime.fromisoformat(
        driver.find_element(By.ID, "as-of").get_attribute("data-as-of") or ""
    )
    until = as_of.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return _text(until - timedelta(days=days)), _text(until)


def _cost_by(db: Path, column: str, since: str, until: str) -> dict[object, Decimal]:
    sums: dict[object, Decimal] = defaultdict(Decimal)
    rows = _ledger_rows(
        db,
        f"SELECT {column}, cost FROM usage_records "  # noqa: S608 - a constant column name
        "WHERE created_at >= ? AND created_at < ? AND cost IS NOT NULL",
        since, until,
    )
    for key, cost in rows:
        sums[key] += Decimal(str(cost))
    return dict(sums)


def _wait_for(driver: webdriver.Chrome, element_id: str) -> None:
    WebDriverWait(driver, _WAIT_S).until(lambda d: d.find_elements(By.ID, element_id))


def _log_in(driver: webdriver.Chrome, url: str) -> None:
    driver.get(f"{url}/dashboard?range=7d")
    assert "/dashboard/login" in driver.current_url  # sent to the form, no session yet
    driver.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    driver.find_element(By.ID, "login").click()
    _wait_for(driver, "total-cost")


def _check_overview(driver: webdriver.Chrome, db: Path) -> None:
    since, until = _window(driver, 7)
    spent = _cost_by(db, "'all'", since, until).get("all", Decimal(0))
    ((count,),) = _ledger_rows(
        db, "SELECT COUNT(*) FROM usage_records WHERE created_at >= ? AND created_at < ?",
        since, until,
    )
    total = driver.find_element(By.ID, "total-cost")
    assert Decimal(total.get_attribute("data-usd") or "") == spent
    assert total.text == f"${spent:,.2f}"
    requests = driver.find_element(By.ID, "total-requests")
    assert int(requests.get_attribute("data-count") or "") == count
    assert requests.text == f"{count:,}"


def _check_teams(driver: webdriver.Chrome, url: str, db: Path) -> None:
    driver.get(f"{url}/dashboard/breakdown/team?range=7d")
    _wait_for(driver, "breakdown")
    expected = _cost_by(db, "team", *_window(driver, 7))
    shown = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr"):
        tds = row.find_elements(By.TAG_NAME, "td")
        assert tds[0].text == row.get_attribute("data-value")  # hostile names show as text
        shown[tds[0].text] = Decimal(tds[4].get_attribute("data-usd") or "")
        assert tds[4].text == f"${shown[tds[0].text]:,.2f}"
    assert shown == expected
    assert HOSTILE_TEAM in shown


def _check_drill_down(driver: webdriver.Chrome, db: Path) -> str:
    driver.find_element(By.CSS_SELECTOR, "#breakdown tr[data-value='ml'] a").click()
    _wait_for(driver, "requests")
    since, until = _window(driver, 7)
    expected = [r[0] for r in _ledger_rows(
        db, "SELECT request_id FROM usage_records WHERE team = 'ml' AND created_at >= ? "
        "AND created_at < ? ORDER BY created_at DESC LIMIT 50", since, until,
    )]
    rows = driver.find_elements(By.CSS_SELECTOR, "#requests tbody tr")
    assert [r.get_attribute("data-request") for r in rows] == expected
    spent = _cost_by(db, "team", since, until)["ml"]
    assert Decimal(driver.find_element(By.ID, "total-cost").get_attribute("data-usd") or "") == (
        spent
    )
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    _wait_for(driver, "record")
    assert driver.find_element(By.ID, "record").get_attribute("data-request") == expected[0]
    return expected[0]


def _check_budgets(driver: webdriver.Chrome, url: str, db: Path) -> None:
    driver.get(f"{url}/dashboard/budgets")
    _wait_for(driver, "forecast-0")
    as_of = datetime.fromisoformat(
        driver.find_element(By.ID, "as-of").get_attribute("data-as-of") or ""
    )
    month_start = as_of.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = _cost_by(db, "'all'", _text(month_start), _text(as_of + timedelta(hours=1)))
    cell = driver.find_element(By.CSS_SELECTOR, "#forecast-0 tbody tr td[data-spent]")
    assert Decimal(cell.get_attribute("data-spent") or "") == spent.get("all", Decimal(0))
    assert driver.find_elements(By.CSS_SELECTOR, "#budget-0 svg.chart")  # the burn-down


def _browse(url: str, db: Path, profile: Path, screenshot: Path) -> None:
    driver = chromium(profile)
    try:
        _log_in(driver, url)
        _check_overview(driver, db)
        driver.save_screenshot(str(screenshot))
        _check_teams(driver, url, db)
        _check_drill_down(driver, db)
        _check_budgets(driver, url, db)
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - no injected script ever ran
    finally:
        driver.quit()


@pytest.mark.slow
async def test_the_dashboard_in_chromium_shows_the_ledgers_numbers(
    tmp_path: Path, start_gateway: StartGateway
) -> None:
    require_browser()
    db = tmp_path / "ledger.db"
    store = SqliteStore(db)
    await store.migrate()
    await seed(store, seed_records(datetime.now(UTC)))
    await store.close()
    settings = settings_from_dict({
        "gateway": {"key_cache_ttl_s": 0.0},
        "ledger": {"sqlite_path": str(db), "spool_dir": str(tmp_path / "spool")},
        "policy": {"budgets": [{"name": "company", "limit_usd": "100"}]},
    })
    gateway = await start_gateway(settings)
    screenshot = tmp_path / "dashboard.png"
    await asyncio.to_thread(_browse, gateway.url, db, tmp_path / "chromium", screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
