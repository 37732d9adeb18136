-- The batch queue: jobs, their items, and provider Batch API submissions.
-- Times are epoch seconds (DOUBLE PRECISION): leases compare them with the clock of whichever worker looks.
CREATE TABLE IF NOT EXISTS batch_jobs (
    job_id          TEXT PRIMARY KEY,
    name            TEXT,
    model           TEXT NOT NULL,
    api             TEXT NOT NULL,
    mode            TEXT NOT NULL,
    source          TEXT NOT NULL,
    status          TEXT NOT NULL,
    failure_budget  DOUBLE PRECISION NOT NULL,
    max_attempts    INTEGER NOT NULL,
    key_id          TEXT,
    user_id         TEXT,
    team            TEXT,
    key_name        TEXT,
    feature         TEXT,
    env             TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    finished_at     DOUBLE PRECISION,
    note            TEXT
);
CREATE INDEX IF NOT EXISTS batch_jobs_intake ON batch_jobs (source, key_id, model, status);

CREATE TABLE IF NOT EXISTS batch_items (
    item_id         TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL REFERENCES batch_jobs (job_id),
    seq             BIGINT NOT NULL,
    custom_id       TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_owner     TEXT,
    lease_token     TEXT,
    lease_until     DOUBLE PRECISION,
    submission_id   TEXT,
    http_status     INTEGER,
    result          TEXT,
    error           TEXT,
    request_id      TEXT,
    cost            NUMERIC,
    record          TEXT,
    recorded        INTEGER NOT NULL DEFAULT 0,
    created_at      DOUBLE PRECISION NOT NULL,
    finished_at     DOUBLE PRECISION,
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
    lease_until       DOUBLE PRECISION,
    items             INTEGER NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL,
    finished_at       DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS batch_submissions_open ON batch_submissions (status, lease_until);
