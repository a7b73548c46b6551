//! Zombie fencing: a writer whose view of a partition's offset is stale (another instance
//! committed after it read) has its whole batch rejected, and nothing of it is written.

mod common;

use std::sync::Arc;

use chrono::Utc;
use royalty_ingest::domain::validate;
use royalty_ingest::drift::DriftSettings;
use royalty_ingest::drift::alert::DRIFT_ALERT;
use royalty_ingest::ledger::{
    Batch, BatchTarget, CommitOutcome, LineToPost, OffsetAdvance, commit_batch,
};
use royalty_ingest::record::{SourceRecord, TopicPartition};

fn drift_settings() -> DriftSettings {
    let store = royalty_ingest::avro::SchemaStore::builtin().expect("schemas");
    DriftSettings {
        alerts_topic: "alerts".into(),
        alert_unknown_isrc: true,
        alert_schema: store.latest(DRIFT_ALERT).expect("alert schema"),
    }
}

fn target(drift: &DriftSettings) -> BatchTarget<'_> {
    BatchTarget {
        group: "g",
        dlq_topic: "dlq",
        drift,
    }
}

fn batch(
    lines: &[royalty_ingest::domain::DecodedLine],
    first_offset: i64,
    offsets: Vec<OffsetAdvance>,
) -> Batch {
    Batch {
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, l)| LineToPost {
                line: validate(l).expect("valid"),
                source: SourceRecord {
                    topic: Arc::from("raw"),
                    partition: 0,
                    offset: first_offset + i as i64,
                    timestamp: Utc::now(),
                },
                record: Default::default(),
            })
            .collect(),
        dead_letters: Vec::new(),
        catalog: Vec::new(),
        summaries: Vec::new(),
        offsets,
    }
}

#[tokio::test]
async fn a_stale_writer_is_fenced_and_writes_nothing() {
    let (_, pool) = common::fresh_database().await;
    let drift = drift_settings();
    let tp = TopicPartition::new("raw", 0);
    let lines = common::pipeline::distinct_lines(41, 1, 20);

    // Instance A: first batch of the partition (no stored row yet), offsets 0..10.
    let first = batch(
        &lines[..10],
        0,
        vec![OffsetAdvance {
            partition: tp.clone(),
            expected: None,
            next: 10,
        }],
    );
    let outcome = commit_batch(&pool, target(&drift), &first)
        .await
        .expect("commit");
    assert!(matches!(outcome, CommitOutcome::Committed(_)));

    // Zombie B also believed there was no row and processed the same offsets.
    let zombie_new = batch(
        &lines[10..],
        0,
        vec![OffsetAdvance {
            partition: tp.clone(),
            expected: None,
            next: 10,
        }],
    );
    let outcome = commit_batch(&pool, target(&drift), &zombie_new)
        .await
        .expect("commit attempt");
    assert_eq!(outcome, CommitOutcome::Fenced(vec![tp.clone()]));

    // A moves on to 20; a zombie that still believes 10 is fenced too.
    let second = batch(
        &lines[10..15],
        10,
        vec![OffsetAdvance {
            partition: tp.clone(),
            expected: Some(10),
            next: 20,
        }],
    );
    assert!(matches!(
        commit_batch(&pool, target(&drift), &second)
            .await
            .expect("commit"),
        CommitOutcome::Committed(_)
    ));
    let zombie_stale = batch(
        &lines[15..],
        10,
        vec![OffsetAdvance {
            partition: tp.clone(),
            expected: Some(10),
            next: 20,
        }],
    );
    let outcome = commit_batch(&pool, target(&drift), &zombie_stale)
        .await
        .expect("commit attempt");
    assert_eq!(outcome, CommitOutcome::Fenced(vec![tp.clone()]));

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM royalty_ledger")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 15, "nothing of the fenced batches was written");
    let next: i64 =
        sqlx::query_scalar("SELECT next_offset FROM consumer_offsets WHERE consumer_group = 'g'")
            .fetch_one(&pool)
            .await
            .expect("offset");
    assert_eq!(next, 20);
}

#[tokio::test]
async fn a_batch_spanning_two_partitions_is_all_or_nothing() {
    let (_, pool) = common::fresh_database().await;
    let drift = drift_settings();
    let p0 = TopicPartition::new("raw", 0);
    let p1 = TopicPartition::new("raw", 1);
    let lines = common::pipeline::distinct_lines(42, 1, 6);
    let setup = batch(
        &lines[..2],
        0,
        vec![
            OffsetAdvance {
                partition: p0.clone(),
                expected: None,
                next: 1,
            },
            OffsetAdvance {
                partition: p1.clone(),
                expected: None,
                next: 1,
            },
        ],
    );
    assert!(matches!(
        commit_batch(&pool, target(&drift), &setup)
            .await
            .expect("commit"),
        CommitOutcome::Committed(_)
    ));

    // p0 is current, p1 is stale: the whole batch, p0's part included, is rejected.
    let mixed = batch(
        &lines[2..],
        1,
        vec![
            OffsetAdvance {
                partition: p0.clone(),
                expected: Some(1),
                next: 3,
            },
            OffsetAdvance {
                partition: p1.clone(),
                expected: Some(0),
                next: 3,
            },
        ],
    );
    assert_eq!(
        commit_batch(&pool, target(&drift), &mixed)
            .await
            .expect("attempt"),
        CommitOutcome::Fenced(vec![p1])
    );
    let offsets: Vec<i64> =
        sqlx::query_scalar("SELECT next_offset FROM consumer_offsets ORDER BY partition")
            .fetch_all(&pool)
            .await
            .expect("offsets");
    assert_eq!(offsets, vec![1, 1], "no offset moved");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM royalty_ledger")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 2);
}
