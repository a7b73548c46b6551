-- The tables a batch appends to beside the ledger cost less per row (BENCHMARKS.md,
-- "Session 10"): a catalog that misses many tracks writes a drift_events row per unknown
-- track, and a restatement a journal row, so in those loads they grow as fast as the ledger.
--
-- No statement reads drift_events by ISRC (tracks are listed by alert, DSP, report and
-- period; drift is looked up by id), and its index was a seventh of each row's insert.
DROP INDEX drift_events_isrc;

-- The ids are hex digests and the DSP names lower-cased keys, compared for equality and
-- sorted only for display: byte order ("C") is what they mean, and it spares every
-- comparison in the primary key and the alert index the locale's rules (about a tenth of
-- each insert). The acknowledgements are joined to the events by drift id: same collation,
-- so that join keeps using both indexes.
ALTER TABLE drift_events
    ALTER COLUMN drift_id TYPE text COLLATE "C",
    ALTER COLUMN dsp_name TYPE text COLLATE "C",
    ALTER COLUMN alert_id TYPE text COLLATE "C";
ALTER TABLE drift_acknowledgements
    ALTER COLUMN drift_id TYPE text COLLATE "C";

-- The journal's foreign key to the ledger checked, per journal row, a ledger row the same
-- transaction had just locked and written: a third of the row's cost (8.5 of 25 µs), for a
-- guarantee the writer already gives. Journal rows are written only in `post::write`, for
-- rows `post::plan` loaded FOR UPDATE or the same write inserted, and no code path deletes
-- ledger rows (the runtime role has no DELETE on royalty_ledger). ledger_reversals keeps its
-- foreign key: it is written only when a report is replaced, never on the batch path.
ALTER TABLE ledger_revisions DROP CONSTRAINT ledger_revisions_line_fkey;
