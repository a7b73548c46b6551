//! Helpers for tests that run the ingestion pipeline: settings pointing at a test's own
//! topics and database, encoding lines, publishing them, and reading the ledger back.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use royalty_ingest::avro::{SchemaStore, encode_single_object};
use royalty_ingest::config::{DatabaseArgs, RunArgs, SchemaArgs, StartPolicy};
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::pipeline::RunTotals;
use royalty_ingest::sample::{SampleRng, record_key, valid_line};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::kafka_args;

/// Full name of the royalty-line record in every schema version.
pub const LINE_SCHEMA: &str = "io.royaltyingest.RoyaltyLine";

/// Settings for an in-process run over the test's topics and database that exits once
/// caught up.
pub fn run_args(topic: &str, dlq: &str, database_url: &str, group: &str) -> RunArgs {
    RunArgs {
        kafka: kafka_args(),
        database: DatabaseArgs {
            database_url: database_url.to_string(),
            database_url_file: None,
        },
        group: group.to_string(),
        topics: vec![topic.to_string()],
        dlq_topic: dlq.to_string(),
        catalog_topic: String::new(),
        summaries_topic: String::new(),
        alerts_topic: "catalog.drift.alerts".to_string(),
        no_unknown_isrc_alerts: false,
        batch_size: 500,
        read_ahead_mib: 128,
        max_record_kib: 1024,
        lanes: 2,
        linger_ms: 50,
        commit_floor_ms: 5,
        start: StartPolicy::Earliest,
        allow_offset_skip: false,
        schemas: SchemaArgs::default(),
        metrics_addr: None,
        session_timeout_ms: 6_000,
        assignor: "range,roundrobin".to_string(),
        instance_id: None,
        exit_when_idle_ms: Some(1_500),
        no_create_topics: true,
        topic_partitions: 1,
    }
}

/// Runs the pipeline in-process until it is caught up and idle.
pub async fn run_until_idle(args: RunArgs) -> RunTotals {
    royalty_ingest::observe::init_tracing();
    royalty_ingest::pipeline::run(args, CancellationToken::new())
        .await
        .expect("pipeline run")
}

/// Encodes a line in single-object encoding with schema version `version`.
pub fn encode(version: u32, line: &DecodedLine) -> Vec<u8> {
    let store = SchemaStore::builtin().expect("built-in schemas");
    let schema = store
        .by_name_version(LINE_SCHEMA, version)
        .expect("schema version exists");
    encode_single_object(&schema, line).expect("encode line")
}

/// `count` distinct valid lines (distinct transaction ids from `first_txn`).
pub fn distinct_lines(seed: u64, first_txn: u64, count: usize) -> Vec<DecodedLine> {
    let mut rng = SampleRng::new(seed);
    (0..count as u64)
        .map(|i| valid_line(&mut rng, first_txn + i))
        .collect()
}

/// Publishes lines keyed by identity, each encoded with `version`.
pub async fn publish(producer: &FutureProducer, topic: &str, version: u32, lines: &[DecodedLine]) {
    for line in lines {
        super::send(
            producer,
            topic,
            record_key(line).as_bytes(),
            &encode(version, line),
        )
        .await;
    }
}

/// Row count, sum of stream counts and sum of amounts in the ledger.
pub async fn ledger_totals(pool: &PgPool) -> (i64, i64, Decimal) {
    sqlx::query_as::<_, (i64, Option<Decimal>, Option<Decimal>)>(
        "SELECT count(*), sum(stream_count)::numeric, sum(royalty_amount) FROM royalty_ledger",
    )
    .fetch_one(pool)
    .await
    .map(|(n, streams, amount)| {
        (
            n,
            streams.map(|s| s.try_into().unwrap_or(-1)).unwrap_or(0),
            amount.unwrap_or_default(),
        )
    })
    .expect("ledger totals")
}

/// What the lines should add up to.
pub fn expected_totals(lines: &[DecodedLine]) -> (i64, i64, Decimal) {
    (
        lines.len() as i64,
        lines.iter().map(|l| l.stream_count).sum(),
        lines.iter().map(|l| l.royalty_amount).sum(),
    )
}

