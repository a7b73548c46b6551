-- Least privilege for the long-running processes. Apply as the owner of the ledger (the
-- role that ran `royalty-ingest migrate`), in the ledger database, after every migration:
--
--   psql "$OWNER_DATABASE_URL" -f deploy/postgres/runtime-role.sql
--   psql "$OWNER_DATABASE_URL" -c "CREATE ROLE royalty_app LOGIN PASSWORD '…' IN ROLE royalty_run"
--
-- `royalty_run` may read and write rows, never change the schema: `run`, `dlq`,
-- `catalog import`, `alerts tail` and `reconcile` work as a member of it; `migrate` (and
-- `run` when a migration is pending) needs the owner. Re-running this file is harmless.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'royalty_run') THEN
    CREATE ROLE royalty_run NOLOGIN;
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO royalty_run;
REVOKE CREATE ON SCHEMA public FROM royalty_run;

-- The ledger and its journal: rows are added and restated, never deleted.
GRANT SELECT, INSERT, UPDATE ON royalty_ledger TO royalty_run;
GRANT SELECT, INSERT ON ledger_revisions TO royalty_run;
-- Lines a newer version of their report no longer has (reversed to zero).
GRANT SELECT, INSERT, UPDATE ON ledger_reversals TO royalty_run;
-- Offsets move by compare-and-set.
GRANT SELECT, INSERT, UPDATE ON consumer_offsets TO royalty_run;
-- Refused records (resolved when a replay is booked).
GRANT SELECT, INSERT, UPDATE ON quarantine TO royalty_run;
-- The outbox is a queue: the relay claims a row, and deletes it once the broker has it.
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO royalty_run;
-- Catalog versions (a new version closes the one it supersedes) and drift counts.
GRANT SELECT, INSERT, UPDATE ON catalog_versions, drift_events TO royalty_run;
-- Report control totals (the newest replaces an older one).
GRANT SELECT, INSERT, UPDATE ON report_summaries TO royalty_run;
-- DLQ replays are recorded.
GRANT SELECT, INSERT, UPDATE ON dlq_replays, dlq_replay_items TO royalty_run;
-- Which migrations are applied (read at start; only the owner applies them).
GRANT SELECT ON _sqlx_migrations TO royalty_run;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO royalty_run;
