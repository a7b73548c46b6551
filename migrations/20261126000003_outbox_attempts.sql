-- A message the broker keeps refusing must not hold back the ones behind it: failed
-- attempts are counted and the relay claims the least-tried rows first.
ALTER TABLE outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error text;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (attempts, outbox_id) WHERE published_at IS NULL;
