//! The batch's append-mostly tables (journal, quarantine, outbox, drift events) are written
//! by binary `COPY`, which cannot skip a row whose unique key is taken. When one is (the
//! same records committed again, as another consumer group or a re-read would), the COPY is
//! rolled back to its savepoint and the same rows go through `INSERT … ON CONFLICT`: every
//! row stays written once, and what was already there is left as it was. (The race of two
//! lanes on one new drift is `tests/drift.rs::two_lanes_meeting_the_same_new_drift_at_once_count_one_alert`.)

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::pipeline::{commit, count};
use royalty_ingest::db::outbox::{OutboxMessage, enqueue};
use royalty_ingest::domain::validate;
use royalty_ingest::ledger::dead_letter::DeadLetter;
use royalty_ingest::ledger::{Batch, LineToPost};
use royalty_ingest::record::{RecordBytes, SourceRecord};
use rust_decimal::Decimal;

fn source(offset: i64, second: i64) -> SourceRecord {
    SourceRecord {
        topic: Arc::from("raw"),
        partition: 0,
        offset,
        timestamp: Utc
            .timestamp_opt(1_790_000_000 + second, 0)
            .single()
            .expect("timestamp"),
    }
}

/// The journal's entries: each one's source offset and whether it was applied, by offset.
async fn journal_entries(pool: &sqlx::PgPool) -> Vec<(i64, bool)> {
    sqlx::query_as("SELECT source_offset, applied FROM ledger_revisions ORDER BY source_offset")
        .fetch_all(pool)
        .await
        .expect("journal")
}

/// A line, its restatement, and a refused record, with no offsets to move: committing it
/// again is what a second reader of the same records does.
fn batch() -> Batch {
    let decoded = common::pipeline::distinct_lines(61, 1, 1).remove(0);
    let original = validate::validate(&decoded).expect("valid line");
    let mut restated = original.clone();
    restated.royalty_amount += Decimal::new(125, 4);
    let letter = DeadLetter {
        source: source(2, 2),
        record: Arc::new(RecordBytes {
            key: Some(b"k".to_vec()),
            value: Some(b"\x00not avro".to_vec()),
            headers: vec![
                ("origin".into(), Some(b"dsp-a".to_vec())),
                ("empty".into(), None),
            ],
            not_read: None,
        }),
        stage: "decode",
        class: "unknown_fingerprint".into(),
        reason: "no writer schema".into(),
        schema_ref: None,
        line: None,
    };
    Batch {
        lines: vec![
            LineToPost {
                line: original,
                source: source(0, 0),
                record: Default::default(),
            },
            LineToPost {
                line: restated,
                source: source(1, 1),
                record: Default::default(),
            },
        ],
        dead_letters: vec![letter],
        ..Batch::default()
    }
}

