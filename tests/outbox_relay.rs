//! The outbox relay against the real broker and database (issue 19, item 6): while the
//! broker does not answer, the relay holds no transaction open and no outbox row locked;
//! once it answers, every row is published exactly as it was enqueued. Several relays share
//! the outbox without sending a row twice, and rows a crashed relay had claimed wait for its
//! lease, then are published by another.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use royalty_ingest::commands::dlq::letter::Place;
use royalty_ingest::commands::dlq::store;
use royalty_ingest::config::KafkaArgs;
use royalty_ingest::db::outbox::{OutboxMessage, enqueue};
use royalty_ingest::observe::Metrics;
use royalty_ingest::publish::Relay;
use sqlx::{Connection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `count` messages to `topic`, each with its own key, payload, headers and timestamp.
fn messages(topic: &str, prefix: &str, count: usize) -> Vec<OutboxMessage> {
    (0..count)
        .map(|i| OutboxMessage {
            message_id: format!("{prefix}-{i:04}"),
            topic: topic.to_string(),
            key: Some(format!("key-{i}").into_bytes()),
            payload: Some(format!("payload {i} of {prefix}").into_bytes()),
            headers: vec![
                (
                    "royalty.test.id".into(),
                    Some(format!("{prefix}-{i:04}").into_bytes()),
                ),
                ("royalty.test.empty".into(), None),
            ],
            timestamp: Some(stamp(i)),
        })
        .collect()
}

fn stamp(i: usize) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_790_000_000_000 + i as i64 * 1_000)
        .single()
        .expect("timestamp")
}

async fn enqueue_all(pool: &PgPool, messages: &[OutboxMessage]) {
    let mut conn = pool.acquire().await.expect("connection");
    enqueue(&mut conn, messages).await.expect("enqueue");
}

/// The test database's URL with an application name, so the relay's sessions can be told
/// apart in `pg_stat_activity`.
fn named(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("url");
    url.query_pairs_mut().append_pair("application_name", name);
    url.to_string()
}

async fn relay_on(url: &str, name: &str, kafka: KafkaArgs) -> Relay {
    let pool = royalty_ingest::db::connect(&named(url, name), 2)
        .await
        .expect("relay pool");
    Relay::new(&kafka, pool, Arc::new(Metrics::new().expect("metrics"))).expect("relay")
}

/// A broker address that accepts connections and never answers (a hung broker: worse for
/// a client than a refused connection, which fails fast).
async fn silent_broker() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// What PostgreSQL says about the relay's sessions right now: any left idle inside a
/// transaction, and the age of its oldest open transaction.
async fn relay_transactions(observer: &PgPool, name: &str) -> (i64, f64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
                coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8
           FROM pg_stat_activity
          WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(name)
    .fetch_one(observer)
    .await
    .expect("pg_stat_activity")
}

/// Whether every unpublished outbox row can be locked within a second: a row lock the relay
/// holds across a send to the broker (seconds) would make this time out; one it takes for
/// the milliseconds of a claim statement does not.
async fn rows_lockable(observer: &PgPool) -> Result<i64, String> {
    let mut tx = observer.begin().await.expect("begin");
    sqlx::query("SET LOCAL lock_timeout = '1s'")
        .execute(&mut *tx)
        .await
        .expect("lock_timeout");
    let locked: Result<i64, _> =
        sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM outbox FOR UPDATE) s")
            .fetch_one(&mut *tx)
            .await;
    tx.rollback().await.expect("rollback");
    locked.map_err(|e| e.to_string())
}

/// The fewest attempts any of the rows has had, and how many carry an error.
async fn attempts(observer: &PgPool) -> (i32, i64) {
    sqlx::query_as("SELECT coalesce(min(attempts), 0), count(last_error) FROM outbox")
        .fetch_one(observer)
        .await
        .expect("attempts")
}

/// The records on `topic` by their stable id header.
fn published(topic: &str, expected: usize) -> HashMap<String, Vec<common::ReadRecord>> {
    let records = common::read_topic(topic, expected, Duration::from_secs(30));
    // A short extra read: a duplicate would arrive after the expected count.
    let records = if records.len() == expected {
        common::read_topic(topic, expected + 1, Duration::from_secs(2))
    } else {
        records
    };
    let mut by_id: HashMap<String, Vec<common::ReadRecord>> = HashMap::new();
    for record in records {
        let id = record.header("royalty.test.id").expect("id header");
        by_id.entry(id).or_default().push(record);
    }
    by_id
}

