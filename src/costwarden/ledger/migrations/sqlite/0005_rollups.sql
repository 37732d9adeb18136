-- Rollups for dashboards and anomaly detection: usage summed per hour and per UTC day over every
-- combination of the attribution dimensions seen (a "cube"). A dashboard query then sums
-- thousands of cube rows instead of millions of records. Money is INTEGER nano-dollars (one
-- rounding per cube cell): SQLite sums integers natively, and a dashboard shows cents; the
-- exact decimal cost stays in usage_records for invoices and reports.
CREATE TABLE usage_cube (
    grain                 TEXT NOT NULL,  -- 'hour' or 'day'
    start                 TEXT NOT NULL,  -- UTC start of the hour/day, same format as created_at
    model                 TEXT,
    team                  TEXT,
    user_id               TEXT,
    key_id                TEXT,
    feature               TEXT,
    env                   TEXT,
    provider              TEXT,
    requests              INTEGER NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cached_tokens         INTEGER NOT NULL,
    cost_nusd             INTEGER NOT NULL,  -- known costs only
    unknown_cost_requests INTEGER NOT NULL,
    saved_nusd            INTEGER NOT NULL
);
CREATE INDEX usage_cube_start ON usage_cube (grain, start);

-- The cube summed per single dimension ('global' has value NULL): what a table of users or a
-- chart stacked by team reads, a few thousand rows a day instead of one per combination.
CREATE TABLE usage_cube_dim (
    grain                 TEXT NOT NULL,
    start                 TEXT NOT NULL,
    dimension             TEXT NOT NULL,
    value                 TEXT,
    requests              INTEGER NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cached_tokens         INTEGER NOT NULL,
    cost_nusd             INTEGER NOT NULL,
    unknown_cost_requests INTEGER NOT NULL,
    saved_nusd            INTEGER NOT NULL
);
CREATE INDEX usage_cube_dim_start ON usage_cube_dim (grain, dimension, start);

-- Hours whose records changed since their cube rows were computed. The writer bumps
-- ``version`` in the transaction that inserts the rows; a refresh deletes the mark only if the
-- version is still the one it read, so rows landing during a refresh are never lost.
CREATE TABLE rollup_dirty (
    hour    TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
INSERT INTO rollup_dirty (hour, version)
    SELECT DISTINCT substr(created_at, 1, 13) || ':00:00.000000+00:00', 1 FROM usage_records;

-- Every alert that went through the alert router (anomalies, budget thresholds, price and
-- version changes), for the dashboard's event list.
CREATE TABLE alert_events (
    alert_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    title     TEXT NOT NULL,
    text      TEXT NOT NULL,
    scope     TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    fields    TEXT NOT NULL  -- JSON object of strings
);
CREATE INDEX alert_events_at ON alert_events (at);

-- Leader leases: background jobs (rollups, anomaly and price checks) run in one replica.
CREATE TABLE monitor_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL  -- epoch seconds
);
