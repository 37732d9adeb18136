-- Rollups for dashboards and anomaly detection: usage summed per hour and per UTC day over every
-- combination of the attribution dimensions seen (a "cube"). Money is BIGINT nano-dollars, one
-- rounding per cube cell, the same as SQLite; the exact NUMERIC cost stays in usage_records.
CREATE TABLE usage_cube (
    grain                 TEXT NOT NULL,  -- 'hour' or 'day'
    start                 TIMESTAMPTZ NOT NULL,
    model                 TEXT,
    team                  TEXT,
    user_id               TEXT,
    key_id                TEXT,
    feature               TEXT,
    env                   TEXT,
    provider              TEXT,
    requests              BIGINT NOT NULL,
    input_tokens          BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    cached_tokens         BIGINT NOT NULL,
    cost_nusd             BIGINT NOT NULL,
    unknown_cost_requests BIGINT NOT NULL,
    saved_nusd            BIGINT NOT NULL
);
CREATE INDEX usage_cube_start ON usage_cube (grain, start);

-- The cube summed per single dimension ('global' has value NULL): what a table of users or a
-- chart stacked by team reads, a few thousand rows a day instead of one per combination.
CREATE TABLE usage_cube_dim (
    grain                 TEXT NOT NULL,
    start                 TIMESTAMPTZ NOT NULL,
    dimension             TEXT NOT NULL,
    value                 TEXT,
    requests              BIGINT NOT NULL,
    input_tokens          BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    cached_tokens         BIGINT NOT NULL,
    cost_nusd             BIGINT NOT NULL,
    unknown_cost_requests BIGINT NOT NULL,
    saved_nusd            BIGINT NOT NULL
);
CREATE INDEX usage_cube_dim_start ON usage_cube_dim (grain, dimension, start);

-- Hours whose records changed since their cube rows were computed (see the SQLite migration).
CREATE TABLE rollup_dirty (
    hour    TIMESTAMPTZ PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO rollup_dirty (hour, version)
    SELECT DISTINCT date_trunc('hour', created_at, 'UTC'), 1 FROM usage_records;

CREATE TABLE alert_events (
    alert_id  BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    kind      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    title     TEXT NOT NULL,
    text      TEXT NOT NULL,
    scope     TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    fields    JSONB NOT NULL
);
CREATE INDEX alert_events_at ON alert_events (at);

CREATE TABLE monitor_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL  -- epoch seconds
);