#[tokio::test]
async fn a_silent_broker_leaves_no_transaction_open_and_no_row_locked_then_everything_is_published()
{
    let topic = common::fresh_topic("it.relay.out", 2).await;
    let (url, observer) = common::fresh_database().await;
    let sent = messages(&topic, "silent", 40);
    enqueue_all(&observer, &sent).await;

    let (silent, listener) = silent_broker().await;
    let name = "it-relay-silent";
    // A short delivery timeout makes the failed rounds come quickly; the relay's own
    // retries are what is under test.
    let failing = Arc::new(
        relay_on(
            &url,
            name,
            KafkaArgs {
                brokers: silent,
                properties: vec![("message.timeout.ms".into(), "2000".into())],
            },
        )
        .await,
    );
    let stop = CancellationToken::new();
    let task = {
        let (relay, stop) = (failing.clone(), stop.clone());
        tokio::spawn(async move { relay.run(Arc::new(Notify::new()), stop).await })
    };

    // Until every row failed twice (two whole rounds against the silent broker), sample
    // what the relay holds in PostgreSQL.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut samples = 0;
    loop {
        let (idle_in_transaction, oldest) = relay_transactions(&observer, name).await;
        assert_eq!(
            idle_in_transaction, 0,
            "the relay sits in an open transaction while the broker does not answer"
        );
        assert!(
            oldest < 1.0,
            "the relay has held a transaction open for {oldest:.1} s while the broker does not answer"
        );
        let lockable = rows_lockable(&observer).await;
        assert_eq!(
            lockable,
            Ok(sent.len() as i64),
            "the relay holds outbox rows locked while the broker does not answer"
        );
        samples += 1;
        let (fewest, with_error) = attempts(&observer).await;
        if fewest >= 2 {
            assert_eq!(with_error, sent.len() as i64, "each row keeps its error");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not fail every row twice within 90 s (fewest attempts {fewest})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(samples > 10, "sampled {samples} times");
    stop.cancel();
    task.await.expect("relay task");
    listener.abort();
    assert_eq!(
        failing.unpublished().await.expect("count"),
        sent.len() as i64
    );

    // The broker answers: a relay (a restarted instance) publishes every row at once, not
    // after some lease of the failed one runs out.
    let working = relay_on(&url, "it-relay-working", common::kafka_args()).await;
    let n = working.drain().await.expect("drain");
    assert_eq!(n, sent.len() as u64);
    assert_eq!(working.unpublished().await.expect("count"), 0);
    let on_topic = published(&topic, sent.len());
    assert_eq!(on_topic.len(), sent.len(), "every row published");
    for message in &sent {
        let copies = &on_topic[&message.message_id];
        assert_eq!(copies.len(), 1, "{} published once", message.message_id);
        let record = &copies[0];
        assert_eq!(record.key, message.key);
        assert_eq!(record.value, message.payload);
        assert_eq!(
            record.timestamp,
            message.timestamp.map(|t| t.timestamp_millis())
        );
        let headers: Vec<(String, Vec<u8>)> = message
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().unwrap_or_default()))
            .collect();
        assert_eq!(record.headers, headers);
    }
}

