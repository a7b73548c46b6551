-- Least privilege for the operator console (`royalty-ingest console`). Apply as the owner
-- of the ledger (the role that ran `royalty-ingest migrate`), in the ledger database, after
-- every migration:
--
--   psql "$OWNER_DATABASE_URL" -f deploy/postgres/console-role.sql
--   psql "$OWNER_DATABASE_URL" -c "CREATE ROLE royalty_console_app LOGIN PASSWORD '…' IN ROLE royalty_console"
--
-- `royalty_console` reads what the pages show and writes only what the console's actions
-- need: closing dead letters by hand (three columns of quarantine), recording replays,
-- acknowledging drift, its sessions and its audit trail. It never changes the ledger, the
-- offsets, the catalog or the schema, and cannot delete anything but expired or ended
-- sessions. `console user add` writes console_users: run it with the owner's URL.
-- Re-running this file is harmless.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'royalty_console') THEN
    CREATE ROLE royalty_console NOLOGIN;
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO royalty_console;
REVOKE CREATE ON SCHEMA public FROM royalty_console;

-- What the pages read: the work queue and its replays, the outbox backlog, the group's
-- offsets, the ledger and report totals (reconciliation), the catalog and drift.
GRANT SELECT ON quarantine, outbox, consumer_offsets, royalty_ledger, ledger_reversals,
                report_summaries, dlq_replays, dlq_replay_items, catalog_versions,
                catalog_version_closures, drift_events
   TO royalty_console;
-- Resolve with a note: who, when, why; nothing else of a dead letter changes.
GRANT UPDATE (resolved_at, resolved_note, resolved_by_user) ON quarantine TO royalty_console;
-- Replay: the record of each replay and of every dead letter it sent (the send itself
-- goes to Kafka; `run` books the copies as any record).
GRANT INSERT, UPDATE ON dlq_replays TO royalty_console;
GRANT INSERT ON dlq_replay_items TO royalty_console;
GRANT USAGE ON SEQUENCE dlq_replays_replay_id_seq TO royalty_console;
-- Acknowledge drift.
GRANT SELECT, INSERT ON drift_acknowledgements TO royalty_console;
-- Sign-in: users are read, sessions opened and ended.
GRANT SELECT ON console_users TO royalty_console;
GRANT SELECT, INSERT, DELETE ON console_sessions TO royalty_console;
-- The audit trail: appended and read, never changed.
GRANT SELECT, INSERT ON console_audit TO royalty_console;
GRANT USAGE ON SEQUENCE console_audit_audit_id_seq TO royalty_console;
-- Which migrations are applied (read at start; only the owner applies them).
GRANT SELECT ON _sqlx_migrations TO royalty_console;
