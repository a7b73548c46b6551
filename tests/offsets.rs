//! Start positions come from `consumer_offsets`, and a stored offset the broker no longer
//! has (retention deleted records never ingested) stops the run with a message naming the
//! partition and offsets — unless the operator explicitly allows the skip.

mod common;

use std::time::Duration;

use common::pipeline::{
    distinct_lines, expected_totals, ledger_totals, publish, run_args, run_until_idle,
};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_run_resumes_from_the_stored_offset_not_from_kafka() {
    let topic = common::fresh_topic("it.offsets.raw", 1).await;
    let dlq = common::fresh_topic("it.offsets.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(71, 1, 10);
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines).await;
    // As if an earlier run had handled the first six records.
    sqlx::query("INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ('it-resume', $1, 0, 6)")
        .bind(&topic)
        .execute(&pool)
        .await
        .expect("seed offset");

    run_until_idle(run_args(&topic, &dlq, &url, "it-resume")).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines[6..]));
    // Mirrored into the group's Kafka offsets, for lag tools only.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", "it-resume")
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&topic, 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed offsets");
    let offset = committed.elements()[0].offset();
    assert_eq!(offset, Offset::Offset(10), "Kafka sees the stored offset");
}

#[tokio::test]
async fn an_offset_deleted_by_retention_stops_the_run_unless_the_skip_is_allowed() {
    let topic = common::fresh_topic("it.offsets.raw", 1).await;
    let dlq = common::fresh_topic("it.offsets.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(72, 1, 10);
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines).await;
    sqlx::query("INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ('it-gap', $1, 0, 2)")
        .bind(&topic)
        .execute(&pool)
        .await
        .expect("seed offset");
    // Retention: records 0..5 are gone, offsets 2, 3 and 4 were never ingested.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .create()
        .expect("admin");
    let mut before = TopicPartitionList::new();
    before
        .add_partition_offset(&topic, 0, Offset::Offset(5))
        .expect("tpl");
    admin
        .delete_records(
            &before,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("delete records");

    royalty_ingest::observe::init_tracing();
    let refused = royalty_ingest::pipeline::run(
        run_args(&topic, &dlq, &url, "it-gap"),
        CancellationToken::new(),
    )
    .await;
    let message = format!("{:#}", refused.expect_err("the run must stop"));
    assert!(
        message.contains(&format!("{topic}[0]")),
        "names the partition: {message}"
    );
    assert!(
        message.contains("next_offset 2") && message.contains("5..10"),
        "names the offsets: {message}"
    );
    assert!(
        message.contains("--allow-offset-skip"),
        "says what to do: {message}"
    );
    assert_eq!(ledger_totals(&pool).await.0, 0, "nothing ingested");

    let mut args = run_args(&topic, &dlq, &url, "it-gap");
    args.allow_offset_skip = true;
    run_until_idle(args).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines[5..]));
}
