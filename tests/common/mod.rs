//! Shared plumbing of the integration tests: a fresh database and fresh topics per test on
//! the real PostgreSQL server and Kafka broker that `scripts/services up` starts.
#![allow(dead_code)]

pub mod console;
pub mod pipeline;
pub mod produce;
pub mod webdriver;

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use royalty_ingest::avro::SchemaStore;
use royalty_ingest::config::KafkaArgs;
use royalty_ingest::drift::catalog::{CATALOG_UPDATE, RawCatalogEntry, encode_update};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The broker every helper of this test binary talks to, fixed at its first use.
static BROKERS: OnceLock<String> = OnceLock::new();

/// The broker the services script starts (or `KAFKA_BROKERS`); in a binary that called
/// [`use_chaos_broker`], the second one.
pub fn brokers() -> String {
    BROKERS
        .get_or_init(|| {
            std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
        })
        .clone()
}

/// Points every helper of this test binary at the second broker (`CHAOS_KAFKA_BROKERS`,
/// started here by `scripts/services chaos-kafka-up`), for tests that stop and restart
/// their broker: the shared one stays up for the test binaries running beside them.
/// Call it first in every test of such a binary.
pub fn use_chaos_broker() {
    pipeline::services("chaos-kafka-up");
    let chaos =
        std::env::var("CHAOS_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9094".to_string());
    let chosen = BROKERS.get_or_init(|| chaos.clone());
    assert_eq!(
        *chosen, chaos,
        "use_chaos_broker() must come before anything asks for the broker"
    );
}

/// Kafka settings for the library's own functions.
pub fn kafka_args() -> KafkaArgs {
    KafkaArgs {
        brokers: brokers(),
        properties: Vec::new(),
    }
}

/// The admin database URL (the services script's `royalty` database).
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://royalty:royalty@127.0.0.1:5432/royalty".to_string())
}

/// A short random suffix for topic and database names.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// Back to the drift ids as `20261210000001_unknown_track_ids` found them (an unknown
/// track's id a hash of its ISRC, as detect.rs spelled it before), rows kept.
pub const UNDO_UNKNOWN_TRACK_IDS: &str = "
    UPDATE drift_acknowledgements a
       SET drift_id = 'drift-' || left(encode(sha256(convert_to(
                          'drift1|' || e.isrc || '|unknown_isrc|||', 'UTF8')), 'hex'), 32)
      FROM (SELECT DISTINCT drift_id, isrc FROM drift_events WHERE kind = 'unknown_isrc') e
     WHERE a.drift_id = e.drift_id;
    UPDATE drift_events
       SET drift_id = 'drift-' || left(encode(sha256(convert_to(
                          'drift1|' || isrc || '|unknown_isrc|||', 'UTF8')), 'hex'), 32)
     WHERE kind = 'unknown_isrc';
    DELETE FROM _sqlx_migrations WHERE version = 20261210000001;";

/// Back to the schema as it was before `20261209000002_drift_events_lean`, rows kept.
pub const UNDO_DRIFT_EVENTS_LEAN: &str = "
    DROP INDEX drift_events_alert;
    CREATE INDEX drift_events_alert ON drift_events (alert_id) WHERE alert_id IS NOT NULL;
    ALTER TABLE drift_events ADD CONSTRAINT drift_events_catalog_version_id_fkey
        FOREIGN KEY (catalog_version_id) REFERENCES catalog_versions (version_id);
    DELETE FROM _sqlx_migrations WHERE version = 20261209000002;";

/// Back to the schema as it was before `20261207000001_lean_appends`, rows kept, once
/// [`UNDO_DRIFT_EVENTS_LEAN`] has run.
pub const UNDO_LEAN_APPENDS: &str = "
    ALTER TABLE drift_events
        ALTER COLUMN drift_id TYPE text COLLATE \"default\",
        ALTER COLUMN dsp_name TYPE text COLLATE \"default\",
        ALTER COLUMN alert_id TYPE text COLLATE \"default\";
    ALTER TABLE drift_acknowledgements ALTER COLUMN drift_id TYPE text COLLATE \"default\";
    CREATE INDEX drift_events_isrc ON drift_events (isrc);
    ALTER TABLE ledger_revisions ADD CONSTRAINT ledger_revisions_line_fkey
        FOREIGN KEY (report_period, line_key) REFERENCES royalty_ledger (report_period, line_key);
    DELETE FROM _sqlx_migrations WHERE version = 20261207000001;";

