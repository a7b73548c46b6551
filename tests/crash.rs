//! Crash safety: `royalty-ingest run` SIGKILLed again and again while 20,000 records stream
//! in. After a clean final run the ledger is exact (nothing lost, nothing doubled), every
//! refused record has exactly one quarantine row and its dead letter was published.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::pipeline::{
    expected_totals, kill_at_thresholds, ledger_totals, mixed_stream, publish_in_background,
    spawn_run, wait_exit,
};
use royalty_ingest::ledger::dead_letter::headers;
use royalty_ingest::sample::SampleRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let topic = common::fresh_topic("it.crash.raw", 4).await;
    let dlq = common::fresh_topic("it.crash.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let (records, lines) = mixed_stream(21, 19_000, 800, 200);
    assert_eq!(records.len(), 20_000);
    let group = format!("it-crash-{}", common::unique_suffix());
    let run_args = [
        "--topics",
        &topic,
        "--dlq-topic",
        &dlq,
        "--group",
        &group,
        "--batch-size",
        "400",
        "--linger-ms",
        "20",
        "--metrics-addr",
        "",
        "--no-create-topics",
        "--catalog-topic",
        "",
        "--session-timeout-ms",
        "6000",
        "--instance-id",
        "crash-test",
    ];

    let streaming = publish_in_background(common::producer(), &topic, records);

    // Kill points: right after start (before anything is written), then whenever the ledger
    // has grown past a random threshold.
    let mut rng = SampleRng::new(0xC0FFEE);
    let mut thresholds: Vec<i64> = (0..6)
        .map(|i| i * 3_000 + rng.below(2_500) as i64)
        .collect();
    thresholds[0] = 0;
    assert!(thresholds.len() >= 5, "at least five kills");
    kill_at_thresholds(&run_args, &url, &pool, &thresholds).await;
    streaming.await.expect("producer task");

    let mut last = spawn_run(
        &[&run_args[..], &["--exit-when-idle-ms", "3000"]].concat(),
        &url,
    );
    let status = wait_exit(&mut last, Duration::from_secs(300)).await;
    assert!(status.success(), "final run exits cleanly: {status}");

    assert_eq!(
        ledger_totals(&pool).await,
        expected_totals(&lines),
        "ledger exact"
    );
    let revisions: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_revisions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(revisions, 0, "redeliveries are not restatements");
    let quarantined: Vec<String> = sqlx::query_scalar("SELECT dead_letter_id FROM quarantine")
        .fetch_all(&pool)
        .await
        .expect("quarantine");
    assert_eq!(
        quarantined.len(),
        200,
        "one quarantine row per refused record"
    );

    let expected: HashSet<String> = quarantined.into_iter().collect();
    let letters = common::read_topic_until(&dlq, Duration::from_secs(60), |read| {
        let ids: HashSet<String> = read.iter().filter_map(|l| l.header(headers::ID)).collect();
        expected.is_subset(&ids)
    });
    let published: HashSet<String> = letters
        .iter()
        .filter_map(|l| l.header(headers::ID))
        .collect();
    assert_eq!(
        expected.difference(&published).count(),
        0,
        "every dead letter published at least once ({} letters read)",
        letters.len()
    );
}
