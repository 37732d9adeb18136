-- One row per client request.
-- cost is NUMERIC without a typmod: PostgreSQL then stores the value exactly as given, so a
-- cost with more than 12 decimals (self-hosted prices are divisions) is never rounded and
-- PostgreSQL and SQLite hold the same number.
CREATE TABLE usage_records (
    request_id          TEXT PRIMARY KEY,
    created_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    day                 DATE NOT NULL,  -- UTC date of created_at, for daily reports
    api                 TEXT NOT NULL,
    stream              BOOLEAN NOT NULL,
    key_id              TEXT,
    user_id             TEXT,
    team                TEXT,
    key_name            TEXT,
    feature             TEXT,
    session             TEXT,
    env                 TEXT,
    agent               TEXT,
    requested_model     TEXT NOT NULL,
    resolved_model      TEXT,
    provider            TEXT,
    upstream_model      TEXT,
    reported_model      TEXT,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    usage_estimated     BOOLEAN NOT NULL,
    cost                NUMERIC,  -- NULL = unknown price, never silently 0
    cost_input          NUMERIC,
    cost_output         NUMERIC,
    price_source        TEXT,
    price_version       TEXT,
    latency_ms          DOUBLE PRECISION NOT NULL,
    upstream_latency_ms DOUBLE PRECISION NOT NULL,
    status              TEXT NOT NULL,
    http_status         INTEGER NOT NULL,
    error_type          TEXT,
    error_message       TEXT,
    attempts            JSONB NOT NULL
);

-- Every report is a time range first; the user index serves the most common filter
-- (one user's spend, e.g. for budgets). Each extra index is paid on every insert of an
-- append-heavy table (measured: 6 indexes cost ~20 % of gateway throughput on SQLite), so
-- team / key / model filters scan the time range instead.
CREATE INDEX usage_records_created_at ON usage_records (created_at);
CREATE INDEX usage_records_user ON usage_records (user_id, created_at);

-- How far a ledger writer has copied each spool segment into this database.
-- Written in the same transaction as the rows it covers.
CREATE TABLE spool_checkpoints (
    segment     TEXT PRIMARY KEY,
    byte_offset BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Virtual keys: only the sha256 of the secret is stored, plus a short display prefix.
CREATE TABLE virtual_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    user_id    TEXT,
    team       TEXT,
    name       TEXT,
    metadata   JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX virtual_keys_user ON virtual_keys (user_id);
