-- Request/response pairs captured for distillation (distill/capture.py): only for features
-- that opted in, redacted before they get here, deleted once expires_at has passed
-- (distill/capture.py). One row per request at most.
CREATE TABLE captured_pairs (
    request_id    TEXT PRIMARY KEY,
    feature       TEXT NOT NULL,
    captured_at   TEXT NOT NULL,
    expires_at    TEXT NOT NULL,  -- captured_at + the feature's retention when captured
    api           TEXT NOT NULL,
    model         TEXT NOT NULL,  -- the model that answered
    prompt_hash   TEXT NOT NULL,  -- normalised prompt fingerprint (repeats, dedup on export)
    messages      TEXT NOT NULL,  -- JSON: the conversation, the answer as its last message
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
);
CREATE INDEX captured_pairs_feature ON captured_pairs (feature, captured_at);
CREATE INDEX captured_pairs_expiry ON captured_pairs (expires_at);