/// Number of ledger rows.
pub async fn ledger_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM royalty_ledger")
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct ChildGuard(pub Child);

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Generous bound for a command that must end by itself (the broker probe gives up after
/// 10 s; the rest is start-up and the command's own work).
pub const MUST_EXIT_WITHIN: Duration = Duration::from_secs(60);

/// Runs `royalty-ingest ARGS` against the test services (stdin closed, output captured)
/// and waits, bounded, for its exit.
pub async fn royalty_ingest(args: &[&str], database_url: &str) -> std::process::Output {
    royalty_ingest_with_env(args, database_url, &[]).await
}

/// Like [`royalty_ingest`], with extra environment variables (secrets stay off the command
/// line).
pub async fn royalty_ingest_with_env(
    args: &[&str],
    database_url: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(args)
        .env("KAFKA_BROKERS", super::brokers())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start royalty-ingest");
    let pid = child.id();
    match tokio::time::timeout(
        MUST_EXIT_WITHIN,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    {
        Ok(output) => output.expect("join").expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("royalty-ingest {args:?} did not exit within {MUST_EXIT_WITHIN:?}");
        }
    }
}

/// Runs `royalty-ingest ARGS` with its stdout into a pipe whose reader is already gone (as
/// `… | head` after head exited), stderr captured, and waits, bounded, for its exit.
pub async fn royalty_ingest_into_closed_pipe(
    args: &[&str],
    database_url: &str,
) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    // Closed before the command starts: its very first write meets a pipe without reader.
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(args)
        .env("KAFKA_BROKERS", super::brokers())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start royalty-ingest");
    let pid = child.id();
    match tokio::time::timeout(
        MUST_EXIT_WITHIN,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    {
        Ok(output) => output.expect("join").expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("royalty-ingest {args:?} did not exit within {MUST_EXIT_WITHIN:?}");
        }
    }
}

/// `run`'s usual flags in the tests: one topic, its DLQ topic and group; no catalog or
/// summaries topic, no metrics endpoint, topics made by the test. Extend with the flags a
/// test is about.
pub fn run_flags<'a>(topic: &'a str, dlq: &'a str, group: &'a str) -> Vec<&'a str> {
    run_flags_with_metrics(topic, dlq, group, "")
}

/// [`run_flags`] with the metrics endpoint on `metrics_addr` (clap refuses the flag twice,
/// so a test that reads metrics cannot simply extend [`run_flags`]).
pub fn run_flags_with_metrics<'a>(
    topic: &'a str,
    dlq: &'a str,
    group: &'a str,
    metrics_addr: &'a str,
) -> Vec<&'a str> {
    vec![
        "--topics",
        topic,
        "--dlq-topic",
        dlq,
        "--group",
        group,
        "--catalog-topic",
        "",
        "--summaries-topic",
        "",
        "--no-create-topics",
        "--metrics-addr",
        metrics_addr,
    ]
}

/// `royalty-ingest run` with [`run_flags`] and `extra`, until idle for 1.5 s.
pub async fn run_once(
    topic: &str,
    dlq: &str,
    group: &str,
    extra: &[&str],
    database_url: &str,
) -> std::process::Output {
    let mut args = vec!["run"];
    args.extend(run_flags(topic, dlq, group));
    args.extend(["--exit-when-idle-ms", "1500"]);
    args.extend(extra);
    royalty_ingest(&args, database_url).await
}

/// Starts `royalty-ingest run` as a child process with the given extra arguments.
pub fn spawn_run(args: &[&str], database_url: &str) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .arg("run")
        .args(args)
        .env("KAFKA_BROKERS", super::brokers())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start royalty-ingest run");
    ChildGuard(child)
}

/// Like [`spawn_run`], with the run's stderr appended to the file `log` (created if need
/// be), so what it said survives a filtered test output.
pub fn spawn_run_logged(args: &[&str], database_url: &str, log: &std::path::Path) -> ChildGuard {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let child = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .arg("run")
        .args(args)
        .env("KAFKA_BROKERS", super::brokers())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start royalty-ingest run");
    ChildGuard(child)
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn tail_of(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Kills a child with SIGKILL (no chance to clean up) and reaps it.
pub fn kill_hard(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for a child to exit by itself, up to `timeout`.
pub async fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "child did not exit in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes keyed records, many in flight at once, each acknowledged by the broker.
pub async fn publish_records(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) {
    use rdkafka::producer::FutureRecord;
    for chunk in records.chunks(500) {
        let sends = chunk.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(value.as_slice()),
                Duration::from_secs(60),
            )
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e).expect("record acknowledged");
        }
    }
}

