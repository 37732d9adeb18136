"""Screenshots of the dashboard on the benchmark ledger, for docs/dashboard.md.

    .venv/bin/python bench/dashboard_screenshot.py [--db /tmp/costwarden-dashboard-10m.db]
        [--records 10000000] [--out docs/img]

Serves the dashboard's ASGI handler with uvicorn on a free port, over the ledger
``bench_dashboard.py`` builds (same budgets, the clock at the ledger's end), logs in through
the form in headless Chromium and saves the overview and the budgets page as PNGs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn
from bench_dashboard import ADMIN_KEY, dashboard_on
from dashboard_ledger import ledger_end
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.dashboard.browser import chromium, missing_browser
from tests.support.procs import free_port

from costwarden.ledger.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
SHOTS = (("dashboard.png", "/dashboard?range=7d", "total-cost"),
         ("dashboard-budgets.png", "/dashboard/budgets", "forecast-0"))


def capture(url: str, out: Path, profile: Path) -> None:
    driver = chromium(profile)
    try:
        driver.get(f"{url}/dashboard/login")
        driver.find_element(By.ID, "key").send_keys(ADMIN_KEY)
        driver.find_element(By.ID, "login").click()
        for name, path, ready in SHOTS:
            driver.get(url + path)
            WebDriverWait(driver, 30).until(lambda d, r=ready: d.find_elements(By.ID, r))
            driver.save_screenshot(str(out / name))
            print(f"wrote {out / name}")
    finally:
        driver.quit()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path,
                        default=Path(tempfile.gettempdir()) / "costwarden-dashboard-10m.db")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    reason = missing_browser()
    end = ledger_end(args.db, args.records)
    if reason or end is None:
        raise SystemExit(reason or f"no benchmark ledger at {args.db}: run bench_dashboard.py")
    store = SqliteStore(args.db)
    dashboard = dashboard_on(store, end)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await dashboard.handle(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped the server
        await asyncio.sleep(0.05)
    try:
        with tempfile.TemporaryDirectory() as profile:
            await asyncio.to_thread(capture, f"http://127.0.0.1:{port}", args.out, Path(profile))
    finally:
        server.should_exit = True
        await task
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
