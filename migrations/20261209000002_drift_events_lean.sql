-- A catalog that misses many tracks writes a drift_events row per unknown track, as fast as
-- the ledger grows (BENCHMARKS.md, "Session 12"). Two of each row's costs go:
--
-- The alert index becomes a hash index. It is only ever probed for one alert id (`alerts
-- unknown-tracks --alert`, `alerts tail --dsp`), never ranged or sorted, and a hash entry
-- is the id's 4-byte hash instead of its 46 characters: 1.5 instead of 2.2 µs per row.
DROP INDEX drift_events_alert;
CREATE INDEX drift_events_alert ON drift_events USING hash (alert_id) WHERE alert_id IS NOT NULL;

-- The foreign key to catalog_versions checked, per row, a version the same transaction had
-- just read from catalog_versions (the catalog check takes the version id from that row),
-- and catalog versions are never deleted: the past is closed, not edited (the runtime role
-- has no DELETE on catalog_versions). Its trigger cost a microsecond per row even for the
-- unknown tracks, whose version is NULL. The ledger keeps its own foreign key.
ALTER TABLE drift_events DROP CONSTRAINT drift_events_catalog_version_id_fkey;