/// Back to the schema as it was before `20261206000001_ledger_by_period`, rows kept, once
/// [`UNDO_LEAN_APPENDS`] has run ([`undo_ledger_by_period`] runs both).
pub const UNDO_LEDGER_BY_PERIOD: &str = "
    ALTER TABLE ledger_revisions DROP CONSTRAINT ledger_revisions_line_fkey;
    ALTER TABLE ledger_reversals DROP CONSTRAINT ledger_reversals_line_fkey;
    ALTER TABLE royalty_ledger DROP CONSTRAINT royalty_ledger_pkey;
    ALTER TABLE royalty_ledger ADD CONSTRAINT royalty_ledger_pkey PRIMARY KEY (line_key);
    ALTER TABLE ledger_revisions ADD CONSTRAINT ledger_revisions_line_key_fkey
        FOREIGN KEY (line_key) REFERENCES royalty_ledger (line_key);
    ALTER TABLE ledger_reversals ADD CONSTRAINT ledger_reversals_line_key_fkey
        FOREIGN KEY (line_key) REFERENCES royalty_ledger (line_key);
    ALTER TABLE ledger_revisions DROP COLUMN report_period;
    ALTER TABLE ledger_reversals DROP COLUMN report_period;
    DELETE FROM _sqlx_migrations WHERE version = 20261206000001;";

/// Takes a test database back to the schema before `20261206000001_ledger_by_period` (and
/// so before every later migration), rows kept.
pub async fn undo_ledger_by_period(pool: &PgPool) {
    for undo in [UNDO_LEAN_APPENDS, UNDO_LEDGER_BY_PERIOD] {
        sqlx::raw_sql(undo)
            .execute(pool)
            .await
            .expect("undo a migration");
    }
}

/// A new empty database with the migrations applied; returns its URL and a pool.
pub async fn fresh_database_on(admin: &str) -> (String, PgPool) {
    // The tests' `run` (--no-create-topics) sends drift alerts to the default topic unless a
    // test names its own; the broker does not create topics, so it must exist.
    create_topic(&brokers(), "catalog.drift.alerts", 1).await;
    let name = format!("ri_test_{}", unique_suffix());
    let admin_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin)
        .await
        .expect("connect to PostgreSQL (run scripts/services up)");
    // The name is generated here (hex suffix), never input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin_pool)
        .await
        .expect("create test database");
    admin_pool.close().await;
    let mut url = url::Url::parse(admin).expect("admin url");
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect to test database");
    royalty_ingest::db::migrate(&pool)
        .await
        .expect("migrations");
    (url, pool)
}

/// A new database on the shared server.
pub async fn fresh_database() -> (String, PgPool) {
    fresh_database_on(&admin_url()).await
}

/// Creates a topic with a random name.
pub async fn fresh_topic(prefix: &str, partitions: i32) -> String {
    fresh_topic_on(&brokers(), prefix, partitions).await
}

/// Creates `name` with `partitions` on the broker at `bootstrap` (plaintext); a topic of
/// that name that already exists is left as it is.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            [&NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topic (is the broker up? scripts/services up)");
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("cannot create topic {topic}: {code}"),
        }
    }
}

/// Creates a topic with a random name on the broker at `bootstrap` (plaintext).
pub async fn fresh_topic_on(bootstrap: &str, prefix: &str, partitions: i32) -> String {
    let name = format!("{prefix}.{}", unique_suffix());
    create_topic(bootstrap, &name, partitions).await;
    name
}

/// A plain producer.
pub fn producer() -> FutureProducer {
    producer_on(&brokers())
}

/// A plain producer to the broker at `bootstrap` (plaintext).
pub fn producer_on(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Sends one record and waits for the broker's acknowledgement.
pub async fn send(producer: &FutureProducer, topic: &str, key: &[u8], value: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("record acknowledged");
}

/// A catalog entry as a `catalog.updates` record value from `source`, the way label
/// systems publish it (latest `CatalogUpdate` schema).
pub fn catalog_update(entry: &RawCatalogEntry, source: &str) -> Vec<u8> {
    let store = SchemaStore::builtin().expect("schemas");
    let schema = store.latest(CATALOG_UPDATE).expect("catalog schema");
    encode_update(&schema, entry, Some(source)).expect("catalog update encodes")
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: Option<i64>,
}

impl ReadRecord {
    /// The value of the first header with that name, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads a topic from the beginning until `expected` records arrived or `timeout` passed.
pub fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<ReadRecord> {
    read_topic_until(topic, timeout, |records| records.len() >= expected)
}

/// Reads a topic from the beginning until `done` says so or `timeout` passed.
pub fn read_topic_until(
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[ReadRecord]) -> bool,
) -> Vec<ReadRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("test-reader-{}", unique_suffix()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) && std::time::Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let message = result.expect("consume");
            out.push(ReadRecord {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: message.timestamp().to_millis(),
            });
        }
    }
    out
}

/// Polls `check` until it returns true or `timeout` passes (a condition to await, never a
/// fixed sleep).
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records on a topic (sum over partitions of high − low watermark).
pub fn topic_size(topic: &str) -> i64 {
    topic_size_on(&brokers(), topic)
}

/// Records on a topic of the broker at `bootstrap` (plaintext).
pub fn topic_size_on(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

/// A local port nobody listens on right now (for a test's own endpoints).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
