-- A dead letter closed by hand (`royalty-ingest dlq resolve`): who closed it and why.
-- resolved_at is stamped as for a booked replay; resolved_topic stays null, which tells the
-- two apart.
ALTER TABLE quarantine ADD COLUMN resolved_note text;
ALTER TABLE quarantine ADD COLUMN resolved_by_user text;
