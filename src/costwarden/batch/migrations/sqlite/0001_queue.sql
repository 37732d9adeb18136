-- The batch queue: jobs, their items, and provider Batch API submissions.
-- Times are epoch seconds (REAL): leases compare them with the clock of whichever worker looks.
CREATE TABLE IF NOT EXISTS batch_jobs (
    job_id          TEXT PRIMARY KEY,
    name            TEXT,
    model           TEXT NOT NULL,
    api             TEXT NOT NULL,
    mode            TEXT NOT NULL,
    source          TEXT NOT NULL,
    status          TEXT NOT NULL,
    failure_budget  REAL NOT NULL,
    max_attempts    INTEGER NOT NULL,
    key_id          TEXT,
    user_id         TEXT,
    team            TEXT,
    key_name        TEXT,
    feature         TEXT,
    env             TEXT,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    note            TEXT
);
CREATE INDEX IF NOT EXISTS batch_jobs_intake ON batch_jobs (source, key_id, model, status);

CREATE TABLE IF NOT EXISTS batch_items (
    item_id         TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL REFERENCES batch_jobs (job_id),
    seq             INTEGER NOT NULL,
    custom_id       TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner     TEXT,
    lease_token     TEXT,
    lease_until     REAL,
    submission_id   TEXT,
    http_status     INTEGER,
    result          TEXT,
    error           TEXT,
    request_id      TEXT,
    cost            TEXT,
    record          TEXT,
    recorded        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    UNIQUE (job_id, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_items_ready ON batch_items (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS batch_items_leases ON batch_items (status, lease_until);
CREATE INDEX IF NOT EXISTS batch_items_job ON batch_items (job_id, status);
CREATE INDEX IF NOT EXISTS batch_items_owner ON batch_items (lease_owner);
CREATE INDEX IF NOT EXISTS batch_items_unrecorded ON batch_items (finished_at) WHERE recorded = 0;
CREATE INDEX IF NOT EXISTS batch_items_submission ON batch_items (submission_id);

CREATE TABLE IF NOT EXISTS batch_submissions (
    submission_id     TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL REFERENCES batch_jobs (job_id),
    status            TEXT NOT NULL,
    provider_batch_id TEXT,
    lease_owner       TEXT,
    lease_token       TEXT,
    lease_until       REAL,
    items             INTEGER NOT NULL,
    created_at        REAL NOT NULL,
    finished_at       REAL
);
CREATE INDEX IF NOT EXISTS batch_submissions_open ON batch_submissions (status, lease_until);
