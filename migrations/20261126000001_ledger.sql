-- The exactly-once ledger: every distinct royalty line once, the journal of its restatements,
-- the consumer offsets stored in the same transaction as the data, refused records, and the
-- outbox of messages (dead letters, drift alerts) to publish after commit.
-- Money is NUMERIC(38,13): exact, 13 decimal places (per-stream amounts carry 6 to 13).

-- One row per distinct sale: DSP + report period + transaction id (the key is SHA-256 over
-- them, see src/domain/key.rs). ISRC, UPC, currency and amounts are values: a correction
-- restates the row, it never adds a second one.
CREATE TABLE royalty_ledger (
    line_key          bytea PRIMARY KEY CHECK (octet_length(line_key) = 32),
    dsp_name          text NOT NULL CHECK (dsp_name <> ''),
    report_period     date NOT NULL,
    transaction_id    text NOT NULL CHECK (transaction_id <> ''),
    isrc              text NOT NULL CHECK (isrc ~ '^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$'),
    upc               text NOT NULL CHECK (upc ~ '^[0-9]{8,14}$'),
    stream_count      bigint NOT NULL CHECK (stream_count >= 0),
    royalty_amount    numeric(38, 13) NOT NULL,
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    territory         text,
    usage_type        text,
    line_type         text NOT NULL DEFAULT 'sale' CHECK (line_type IN ('sale', 'return', 'adjustment')),
    label             text,
    artist            text,
    report_id         text,
    -- Where the version this row holds came from; source_timestamp (the Kafka record
    -- timestamp) decides whether a later-arriving version is newer or stale.
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    source_timestamp  timestamptz NOT NULL,
    -- 1 for the first version; +1 per applied restatement.
    version           integer NOT NULL DEFAULT 1,
    first_ingested_at timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (royalty_amount >= 0 OR line_type IN ('return', 'adjustment'))
);
CREATE INDEX royalty_ledger_dsp_period ON royalty_ledger (dsp_name, report_period);
CREATE INDEX royalty_ledger_isrc ON royalty_ledger (isrc);

-- The restatement journal: old and new values of every version that differed from the
-- stored one. applied = false marks a version older (by source timestamp) than the stored
-- one: recorded for audit, not applied. A payout run reads adjustments from here.
CREATE TABLE ledger_revisions (
    revision_id         bigserial PRIMARY KEY,
    line_key            bytea NOT NULL REFERENCES royalty_ledger (line_key),
    applied             boolean NOT NULL,
    changed_fields      text[] NOT NULL,
    old_values          jsonb NOT NULL,
    new_values          jsonb NOT NULL,
    old_royalty_amount  numeric(38, 13) NOT NULL,
    new_royalty_amount  numeric(38, 13) NOT NULL,
    old_stream_count    bigint NOT NULL,
    new_stream_count    bigint NOT NULL,
    source_topic        text NOT NULL,
    source_partition    integer NOT NULL,
    source_offset       bigint NOT NULL,
    source_timestamp    timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (line_key, source_topic, source_partition, source_offset)
);
CREATE INDEX ledger_revisions_recorded ON ledger_revisions (recorded_at);

-- The source of truth for where each consumer group resumes. Updated only by a
-- compare-and-set in the batch transaction (WHERE next_offset = expected), which fences
-- zombie instances.
CREATE TABLE consumer_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL CHECK (partition >= 0),
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Exactly one row per refused source record, however often it is re-read.
CREATE TABLE quarantine (
    quarantine_id     bigserial PRIMARY KEY,
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    source_timestamp  timestamptz,
    consumer_group    text NOT NULL,
    record_key        bytea,
    record_value      bytea,
    header_names      text[] NOT NULL DEFAULT '{}',
    header_values     bytea[] NOT NULL DEFAULT '{}',
    error_stage       text NOT NULL,
    error_class       text NOT NULL,
    reason            text NOT NULL,
    schema_ref        text,
    dead_letter_id    text NOT NULL UNIQUE,
    quarantined_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);

-- Messages to publish after commit (dead letters, drift alerts). The relay claims rows with
-- FOR UPDATE SKIP LOCKED, publishes with an idempotent producer and stamps published_at.
-- message_id is the stable id header subscribers use to drop repeats.
CREATE TABLE outbox (
    outbox_id         bigserial PRIMARY KEY,
    message_id        text NOT NULL UNIQUE,
    topic             text NOT NULL,
    message_key       bytea,
    payload           bytea,
    header_names      text[] NOT NULL DEFAULT '{}',
    header_values     bytea[] NOT NULL DEFAULT '{}',
    message_timestamp timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (outbox_id) WHERE published_at IS NULL;
