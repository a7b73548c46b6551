//! The Kafka broker stopped and restarted mid-stream: the run keeps going (librdkafka
//! reconnects, the outbox relay retries), nothing is acknowledged twice or lost, and the
//! ledger is exact. The broker stopped is the second one (`scripts/services
//! chaos-kafka-up`), so the test binaries running beside this one keep theirs.
// scripts/test: chaos-services — stops and restarts the second broker.

mod common;

use std::time::Duration;

use common::pipeline::{
    expected_totals, ledger_totals, mixed_stream, publish_records, services, spawn_run, terminate,
    wait_for_rows,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_survives_a_broker_restart_and_the_ledger_stays_exact() {
    common::use_chaos_broker();
    let topic = common::fresh_topic("it.broker.raw", 2).await;
    let dlq = common::fresh_topic("it.broker.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let (records, lines) = mixed_stream(101, 4_000, 100, 30);
    let (first, rest) = records.split_at(2_000);
    let producer = common::producer();
    publish_records(&producer, &topic, first).await;
    let mut run = spawn_run(
        &[
            "--topics",
            &topic,
            "--dlq-topic",
            &dlq,
            "--group",
            "it-broker",
            "--batch-size",
            "200",
            "--linger-ms",
            "20",
            "--metrics-addr",
            "",
            "--no-create-topics",
            "--catalog-topic",
            "",
        ],
        &url,
    );
    wait_for_rows(&pool, 500, Duration::from_secs(120), "first lines ingested").await;

    services("chaos-kafka-stop");
    assert!(
        run.try_wait().expect("status").is_none(),
        "the run survives the broker going away"
    );
    services("chaos-kafka-up");
    publish_records(&producer, &topic, rest).await;

    let expected = expected_totals(&lines);
    wait_for_rows(
        &pool,
        expected.0,
        Duration::from_secs(240),
        "every line ingested after the restart",
    )
    .await;
    let quarantined = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM quarantine WHERE dead_letter_id NOT IN (SELECT message_id FROM outbox)")
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
                == 30
        }
    };
    common::wait_until(
        Duration::from_secs(120),
        "every dead letter published",
        quarantined,
    )
    .await;

    // SIGTERM while the broker is gone again: the consumer cannot leave its group, and the
    // run still exits, cleanly, within its documented deadlines (consumer close 10 s,
    // outbox drain 30 s), not after librdkafka's own minutes.
    services("chaos-kafka-stop");
    terminate(&mut run).await;
    services("chaos-kafka-up");
    assert_eq!(
        ledger_totals(&pool).await,
        expected,
        "ledger exact after the broker restart"
    );
}
