//! A steady trickle, published the way most producers publish (one record at a time, a
//! millisecond of linger), is booked as it arrives: once `run` blocked its poll thread on a
//! broker round trip at every end of partition and fell minutes behind 500 lines/s.
//! Latency is printed, not asserted (timings belong in `scripts/bench`); what is asserted
//! is that the whole stream is booked, exactly, within a generous bound.

mod common;

use std::time::Duration;

use common::pipeline::{
    distinct_lines, encode, expected_totals, ledger_totals, run_args, wait_for_rows,
};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use royalty_ingest::sample::record_key;
use tokio_util::sync::CancellationToken;

const RATE_PER_SECOND: u64 = 500;
const SECONDS: u64 = 20;

#[tokio::test]
async fn a_steady_stream_of_500_lines_per_second_is_booked_as_it_arrives() {
    let topic = common::fresh_topic("it.steady.raw", 4).await;
    let dlq = common::fresh_topic("it.steady.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let mut args = run_args(&topic, &dlq, &url, "it-steady");
    args.exit_when_idle_ms = None;
    args.linger_ms = 200;
    args.batch_size = 5000;
    royalty_ingest::observe::init_tracing();
    let stop = CancellationToken::new();
    let run = tokio::spawn(royalty_ingest::pipeline::run(args, stop.clone()));

    let total = (RATE_PER_SECOND * SECONDS) as usize;
    let lines = distinct_lines(501, 1, total + 1);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let send = |line| {
        let key = record_key(line);
        let value = encode(3, line);
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(key.as_bytes()).payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(err, _)| err)
                .expect("record acknowledged");
        }
    };
    // A first line, booked once the run owns its partitions: the stream starts on a
    // consumer that is caught up, as in production.
    send(&lines[0]).await;
    wait_for_rows(&pool, 1, Duration::from_secs(60), "the first line").await;

    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    let mut in_flight = FuturesUnordered::new();
    for line in &lines[1..] {
        ticks.tick().await;
        in_flight.push(send(line));
        // Collect acknowledgements as they come, without holding up the schedule.
        while let Some(Some(())) = futures::FutureExt::now_or_never(in_flight.next()) {}
    }
    while in_flight.next().await.is_some() {}

    wait_for_rows(
        &pool,
        total as i64 + 1,
        Duration::from_secs(120),
        "every line of the steady stream",
    )
    .await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    let (p50, p99, max): (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
           FROM (SELECT (extract(epoch FROM first_ingested_at - source_timestamp) * 1000)::float8 AS ms
                   FROM royalty_ledger) latencies",
    )
    .fetch_one(&pool)
    .await
    .expect("latency percentiles");
    println!(
        "steady {RATE_PER_SECOND} lines/s for {SECONDS} s: latency record timestamp → ledger transaction p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
    );

    stop.cancel();
    run.await.expect("join").expect("run stops cleanly");
}
