-- Drift events cost less per row: a catalog that misses many tracks writes one row per
-- unknown track, so this table grows as fast as the ledger in that case.
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
