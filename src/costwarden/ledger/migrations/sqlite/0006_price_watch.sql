-- The price watch's memory (monitor/price_watch_job.py), shared by every replica through the
-- store so that a restart or a new leader neither misses a change nor repeats its alert.

-- The rate card (USD per million tokens, exact decimal text) each configured model was last
-- seen priced at. A run compares the price in force now with it: a newer genai-prices catalog
-- after a deploy, an edited config or a dated price taking effect all show up as a difference.
CREATE TABLE price_observations (
    model               TEXT PRIMARY KEY,
    endpoint            TEXT NOT NULL,
    price_source        TEXT NOT NULL,
    price_version       TEXT NOT NULL,
    input_per_mtok      TEXT NOT NULL,
    output_per_mtok     TEXT NOT NULL,
    cache_read_per_mtok TEXT,  -- NULL: cache reads are billed as input
    observed_at         TEXT NOT NULL  -- when this card was first seen
);

-- Each (pinned model, version reported by upstream) already alerted on: one alert per version.
CREATE TABLE version_sightings (
    model          TEXT NOT NULL,
    reported_model TEXT NOT NULL,
    first_seen     TEXT NOT NULL,
    PRIMARY KEY (model, reported_model)
);
