-- The outbox becomes a queue: the relay deletes a row once the broker has its message,
-- instead of stamping published_at and keeping the row (and its payload) for good. A kept
-- row cost three versions of the message's bytes (the insert, the claim, the stamp, which
-- moved it out of the partial index and so could never be a heap-only update); at a million
-- records of which a fifth were refused, the outbox was 500 MB for 200k messages, past
-- shared_buffers, and the relay's claim and stamp cost 85 µs per message (BENCHMARKS.md,
-- "Session 11"). In production it grew without bound.
--
-- What a published row told: that a dead letter reached its topic. Quarantine keeps every
-- letter, and now which topic it was meant for; a letter with no outbox row was published.
ALTER TABLE quarantine ADD COLUMN dlq_topic text;
UPDATE quarantine q SET dlq_topic = o.topic FROM outbox o WHERE o.message_id = q.dead_letter_id;

DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_unpublished;
ALTER TABLE outbox DROP COLUMN published_at;
-- The claim's order: least-tried first, then oldest.
CREATE INDEX outbox_claim ON outbox (attempts, outbox_id);
