-- The claim looks for due pending rows oldest first. A partial index over pending rows only,
-- ordered by `seq` and covering the due tests, lets it stop after `limit` rows instead of
-- scanning and sorting every due row; delivered and failed rows leave it. It replaces
-- `deliveries_due`, which every state change had to maintain as well.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_pending ON deliveries (seq, next_attempt_at, lease_until) WHERE state = 'pending';