/// A mixed stream: `valid` distinct lines, `redeliveries` copies of earlier ones (in other
/// schema versions) and `invalid` garbage records, interleaved. Returns the records and the
/// distinct valid lines they should produce.
pub fn mixed_stream(
    seed: u64,
    valid: usize,
    redeliveries: usize,
    invalid: usize,
) -> (Vec<(String, Vec<u8>)>, Vec<DecodedLine>) {
    let lines = distinct_lines(seed, 1, valid);
    let mut rng = SampleRng::new(seed ^ 0xABCD);
    let mut records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| (record_key(l), encode(1 + rng.below(3) as u32, l)))
        .collect();
    for i in 0..redeliveries {
        let line = &lines[rng.below(valid as u64) as usize];
        let at = (rng.below(records.len() as u64) as usize).max(1);
        // After the original: a redelivery never precedes what it repeats.
        let original = records
            .iter()
            .position(|(k, _)| *k == record_key(line))
            .unwrap_or(0);
        let at = at.max(original + 1).min(records.len());
        records.insert(at, (record_key(line), encode(1 + (i % 3) as u32, line)));
    }
    for i in 0..invalid {
        let at = rng.below(records.len() as u64) as usize;
        records.insert(
            at,
            (format!("garbage-{i}"), format!("not avro {i}").into_bytes()),
        );
    }
    (records, lines)
}

/// Runs `royalty-ingest run` again and again, SIGKILLing it right after start (threshold
/// 0) or once the ledger holds at least each threshold's rows: kills at moments that fall
/// inside ingestion, awaited as conditions rather than timed.
pub async fn kill_at_thresholds(
    args: &[&str],
    database_url: &str,
    pool: &PgPool,
    thresholds: &[i64],
) {
    for &threshold in thresholds {
        let mut child = spawn_run(args, database_url);
        if threshold > 0 {
            super::wait_until(
                Duration::from_secs(180),
                "ledger growth before a kill",
                || {
                    let pool = pool.clone();
                    async move { ledger_count(&pool).await >= threshold }
                },
            )
            .await;
        }
        kill_hard(&mut child);
    }
}

/// Sends a signal by name (`TERM`, `STOP`, `CONT`; std only sends SIGKILL); true when
/// `kill` delivered it.
pub fn signal(child: &Child, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends SIGTERM and asserts a clean exit 0.
pub async fn terminate(child: &mut Child) {
    assert!(signal(child, "TERM"), "kill -TERM");
    let status = wait_exit(child, Duration::from_secs(60)).await;
    assert!(status.success(), "SIGTERM stops the run cleanly: {status}");
}

/// Runs a `scripts/services` command (the outage tests stop and start services; their
/// broker is the second one, [`super::use_chaos_broker`]).
pub fn services(command: &str) {
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services"))
        .arg(command)
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/services");
    assert!(status.success(), "scripts/services {command}");
}

/// The one number a `SELECT count(*) …` of the test's own making answers.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Waits until the ledger holds at least `rows` rows.
pub async fn wait_for_rows(pool: &PgPool, rows: i64, timeout: Duration, what: &str) {
    super::wait_until(timeout, what, || {
        let pool = pool.clone();
        async move { ledger_count(&pool).await >= rows }
    })
    .await;
}

/// Publishes the records from a background task while the test kills and restarts runs.
pub fn publish_in_background(
    producer: FutureProducer,
    topic: &str,
    records: Vec<(String, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    let topic = topic.to_string();
    tokio::spawn(async move { publish_records(&producer, &topic, &records).await })
}

/// Commits `batch` in one transaction as `run` would (group `g`, dead letters to `dlq`,
/// drift alerts to `alerts`) and returns its statistics; fails the test if it is fenced.
pub async fn commit(
    pool: &PgPool,
    batch: &royalty_ingest::ledger::Batch,
) -> royalty_ingest::ledger::BatchStats {
    use royalty_ingest::drift::{DriftSettings, alert::DRIFT_ALERT};
    use royalty_ingest::ledger::{BatchTarget, CommitOutcome, commit_batch};
    let store = SchemaStore::builtin().expect("schemas");
    let drift = DriftSettings {
        alerts_topic: "alerts".into(),
        alert_unknown_isrc: true,
        alert_schema: store.latest(DRIFT_ALERT).expect("alert schema"),
    };
    let target = BatchTarget {
        group: "g",
        dlq_topic: "dlq",
        drift: &drift,
    };
    match commit_batch(pool, target, batch).await.expect("commit") {
        CommitOutcome::Committed(stats) => stats,
        fenced => panic!("not committed: {fenced:?}"),
    }
}
