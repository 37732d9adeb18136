"""A seeded ledger (SQLite and PostgreSQL) and a dashboard over it."""

from __future__ import annotations

import pytest

from costwarden.dashboard.routes import Dashboard
from costwarden.ledger import Store
from tests.dashboard.seed import build_dashboard, seed
from tests.gateway.conftest import start_gateway

__all__ = ["start_gateway"]  # the real gateway on a free port, for the browser test


@pytest.fixture
async def seeded_store(ledger_store: Store) -> Store:
    await seed(ledger_store)
    return ledger_store


@pytest.fixture
def dashboard(seeded_store: Store) -> Dashboard:
    return build_dashboard(seeded_store)
