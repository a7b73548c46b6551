-- The ledger's primary key becomes (report_period, line_key): the index is ordered by
-- period first. A line key is a hash, so with the key alone every new line landed on a
-- random page of an index spanning all of history, and each line cost more as the ledger
-- aged (measured: 0.72x the empty-ledger rate over 20M rows of 36 earlier periods). Ordered
-- by period, today's lines touch only their own periods' part of the index; the pages of
-- paid periods stay cold. The key already hashes the period (src/domain/key.rs), so every
-- lookup knows it. The same key is what partitioning by period would need
-- (ARCHITECTURE.md, "Scale-out").
--
-- The journal and the reversals reference ledger rows, so they carry the period too. On an
-- existing ledger this reads the whole ledger, rebuilds the primary key and validates both
-- foreign keys, with the tables locked. Run `royalty-ingest migrate` in a maintenance
-- window before starting the new version.

ALTER TABLE ledger_revisions ADD COLUMN report_period date;
UPDATE ledger_revisions r
   SET report_period = l.report_period
  FROM royalty_ledger l
 WHERE l.line_key = r.line_key;
ALTER TABLE ledger_revisions ALTER COLUMN report_period SET NOT NULL;

ALTER TABLE ledger_reversals ADD COLUMN report_period date;
UPDATE ledger_reversals r
   SET report_period = l.report_period
  FROM royalty_ledger l
 WHERE l.line_key = r.line_key;
ALTER TABLE ledger_reversals ALTER COLUMN report_period SET NOT NULL;

ALTER TABLE ledger_revisions DROP CONSTRAINT ledger_revisions_line_key_fkey;
ALTER TABLE ledger_reversals DROP CONSTRAINT ledger_reversals_line_key_fkey;
ALTER TABLE royalty_ledger DROP CONSTRAINT royalty_ledger_pkey;
ALTER TABLE royalty_ledger ADD CONSTRAINT royalty_ledger_pkey
    PRIMARY KEY (report_period, line_key);
ALTER TABLE ledger_revisions ADD CONSTRAINT ledger_revisions_line_fkey
    FOREIGN KEY (report_period, line_key) REFERENCES royalty_ledger (report_period, line_key);
ALTER TABLE ledger_reversals ADD CONSTRAINT ledger_reversals_line_fkey
    FOREIGN KEY (report_period, line_key) REFERENCES royalty_ledger (report_period, line_key);
