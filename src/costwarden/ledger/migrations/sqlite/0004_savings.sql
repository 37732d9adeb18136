-- What savings stages (cache, cascade, router, context trimming) saved on a request: the sum
-- as exact decimal text, and each saving as a JSON array (records.Saving). NULL when no stage
-- saved anything, so a gateway without savings stores nothing more per row.
ALTER TABLE usage_records ADD COLUMN cost_saved TEXT;
ALTER TABLE usage_records ADD COLUMN savings TEXT;
