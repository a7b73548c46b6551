//! Bounded resources: a backlog of large records read through a small read-ahead budget
//! is still read completely (the budget throttles, never deadlocks), every large record is
//! dead-lettered once, every line booked once. The peak RSS is printed, not asserted
//! (memory figures belong to benchmarks).

mod common;

use std::time::Duration;

use common::pipeline::{
    count, distinct_lines, encode, expected_totals, ledger_totals, publish_records, royalty_ingest,
    run_flags, run_once, spawn_run, terminate, wait_for_rows,
};
use royalty_ingest::sample::record_key;

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_through_a_small_read_ahead_budget_are_all_settled() {
    let (url, pool) = common::fresh_database().await;
    let topic = common::fresh_topic("it.bounded.raw", 2).await;
    let dlq = common::fresh_topic("it.bounded.dlq", 1).await;
    let lines = distinct_lines(95, 1, 200);
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        records.push((record_key(line), encode(4, line)));
        if i % 2 == 0 {
            // 300 KB that are not Avro: each is refused, and each dead letter is large too.
            records.push((format!("big-{i}"), vec![b'x'; 300 * 1024]));
        }
    }
    publish_records(&common::producer(), &topic, &records).await;

    let mut flags = run_flags(&topic, &dlq, "it-bounded");
    flags.extend(["--read-ahead-mib", "4"]);
    let mut run = spawn_run(&flags, &url);
    wait_for_rows(&pool, 200, Duration::from_secs(180), "every line booked").await;
    common::wait_until(
        Duration::from_secs(120),
        "every large record dead-lettered",
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM quarantine WHERE error_class = 'unknown_framing'",
                )
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == 100)
            }
        },
    )
    .await;
    if let Some(kib) = peak_rss_kib(run.id()) {
        println!(
            "peak RSS with --read-ahead-mib 4 over 30 MB of large records: {} MiB",
            kib / 1024
        );
    }
    terminate(&mut run).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    let published = count(
        &pool,
        "SELECT count(*) FROM quarantine q WHERE octet_length(q.record_value) > 300000
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = q.dead_letter_id)",
    )
    .await;
    assert_eq!(
        published, 100,
        "every large dead letter reached the DLQ topic"
    );
}

#[tokio::test]
async fn a_record_above_the_size_limit_is_dead_lettered_without_its_bytes() {
    let (url, pool) = common::fresh_database().await;
    let topic = common::fresh_topic("it.oversized.raw", 2).await;
    let dlq = common::fresh_topic("it.oversized.dlq", 1).await;
    let lines = distinct_lines(97, 1, 60);
    let mut records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|line| (record_key(line), encode(4, line)))
        .collect();
    // Three records of 100 KB (and a 5-byte key) against a 64 KiB limit.
    let big: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 100 * 1024]).collect();
    for (i, value) in big.iter().enumerate() {
        records.insert(i * 20, (format!("big-{i}"), value.clone()));
    }
    publish_records(&common::producer(), &topic, &records).await;

    let output = run_once(
        &topic,
        &dlq,
        "it-oversized",
        &["--max-record-kib", "64"],
        &url,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    type QuarantineRow = (Option<Vec<u8>>, Option<Vec<u8>>, String, String);
    let quarantined: Vec<QuarantineRow> = sqlx::query_as(
        "SELECT record_key, record_value, error_class, reason FROM quarantine ORDER BY record_key",
    )
    .fetch_all(&pool)
    .await
    .expect("quarantine");
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    for ((key, value, class, reason), original) in quarantined.iter().zip(&big) {
        assert_eq!(class, "record_too_large");
        assert_eq!(value, &None, "the oversized value is not stored");
        assert!(key.as_deref().is_some_and(|k| k.starts_with(b"big-")));
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(original));
        assert!(reason.contains(&digest), "{reason}");
        assert!(reason.contains("102405 bytes"), "{reason}");
    }
    // The dead letters reach the DLQ topic, small.
    let letters = common::read_topic(&dlq, 3, Duration::from_secs(30));
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert_eq!(letter.value, None);
        assert_eq!(
            letter.header("royalty.errors.class").as_deref(),
            Some("record_too_large")
        );
    }
    // Replay has nothing to send for them and says so.
    let before = common::topic_size(&topic);
    let replay = royalty_ingest(&["dlq", "replay", "--dlq-topic", &dlq, "--yes"], &url).await;
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{stdout}");
    assert!(stdout.contains("3 too large"), "{stdout}");
    assert_eq!(common::topic_size(&topic), before);
}