#[tokio::test]
async fn the_same_records_committed_again_leave_every_table_written_once() {
    let (_, pool) = common::fresh_database().await;
    let batch = batch();

    let first = commit(&pool, &batch).await;
    assert_eq!((first.post.inserted, first.post.restated), (1, 1));
    // Again: the older version is now stale and journaled as such (a new journal row), the
    // refused record's quarantine and outbox rows exist (COPY refused, the upsert skips).
    let second = commit(&pool, &batch).await;
    assert_eq!((second.post.stale, second.post.duplicates), (1, 1));
    // A third time: now the stale entry's journal row exists too.
    let third = commit(&pool, &batch).await;
    assert_eq!((third.post.stale, third.post.duplicates), (1, 1));

    assert_eq!(count(&pool, "SELECT count(*) FROM royalty_ledger").await, 1);
    assert_eq!(
        journal_entries(&pool).await,
        vec![(0, false), (1, true)],
        "the restatement and the stale version, each once"
    );
    let changed: Vec<String> =
        sqlx::query_scalar("SELECT unnest(changed_fields) FROM ledger_revisions WHERE applied")
            .fetch_all(&pool)
            .await
            .expect("changed fields");
    assert_eq!(changed, vec!["royalty_amount".to_string()]);
    let amounts: (Decimal, Decimal, String) = sqlx::query_as(
        "SELECT new_royalty_amount - old_royalty_amount, new_royalty_amount,
                new_values->>'royalty_amount'
           FROM ledger_revisions WHERE applied",
    )
    .fetch_one(&pool)
    .await
    .expect("amounts");
    assert_eq!(amounts.0, Decimal::new(125, 4));
    assert_eq!(
        amounts.1.to_string(),
        amounts.2,
        "the journal's JSON holds the amount as written"
    );

    let quarantined: (i64, Vec<String>, Vec<Option<Vec<u8>>>) =
        sqlx::query_as("SELECT count(*) OVER (), header_names, header_values FROM quarantine")
            .fetch_one(&pool)
            .await
            .expect("quarantine");
    assert_eq!(
        quarantined.0, 1,
        "one quarantine row for the refused record"
    );
    assert_eq!(
        quarantined.1,
        vec!["origin".to_string(), "empty".to_string()]
    );
    assert_eq!(quarantined.2, vec![Some(b"dsp-a".to_vec()), None]);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outbox WHERE topic = 'dlq'").await,
        1
    );
    let topic: Option<String> = sqlx::query_scalar("SELECT dlq_topic FROM quarantine")
        .fetch_one(&pool)
        .await
        .expect("dlq topic");
    assert_eq!(
        topic.as_deref(),
        Some("dlq"),
        "quarantine knows the letter's topic"
    );

    // The relay publishes the letter and deletes its row; the record read again (another
    // consumer group) is quarantined already, so it is not sent a second time.
    sqlx::query("DELETE FROM outbox")
        .execute(&pool)
        .await
        .expect("published");
    commit(&pool, &batch).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM outbox").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM quarantine").await, 1);
}

fn message(id: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: id.into(),
        topic: "t".into(),
        key: None,
        payload: Some(id.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp: None,
    }
}

#[tokio::test]
async fn enqueue_reports_only_the_messages_it_added_in_a_transaction_or_not() {
    let (_, pool) = common::fresh_database().await;
    let mut conn = pool.acquire().await.expect("connection");
    let added = enqueue(&mut conn, &[message("a"), message("b")])
        .await
        .expect("enqueue outside a transaction");
    assert_eq!(added.len(), 2);

    let mut tx = pool.begin().await.expect("begin");
    let added = enqueue(&mut tx, &[message("b"), message("c")])
        .await
        .expect("enqueue in a transaction");
    assert_eq!(added.into_iter().collect::<Vec<_>>(), vec!["c".to_string()]);
    // The transaction is still usable after the refused COPY.
    let added = enqueue(&mut tx, &[message("d")]).await.expect("enqueue");
    assert_eq!(added.len(), 1);
    tx.commit().await.expect("commit");

    let rows: Vec<(String, Vec<String>)> =
        sqlx::query_as("SELECT message_id, header_names FROM outbox ORDER BY message_id")
            .fetch_all(&pool)
            .await
            .expect("outbox");
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b", "c", "d"]);
    assert!(
        rows.iter().all(|(_, names)| names.is_empty()),
        "empty header arrays"
    );
}

/// Back to the schema before `20261209000001_journal_json`, rows kept.
const UNDO_JOURNAL_JSON: &str = "
    ALTER TABLE ledger_revisions
        ALTER COLUMN old_values TYPE jsonb USING old_values::jsonb,
        ALTER COLUMN new_values TYPE jsonb USING new_values::jsonb;
    DELETE FROM _sqlx_migrations WHERE version = 20261209000001;";

/// Every journal entry's documents, as text of their `jsonb` form (key order normalised,
/// so documents from before and after the migration compare by content).
async fn journal_documents(pool: &sqlx::PgPool) -> Vec<(i64, String, String)> {
    sqlx::query_as(
        "SELECT source_offset, old_values::jsonb::text, new_values::jsonb::text
           FROM ledger_revisions ORDER BY revision_id",
    )
    .fetch_all(pool)
    .await
    .expect("journal documents")
}

