-- The dead-letter work queue. A refused record stays open in quarantine until a replay of
-- it is booked: `run` then stamps resolved_at and where the replayed copy was read, in the
-- batch transaction that booked it. A replayed record refused again gets its own dead
-- letter whose replay_of names the one it replays (a chain `run` resolves whole).
ALTER TABLE quarantine
    ADD COLUMN replay_of          text,
    ADD COLUMN resolved_at        timestamptz,
    ADD COLUMN resolved_topic     text,
    ADD COLUMN resolved_partition integer,
    ADD COLUMN resolved_offset    bigint,
    ADD COLUMN resolved_line_key  bytea;
CREATE INDEX quarantine_open ON quarantine (quarantined_at) WHERE resolved_at IS NULL;
CREATE INDEX quarantine_replay_of ON quarantine (replay_of) WHERE replay_of IS NOT NULL;

-- One row per `dlq replay` (finished_at stays null when it was interrupted).
CREATE TABLE dlq_replays (
    replay_id     bigserial PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    note          text,
    -- The --to topic; null when each dead letter went back to its source topic.
    target_topic  text,
    -- The command's selection (filters and ids), for the audit trail.
    selection     text NOT NULL,
    selected      integer NOT NULL DEFAULT 0,
    replayed      integer NOT NULL DEFAULT 0,
    skipped       integer NOT NULL DEFAULT 0
);

-- Every dead letter a replay sent, and where the broker put the copy.
CREATE TABLE dlq_replay_items (
    replay_id        bigint NOT NULL REFERENCES dlq_replays (replay_id),
    dead_letter_id   text NOT NULL,
    target_topic     text NOT NULL,
    target_partition integer NOT NULL,
    target_offset    bigint NOT NULL,
    sent_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replay_id, dead_letter_id)
);
CREATE INDEX dlq_replay_items_letter ON dlq_replay_items (dead_letter_id);