#[tokio::test]
async fn relays_side_by_side_send_each_row_once_and_a_dead_relays_claim_is_taken_over_at_once() {
    let topic = common::fresh_topic("it.relay.shared", 4).await;
    let (url, observer) = common::fresh_database().await;
    let sent = messages(&topic, "shared", 600);
    enqueue_all(&observer, &sent).await;
    // A live relay's claim of 25 rows (its session is open: the lease holds), and a dead
    // relay's claim of 25 more (no such session: its lease is over at once).
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("a session");
    let claimed = sqlx::query(
        "UPDATE outbox SET claimed_until = now() + interval '1 hour',
                claimed_by = 'live@' || pg_backend_pid()
          WHERE outbox_id IN (SELECT outbox_id FROM outbox ORDER BY outbox_id LIMIT 25)",
    )
    .execute(&mut holder)
    .await
    .expect("a live relay's claim")
    .rows_affected();
    assert_eq!(claimed, 25);
    let crashed = sqlx::query(
        "UPDATE outbox SET claimed_until = now() + interval '1 hour', claimed_by = 'crashed@0'
          WHERE outbox_id IN (SELECT outbox_id FROM outbox ORDER BY outbox_id OFFSET 25 LIMIT 25)",
    )
    .execute(&observer)
    .await
    .expect("a crashed relay's claim")
    .rows_affected();
    assert_eq!(crashed, 25);

    let a = relay_on(&url, "it-relay-a", common::kafka_args()).await;
    let b = relay_on(&url, "it-relay-b", common::kafka_args()).await;
    let c = relay_on(&url, "it-relay-c", common::kafka_args()).await;
    let (na, nb, nc) = tokio::join!(a.drain(), b.drain(), c.drain());
    let (na, nb, nc) = (na.expect("a"), nb.expect("b"), nc.expect("c"));
    assert_eq!(na + nb + nc, 575, "a={na} b={nb} c={nc}");
    assert_eq!(
        a.unpublished().await.expect("count"),
        25,
        "the live relay's leased rows wait"
    );

    // The live relay's session ends (killed): its rows are taken over at once.
    holder.close().await.expect("the session ends");
    let mut taken = 0;
    for _ in 0..50 {
        taken += b.drain().await.expect("takeover");
        if taken == 25 {
            break;
        }
        // The server notices the closed session asynchronously; wait for it to go.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(taken, 25);
    assert_eq!(a.unpublished().await.expect("count"), 0);

    let on_topic = published(&topic, sent.len());
    assert_eq!(on_topic.len(), sent.len(), "every row published");
    let repeated: Vec<&String> = on_topic
        .iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(repeated.is_empty(), "sent twice: {repeated:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&observer)
        .await
        .expect("outbox");
    assert_eq!(left, 0, "a published row leaves the outbox");
}

/// The schema before `20261208000001_outbox_queue`: published rows were kept and stamped.
const UNDO_OUTBOX_QUEUE: &str = "
    DROP INDEX outbox_claim;
    ALTER TABLE outbox ADD COLUMN published_at timestamptz;
    CREATE INDEX outbox_unpublished ON outbox (attempts, outbox_id) WHERE published_at IS NULL;
    ALTER TABLE quarantine DROP COLUMN dlq_topic;
    DELETE FROM _sqlx_migrations WHERE version = 20261208000001;";

#[tokio::test]
async fn an_outbox_that_kept_published_rows_keeps_only_the_unpublished_after_the_queue_migration() {
    let dlq = common::fresh_topic("it.relay.migrated", 1).await;
    let (url, pool) = common::fresh_database().await;
    sqlx::raw_sql(UNDO_OUTBOX_QUEUE)
        .execute(&pool)
        .await
        .expect("back to the schema before the migration");
    // Two dead letters, one published long ago, one the broker refused; an alert published.
    for (offset, id) in [(1_i64, "dl-published"), (2, "dl-refused")] {
        sqlx::query(
            "INSERT INTO quarantine (source_topic, source_partition, source_offset,
                                     consumer_group, record_value, error_stage, error_class,
                                     reason, dead_letter_id)
             VALUES ('raw', 0, $1, 'group', 'bytes', 'decode', 'avro', 'bad bytes', $2)",
        )
        .bind(offset)
        .bind(id)
        .execute(&pool)
        .await
        .expect("quarantine row");
    }
    sqlx::query(
        "INSERT INTO outbox (message_id, topic, payload, published_at, attempts, last_error)
         VALUES ('dl-published', $1, 'bytes', now() - interval '30 days', 0, NULL),
                ('dl-refused', $1, 'bytes', NULL, 3, 'MessageSizeTooLarge'),
                ('alert-1', 'alerts', 'alert', now(), 0, NULL)",
    )
    .bind(&dlq)
    .execute(&pool)
    .await
    .expect("outbox rows");

    royalty_ingest::db::migrate(&pool).await.expect("migrate");
    pool.close().await;
    let pool = PgPool::connect(&url).await.expect("reconnect");

    let waiting: Vec<(String, i32, Option<String>)> =
        sqlx::query_as("SELECT message_id, attempts, last_error FROM outbox ORDER BY outbox_id")
            .fetch_all(&pool)
            .await
            .expect("outbox");
    assert_eq!(
        waiting,
        vec![("dl-refused".into(), 3, Some("MessageSizeTooLarge".into()))],
        "only the unpublished row is left, with its attempts and error"
    );
    let topics: Vec<Option<String>> =
        sqlx::query_scalar("SELECT dlq_topic FROM quarantine ORDER BY source_offset")
            .fetch_all(&pool)
            .await
            .expect("quarantine");
    assert_eq!(topics, vec![Some(dlq.clone()), Some(dlq.clone())]);
    // `dlq list` still tells the published letter from the refused one.
    let letters = store::letters_off_topic(&pool, &dlq, &HashSet::new())
        .await
        .expect("letters");
    let places: Vec<(String, Place)> = letters.into_iter().map(|l| (l.id, l.place)).collect();
    assert_eq!(
        places,
        vec![
            ("dl-published".into(), Place::Expired),
            (
                "dl-refused".into(),
                Place::Unpublished {
                    error: Some("MessageSizeTooLarge".into())
                }
            ),
        ]
    );
    let other_topic = store::letters_off_topic(&pool, "another.dlq", &HashSet::new())
        .await
        .expect("letters");
    assert!(other_topic.is_empty(), "letters are listed by their topic");

    // The relay publishes the waiting row and lets it go.
    let relay = relay_on(&url, "it-relay-migrated", common::kafka_args()).await;
    assert_eq!(relay.drain().await.expect("drain"), 1);
    assert_eq!(relay.unpublished().await.expect("count"), 0);
    let letters = store::letters_off_topic(&pool, &dlq, &HashSet::new())
        .await
        .expect("letters");
    assert!(letters.iter().all(|l| l.place == Place::Expired));
    let on_topic = common::read_topic(&dlq, 1, Duration::from_secs(30));
    assert_eq!(on_topic.len(), 1, "the refused letter reached its topic");
}