/// A journal holding the restatement entry of [`batch`] (committed without its dead
/// letter), taken back by `undo` to the schema before a migration: the database's URL and
/// pool, the batch, and the entry's documents.
async fn journal_before(
    undo: &'static str,
) -> (String, sqlx::PgPool, Batch, Vec<(i64, String, String)>) {
    let (url, pool) = common::fresh_database().await;
    let mut batch = batch();
    batch.dead_letters.clear();
    commit(&pool, &batch).await;
    sqlx::raw_sql(undo)
        .execute(&pool)
        .await
        .expect("back to the schema before the migration");
    let before = journal_documents(&pool).await;
    assert_eq!(before.len(), 1, "the restatement's entry");
    (url, pool, batch, before)
}

/// `royalty-ingest migrate` on the database at `url`, which must succeed.
async fn migrate(url: &str) {
    let output = common::pipeline::royalty_ingest(&["migrate"], url).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn journal_entries_written_as_jsonb_keep_their_values_through_the_journal_json_migration() {
    let (url, pool, batch, before) = journal_before(UNDO_JOURNAL_JSON).await;
    assert!(
        before[0].2.contains("\"royalty_amount\""),
        "{:?}",
        before[0]
    );

    migrate(&url).await;
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT data_type::text FROM information_schema.columns
          WHERE table_name = 'ledger_revisions' AND column_name IN ('old_values', 'new_values')",
    )
    .fetch_all(&pool)
    .await
    .expect("column types");
    assert_eq!(types, ["json", "json"]);
    assert_eq!(
        journal_documents(&pool).await,
        before,
        "every document kept"
    );

    // The batch path journals into the migrated table: a second restatement of the line.
    let mut again = batch.lines[1].clone();
    again.line.royalty_amount += Decimal::new(1, 2);
    again.source = source(3, 3);
    let stats = commit(
        &pool,
        &Batch {
            lines: vec![again.clone()],
            ..Batch::default()
        },
    )
    .await;
    assert_eq!(stats.post.restated, 1);
    let latest: (String, String) = sqlx::query_as(
        "SELECT old_values->>'royalty_amount', new_values->>'royalty_amount'
           FROM ledger_revisions WHERE source_offset = 3",
    )
    .fetch_one(&pool)
    .await
    .expect("the new entry");
    assert_eq!(
        latest,
        (
            batch.lines[1].line.royalty_amount.to_string(),
            again.line.royalty_amount.to_string()
        )
    );
}

/// Back to the journal's unique key as it was before `20261211000001_journal_by_source`
/// (line key first), rows kept.
const UNDO_JOURNAL_BY_SOURCE: &str = "
    ALTER TABLE ledger_revisions
        DROP CONSTRAINT ledger_revisions_source_line,
        ADD UNIQUE (line_key, source_topic, source_partition, source_offset);
    DELETE FROM _sqlx_migrations WHERE version = 20261211000001;";

/// The columns of the journal's unique keys, each key's in its order.
async fn journal_unique_keys(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'ledger_revisions'::regclass AND contype = 'u'",
    )
    .fetch_all(pool)
    .await
    .expect("the journal's unique keys")
}

#[tokio::test]
async fn a_journal_with_entries_keeps_them_and_its_one_entry_per_record_through_the_journal_by_source_migration()
 {
    let (url, pool, batch, before) = journal_before(UNDO_JOURNAL_BY_SOURCE).await;
    assert_eq!(
        journal_unique_keys(&pool).await,
        ["UNIQUE (line_key, source_topic, source_partition, source_offset)"]
    );

    migrate(&url).await;
    assert_eq!(
        journal_unique_keys(&pool).await,
        ["UNIQUE (source_offset, source_partition, source_topic, line_key, report_period)"]
    );
    assert_eq!(journal_documents(&pool).await, before, "every entry kept");

    // The same records again, twice: the stale version is journaled once, the restatement
    // is not journaled again.
    for _ in 0..2 {
        let stats = commit(&pool, &batch).await;
        assert_eq!((stats.post.stale, stats.post.duplicates), (1, 1));
    }
    assert_eq!(
        journal_entries(&pool).await,
        vec![(0, false), (1, true)],
        "the restatement and the stale version, each once"
    );
}
