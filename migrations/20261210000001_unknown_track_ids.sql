-- An ISRC unknown to the catalog is a drift of its ISRC alone, and its id now says so:
-- `drift-unknown-isrc-` and the ISRC instead of a hash of the ISRC (src/drift/detect.rs).
-- A catalog that misses many tracks writes a drift_events row per unknown track, and with
-- hashed ids each went to a random page of the primary key; a label's unknown tracks are
-- mostly its own releases, close together in ISRC order, and now land on a few pages
-- (BENCHMARKS.md, "Session 13"). Other drift keeps its hashed id.
--
-- The rows recorded before get the new ids, so that a track announced before is still
-- found announced (its next line is counted on its row, not alerted again), and so do
-- their acknowledgements. Alerts keep their ids; `alert_id` still names each row's alert.
-- Every unknown track's row is rewritten: on a large drift_events, plan it like the other
-- migrations that rewrite a table (README.md, `royalty-ingest migrate`).
UPDATE drift_acknowledgements a
   SET drift_id = 'drift-unknown-isrc-' || e.isrc
  FROM (SELECT DISTINCT drift_id, isrc FROM drift_events WHERE kind = 'unknown_isrc') e
 WHERE a.drift_id = e.drift_id;
UPDATE drift_events
   SET drift_id = 'drift-unknown-isrc-' || isrc
 WHERE kind = 'unknown_isrc' AND drift_id <> 'drift-unknown-isrc-' || isrc;
