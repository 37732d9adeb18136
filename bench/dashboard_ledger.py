"""A large synthetic SQLite ledger for the dashboard benchmark and its screenshot.

    build_ledger(path, records=10_000_000, days=45, seed=14)  # minutes; cached by the caller

Rows are written straight into ``usage_records`` in the column format the SQLite backend stores
(``COLUMNS`` order, ``sqlite_values`` types) with executemany, time-ordered and with
time-ordered request ids, so every index is appended to rather than split. Then every hour is
marked dirty and ``refresh_rollups`` builds the cube, as the gateway's job would.

Cardinality (realistic for a company-wide gateway, skewed like real usage): ~2000 users on 40
teams, each user with one or two keys, a favourite feature (of 10), mostly prod (3 envs), and
one to three of 8 models; users' request volumes are Zipf-distributed (a few service accounts
make most requests), with a daytime peak and quiet weekends. ~0.5 % of requests have no known
cost, ~1 % are upstream errors, ~4 % are exact-cache hits that record a saving.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from costwarden.ledger.rows import COLUMNS
from costwarden.ledger.sqlite import SqliteStore
from costwarden.ledger.store import StoredAlert

# (model, provider, $ per million input tokens, $ per million output tokens) — list prices,
# only so that costs have realistic magnitudes; the dashboard never re-prices.
MODELS = (
    ("gpt-4o-mini", "openai", 150_000, 600_000),
    ("gpt-4o", "openai", 2_500_000, 10_000_000),
    ("o3-mini", "openai", 1_100_000, 4_400_000),
    ("gpt-4.1", "openai", 2_000_000, 8_000_000),
    ("claude-sonnet-4", "anthropic", 3_000_000, 15_000_000),
    ("claude-haiku-3.5", "anthropic", 800_000, 4_000_000),
    ("text-embedding-3-small", "openai", 20_000, 0),
    ("llama-3-70b-selfhosted", "openai", 400_000, 400_000),
)  # prices in micro-dollars per million tokens = pico-dollars per token
FEATURES = ("chat", "search", "summarise", "classify", "extract", "agent", "rag", "translate",
            "codegen", "eval")
ENVS = ("prod", "staging", "dev")
N_USERS = 2000
N_TEAMS = 40
_PICO = 10**12
_CHUNK = 100_000
_INSERT = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "  # noqa: S608 (constant names)
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    team: str
    keys: tuple[str, ...]
    feature: int
    env_weights: tuple[float, float, float]
    models: tuple[int, ...]


def _principals(rng: np.random.Generator) -> list[Principal]:
    teams = rng.zipf(1.6, N_USERS) % N_TEAMS
    result = []
    for i in range(N_USERS):
        n_models = int(rng.integers(1, 4))
        models = tuple(int(m) for m in rng.choice(len(MODELS), n_models, replace=False))
        prod = float(rng.uniform(0.6, 0.98))
        rest = 1.0 - prod
        result.append(
            Principal(
                user=f"user-{i:04d}",
                team=f"team-{int(teams[i]):02d}",
                keys=tuple(f"key_{i:04d}_{k}" for k in range(int(rng.integers(1, 3)))),
                feature=int(rng.zipf(1.8) - 1) % len(FEATURES),
                env_weights=(prod, rest * 0.7, rest * 0.3),
                models=models,
            )
        )
    return result


def _timestamps(rng: np.random.Generator, n: int, start: datetime, days: int) -> np.ndarray:
    """Sorted microsecond offsets from ``start``: a daytime peak, quiet weekends."""
    hours = np.arange(days * 24)
    hour_of_day = hours % 24
    weekday = ((start.weekday() + hours // 24) % 7) < 5
    weight = (0.25 + np.exp(-((hour_of_day - 14) ** 2) / 18.0)) * np.where(weekday, 1.0, 0.35)
    picked = rng.choice(len(hours), n, p=weight / weight.sum())
    offsets = picked.astype(np.int64) * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    offsets.sort()
    return offsets


def _text(start: datetime, micros: int) -> str:
    return (start + timedelta(microseconds=micros)).isoformat(timespec="microseconds")


def _money(pico: int) -> str:
    return f"{pico // _PICO}.{pico % _PICO:012d}"


def _rows(rng: np.random.Generator, n: int, start: datetime, days: int) -> Iterator[list[tuple]]:  # type: ignore[type-arg]
    people = _principals(rng)
    offsets = _timestamps(rng, n, start, days)
    who = (rng.zipf(1.3, n) - 1) % N_USERS
    for first in range(0, n, _CHUNK):
        size = min(_CHUNK, n - first)
        picks = rng.random((size, 6))
        tokens_in = rng.lognormal(6.5, 1.0, size).astype(np.int64) + 5
        tokens_out = rng.lognormal(5.0, 0.9, size).astype(np.int64) + 1
        latency = rng.lognormal(6.3, 0.6, size)
        chunk = []
        for j in range(size):
            p = people[int(who[first + j])]
            created = _text(start, int(offsets[first + j]))
            usage = (int(tokens_in[j]), int(tokens_out[j]), float(latency[j]))
            chunk.append(_row(first + j, p, picks[j], usage, created))
        yield chunk


def _row(index: int, p: Principal, pick: np.ndarray, usage: tuple[int, int, float],
         created: str) -> tuple:  # type: ignore[type-arg]
    tin, tout, latency = usage
    model, provider, price_in, price_out = MODELS[p.models[int(pick[0] * len(p.models))]]
    env = ENVS[0 if pick[1] < p.env_weights[0] else 1 if pick[1] < 1 - p.env_weights[2] else 2]
    feature = FEATURES[p.feature if pick[2] < 0.8 else int(pick[2] * 50) % len(FEATURES)]
    cached = tin // 3 if pick[3] < 0.2 else 0
    status, http, error = ("ok", 200, None)
    if pick[4] < 0.01:
        status, http, error, tout = "upstream_error", 500, "upstream_error", 0
    cost_in, cost_out = tin * price_in, tout * price_out
    cost: str | None = _money(cost_in + cost_out)
    saved = savings = None
    if pick[5] < 0.005:
        cost = None  # a model without a price: counted, never as $0
    elif pick[5] < 0.045 and status == "ok":
        saved, cost, cost_in, cost_out = cost, "0", 0, 0
        savings = f'[{{"kind":"cache_exact","cost_saved":"{saved}","tokens_saved":{tout}}}]'
    return (
        f"cw-bench{index:012x}", created, created, created[:10], "chat.completions", 0,
        p.keys[int(pick[3] * 1000) % len(p.keys)], p.user, p.team, None, feature, None, env, None,
        model, model, provider, model, model, tin, tout, cached, 0, 0, 0,
        cost, None if cost is None else _money(cost_in), None if cost is None else _money(cost_out),
        "bench", "bench-prices 1", latency, latency * 0.95, status, http, error, None,
        f'[{{"model":"{model}","provider":"{provider}","endpoint":"ep-{provider}",'
        f'"upstream_model":"{model}","started_at":0.0,"latency_ms":{latency * 0.95:.1f},'
        f'"http_status":{http}}}]', None,
        saved, savings,
    )


def _alerts(end: datetime) -> list[StoredAlert]:
    kinds = (
        ("anomaly.spend", "warning", "Spend anomaly: team-03", "team", "team-03"),
        ("price.change", "warning", "Price change: gpt-4o", "model", "gpt-4o"),
        ("pin.mismatch", "info", "New version served for gpt-4o-mini", "model", "gpt-4o-mini"),
        ("budget.threshold", "warning", "Budget team-01 at 80 %", "budget", "team-01"),
    )
    return [
        StoredAlert(
            at=end - timedelta(hours=7 * i + 1), kind=kind, severity=severity,
            title=title, text=f"{title} (synthetic event {i})", scope=f"{dim}={value}",
            dedup_key=f"{kind}:{value}:{i}", fields={dim: value, "n": str(i)},
        )
        for i, (kind, severity, title, dim, value) in enumerate(kinds * 10)
    ]


async def build_ledger(path: Path, records: int, days: int, seed: int) -> datetime:
    """Write the ledger at ``path`` (replacing it) and return its end: the first moment after
    its last hour, the "now" its pages are rendered at."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    store = SqliteStore(path)
    await store.migrate()
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    # A one-off bulk load: no journal, no fsync (WAL would write every page twice).
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    for chunk in _rows(np.random.default_rng(seed), records, start, days):
        conn.executemany(_INSERT, chunk)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")  # what the gateway's store uses
    conn.close()
    store = SqliteStore(path)
    try:
        await store.mark_rollups_dirty()
        while await store.refresh_rollups(max_hours=500):
            pass
        await store.record_alerts(_alerts(end))
    finally:
        await store.close()
    # Written last: a build interrupted before this point is not taken for a finished one.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE bench_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO bench_meta VALUES ('end', ?), ('records', ?)",
                 (end.isoformat(), str(records)))
    conn.close()
    return end


def ledger_end(path: Path, records: int) -> datetime | None:
    """The end of a ledger ``build_ledger`` made with ``records`` rows, or None if ``path`` is
    not one (missing, another size, or an interrupted build)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        rows = dict(conn.execute("SELECT name, value FROM bench_meta").fetchall())
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if rows.get("records") != str(records) or "end" not in rows:
        return None
    return datetime.fromisoformat(rows["end"])


if __name__ == "__main__":  # quick manual build: python bench/dashboard_ledger.py PATH N
    import sys

    print(asyncio.run(build_ledger(Path(sys.argv[1]), int(sys.argv[2]), 45, 14)))
