-- Requests in flight. The ledger stores a pending row (status 'in_flight', no cost) when a
-- request is first sent upstream; the request's final record replaces it. spool_writer names
-- the gateway process (spool writer) whose spool held the row, so that the rows a dead
-- process left in flight can be found and marked 'interrupted'.
ALTER TABLE usage_records ADD COLUMN spool_writer TEXT;

-- Partial: only rows in flight are in it, so finished rows (nearly all) cost it nothing, and
-- marking a dead writer's rows reads only that writer's rows still in flight.
CREATE INDEX usage_records_in_flight ON usage_records (spool_writer)
    WHERE status = 'in_flight';
