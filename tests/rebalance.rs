//! Two instances in one consumer group over a 4-partition topic; one is SIGKILLed mid-stream
//! and restarted. Partitions move twice; the ledger stays exact. Once with the eager
//! assignor, once with cooperative-sticky. Both instances then stop on SIGTERM with exit 0,
//! and no instance's thread panicked on the way (a panic in a rebalance callback kills the
//! poll thread, not the process, and the other instance would hide it).

mod common;

use std::time::Duration;

use common::pipeline::{
    expected_totals, kill_hard, ledger_totals, mixed_stream, publish_in_background,
    spawn_run_logged, terminate, wait_for_rows,
};

async fn two_instances_survive_a_kill_and_restart(assignor: &str) {
    let topic = common::fresh_topic("it.rebalance.raw", 4).await;
    let dlq = common::fresh_topic("it.rebalance.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let (records, lines) = mixed_stream(31, 8_000, 300, 0);
    let group = format!("it-rebalance-{}", common::unique_suffix());
    let args = [
        "--topics",
        &topic,
        "--dlq-topic",
        &dlq,
        "--group",
        &group,
        "--batch-size",
        "200",
        "--linger-ms",
        "20",
        "--metrics-addr",
        "",
        "--no-create-topics",
        "--catalog-topic",
        "",
        "--session-timeout-ms",
        "3000",
        "--assignor",
        assignor,
    ];
    let logs = tempfile::tempdir().expect("log directory");
    let log = |name: &str| logs.path().join(format!("{name}.log"));
    let mut first = spawn_run_logged(&args, &url, &log("first"));
    let mut second = spawn_run_logged(&args, &url, &log("second"));

    let streaming = publish_in_background(common::producer(), &topic, records);
    wait_for_rows(
        &pool,
        2_000,
        Duration::from_secs(180),
        "a quarter of the lines ingested",
    )
    .await;
    kill_hard(&mut first);
    wait_for_rows(
        &pool,
        4_000,
        Duration::from_secs(180),
        "progress without the killed instance",
    )
    .await;
    let mut restarted = spawn_run_logged(&args, &url, &log("restarted"));
    streaming.await.expect("producer task");

    let expected = expected_totals(&lines);
    wait_for_rows(
        &pool,
        expected.0,
        Duration::from_secs(240),
        "every line ingested",
    )
    .await;
    // Both send SIGTERM-then-wait in turn: each must stop cleanly with exit 0.
    terminate(&mut second).await;
    terminate(&mut restarted).await;

    assert_eq!(ledger_totals(&pool).await, expected, "ledger exact");
    let revisions: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_revisions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(revisions, 0);
    let stored: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_offsets WHERE consumer_group = $1",
    )
    .bind(&group)
    .fetch_one(&pool)
    .await
    .expect("offsets");
    assert_eq!(stored, 8_300, "stored offsets cover every record exactly");
    for name in ["first", "second", "restarted"] {
        let said = std::fs::read_to_string(log(name)).expect("instance log");
        assert!(
            !said.contains("panicked"),
            "{name} instance panicked:\n{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_assignor_two_instances_one_killed_and_restarted() {
    two_instances_survive_a_kill_and_restart("range,roundrobin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_two_instances_one_killed_and_restarted() {
    two_instances_survive_a_kill_and_restart("cooperative-sticky").await;
}
