-- What savings stages (cache, cascade, router, context trimming) saved on a request: the sum
-- (exact NUMERIC) and each saving as a JSON array (records.Saving). NULL when no stage saved.
ALTER TABLE usage_records ADD COLUMN cost_saved NUMERIC;
ALTER TABLE usage_records ADD COLUMN savings JSONB;
