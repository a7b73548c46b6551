//! Chaos: while lines with redeliveries, restatements and invalid records stream into a
//! 4-partition topic, and catalog updates into the catalog topic, random faults hit the
//! consumer group — SIGKILLed instances (some while dead letters wait in the outbox, i.e.
//! with the relay mid-publish), instances added and removed (up to 3), a zombie (SIGSTOP
//! past its session timeout, then SIGCONT), PostgreSQL restarted, the broker restarted —
//! and afterwards the ledger, quarantine, the catalog, the dead-letter topic and the
//! drift alerts are checked against a model of the input. One verdict line.
//!
//! `CHAOS_PROFILE=short` (default, in `.ci/run`): 20,000 lines, about 12 faults.
//! `CHAOS_PROFILE=long` (by hand, `scripts/chaos long`): 100,000 lines, at least 50 kills.
//! `CHAOS_SEED=n` replays a run's fault sequence.
//!
//! Every instance's stderr goes to its own file under `target/tmp/chaos/` (the directory
//! is printed first, as "chaos logs: DIR"). An instance that exits without being stopped by
//! the test fails the test at once, with its exit status and the last lines it logged.
// scripts/test: chaos-services — restarts the second broker and PostgreSQL cluster.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use common::pipeline::{
    ChildGuard, count, distinct_lines, encode, expected_totals, kill_hard, ledger_count,
    ledger_totals, publish_records, services, signal, spawn_run_logged, tail_of, wait_exit,
};
use royalty_ingest::avro::SchemaStore;
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::drift::alert::DriftAlert;
use royalty_ingest::drift::catalog::RawCatalogEntry;
use royalty_ingest::sample::{SampleRng, isrc_for, record_key, upc_for};
use rust_decimal::Decimal;

/// `count` distinct lines in versions 1 to 3; after about one in ten, a redelivery of an
/// earlier line in another version; after every 50th, an invalid record. Linear (the
/// shared `mixed_stream` places redeliveries by search, too slow for the long profile).
fn stream(seed: u64, count: usize) -> (Vec<(String, Vec<u8>)>, Vec<DecodedLine>) {
    let lines = distinct_lines(seed, 1, count);
    let mut rng = SampleRng::new(seed ^ 0x5EED);
    let mut records = Vec::with_capacity(count + count / 5);
    for (i, line) in lines.iter().enumerate() {
        records.push((record_key(line), encode(1 + rng.below(3) as u32, line)));
        if rng.below(10) == 0 {
            let earlier = &lines[rng.below(i as u64 + 1) as usize];
            records.push((
                record_key(earlier),
                encode(1 + rng.below(3) as u32, earlier),
            ));
        }
        if i % 50 == 49 {
            records.push((format!("garbage-{i}"), format!("not avro {i}").into_bytes()));
        }
    }
    (records, lines)
}

/// Tracks the sample lines use (`sample::isrc_for(0..60)`).
const TRACKS: u64 = 60;

/// The label the catalog gives a track: the lines' own label for even tracks, another one
/// for odd tracks, so every odd track drifts (one `label_mismatch` alert each).
fn catalog_updates(lines: &[DecodedLine]) -> (Vec<(String, Vec<u8>)>, HashSet<String>) {
    let mut drifting = HashSet::new();
    let mut updates = Vec::new();
    for track in 0..TRACKS {
        let isrc = isrc_for(track);
        let Some(line) = lines.iter().find(|l| l.isrc == isrc) else {
            continue;
        };
        let label = if track % 2 == 1 {
            drifting.insert(isrc.clone());
            "Chaos Catalog Records".to_string()
        } else {
            line.label.clone().expect("sample lines carry a label")
        };
        let entry = RawCatalogEntry {
            isrc: isrc.clone(),
            upc: upc_for(track / 4),
            title: None,
            display_artist: line.artist.clone(),
            label: Some(label),
            iswc: None,
            valid_from: "2020-01-01".into(),
        };
        let value = common::catalog_update(&entry, "chaos");
        updates.push((isrc, value));
    }
    (updates, drifting)
}

/// A running `run` and the file its stderr goes to.
struct Instance {
    child: ChildGuard,
    log: PathBuf,
    /// Its metrics endpoint: once it answers, the instance has installed its signal
    /// handlers (before `run` starts anything), so a SIGTERM is a graceful stop.
    metrics: std::net::SocketAddr,
}

/// Starts instances, each logging to a file of its own in `dir`.
struct Launcher<'a> {
    args: &'a [&'a str],
    url: &'a str,
    dir: PathBuf,
    started: usize,
}

impl Launcher<'_> {
    fn start(&mut self) -> Instance {
        self.started += 1;
        let log = self.dir.join(format!("run-{}.log", self.started));
        let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let metrics_flag = metrics.to_string();
        let mut args = self.args.to_vec();
        args.extend(["--metrics-addr", metrics_flag.as_str()]);
        Instance {
            child: spawn_run_logged(&args, self.url, &log),
            log,
            metrics,
        }
    }
}

/// Fails the test at once when an instance ended without the test stopping it: nothing in
/// this suite makes `run` exit by itself, so that is the finding, whatever the ledger says
/// later. Says how it ended and the last lines it logged.
fn assert_all_running(instances: &mut [Instance], seed: u64) {
    for instance in instances.iter_mut() {
        if let Some(status) = instance.child.try_wait().expect("child status") {
            panic!(
                "chaos: an instance exited by itself ({status}; seed {seed}); {} ends:\n{}",
                instance.log.display(),
                quoted(&tail_of(&instance.log, 30))
            );
        }
    }
}

/// Log lines marked so that `scripts/chaos`, which keeps only its own lines of the test
/// output, keeps them too.
fn quoted(log: &str) -> String {
    log.lines()
        .map(|line| format!("chaos:   | {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `check` holds, failing at once when an instance exits by itself.
async fn settle<F, Fut>(
    instances: &mut [Instance],
    seed: u64,
    timeout: Duration,
    what: &str,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        assert_all_running(instances, seed);
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what} (seed {seed})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_lose_and_double_nothing() {
    common::use_chaos_broker();
    let long = std::env::var("CHAOS_PROFILE").is_ok_and(|p| p == "long");
    let (line_count, min_kills, min_faults) = if long {
        (100_000, 50, 80)
    } else {
        (20_000, 5, 12)
    };
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()));
    let mut rng = SampleRng::new(seed);

    let chaos = std::env::var("CHAOS_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://royalty:royalty@127.0.0.1:5433/royalty".into());
    let (url, pool) = common::fresh_database_on(&chaos).await;
    let topic = common::fresh_topic("it.chaos.raw", 4).await;
    let dlq = common::fresh_topic("it.chaos.dlq", 2).await;
    let catalog = common::fresh_topic("it.chaos.catalog", 2).await;
    let alerts = common::fresh_topic("it.chaos.alerts", 1).await;
    let invalid = line_count / 50;
    let (mut records, mut lines) = stream(seed, line_count);
    let redeliveries = records.len() - line_count - invalid;
    // Restatements, published last (so with later timestamps): a cent more on one line in
    // fifty. The model keeps the restated values.
    for line in lines.iter_mut().step_by(50) {
        line.royalty_amount += Decimal::new(1, 2);
        records.push((record_key(line), encode(4, line)));
    }
    let (updates, drifting) = catalog_updates(&lines);

    let group = format!("it-chaos-{}", common::unique_suffix());
    let args: Vec<String> = [
        "--topics",
        &topic,
        "--dlq-topic",
        &dlq,
        "--group",
        &group,
        "--batch-size",
        "500",
        "--linger-ms",
        "20",
        "--no-create-topics",
        "--catalog-topic",
        &catalog,
        "--alerts-topic",
        &alerts,
        // Lines of a track whose catalog entry is not applied yet would raise an "unknown
        // ISRC" alert or not, depending on timing: the model counts label drift only.
        "--no-unknown-isrc-alerts",
        "--summaries-topic",
        "",
        "--session-timeout-ms",
        "3000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("chaos")
        .join(format!("{seed}-{}", common::unique_suffix()));
    std::fs::create_dir_all(&dir).expect("chaos log directory");
    println!("chaos logs: {}", dir.display());
    let mut launcher = Launcher {
        args: &args,
        url: &url,
        dir,
        started: 0,
    };
    let mut instances: Vec<Instance> = vec![launcher.start()];

    // The producer paces itself so that the faults land while lines stream in.
    let chunks: Vec<Vec<(String, Vec<u8>)>> = records.chunks(1_000).map(<[_]>::to_vec).collect();
    // The catalog updates go out with the first chunks, a third with each.
    let mut update_chunks: Vec<Vec<(String, Vec<u8>)>> = updates
        .chunks(updates.len().div_ceil(3).max(1))
        .map(<[_]>::to_vec)
        .collect();
    update_chunks.reverse();
    let (stream_topic, catalog_topic) = (topic.clone(), catalog.clone());
    let streaming = tokio::spawn(async move {
        let producer = common::producer();
        for chunk in chunks {
            if let Some(updates) = update_chunks.pop() {
                publish_records(&producer, &catalog_topic, &updates).await;
            }
            publish_records(&producer, &stream_topic, &chunk).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let (mut kills, mut faults, mut broker_restarts) = (0usize, 0usize, 0usize);
    let mut log: Vec<&'static str> = Vec::new();
    while !streaming.is_finished() || kills < min_kills || faults < min_faults {
        // Chaos pacing (not synchronisation): a fault every 0.5 to 2 s.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1_500))).await;
        assert_all_running(&mut instances, seed);
        faults += 1;
        match rng.below(11) {
            0..=3 => {
                let at = rng.below(instances.len() as u64) as usize;
                kill_hard(&mut instances[at].child);
                instances[at] = launcher.start();
                kills += 1;
                log.push("kill");
            }
            4 if instances.len() < 3 => {
                instances.push(launcher.start());
                log.push("add");
            }
            5 if instances.len() > 1 => {
                let mut leaving = instances.remove(rng.below(instances.len() as u64) as usize);
                signal(&leaving.child, "TERM");
                let _ = wait_exit(&mut leaving.child, Duration::from_secs(90)).await;
                log.push("remove");
            }
            6 => {
                // A zombie: paused past its session timeout, then resumed; its stale
                // writes must be fenced.
                let at = rng.below(instances.len() as u64) as usize;
                signal(&instances[at].child, "STOP");
                tokio::time::sleep(Duration::from_secs(5)).await;
                signal(&instances[at].child, "CONT");
                log.push("zombie");
            }
            7 => {
                services("pg-restart-chaos");
                log.push("postgres restart");
            }
            8 if broker_restarts < if long { 3 } else { 1 } => {
                services("chaos-kafka-stop");
                services("chaos-kafka-up");
                broker_restarts += 1;
                log.push("broker restart");
            }
            9 => {
                // The relay mid-publish: a kill while dead letters wait in the outbox
                // (every instance relays; the first to claim a row publishes it).
                let waiting = outbox_waiting(&pool, Duration::from_secs(3)).await;
                let at = rng.below(instances.len() as u64) as usize;
                kill_hard(&mut instances[at].child);
                instances[at] = launcher.start();
                kills += 1;
                log.push(if waiting { "kill mid-publish" } else { "kill" });
            }
            _ => {
                let at = rng.below(instances.len() as u64) as usize;
                kill_hard(&mut instances[at].child);
                instances[at] = launcher.start();
                kills += 1;
                log.push("kill");
            }
        }
    }
    streaming.await.expect("every record published");

    // Settle: the survivors finish the backlog and publish every dead letter.
    let expected = expected_totals(&lines);
    settle(
        &mut instances,
        seed,
        Duration::from_secs(600),
        "every line booked",
        || {
            let pool = pool.clone();
            let rows = expected.0;
            async move { ledger_count(&pool).await >= rows }
        },
    )
    .await;
    settle(
        &mut instances,
        seed,
        Duration::from_secs(300),
        "every refusal quarantined and published",
        || {
            let pool = pool.clone();
            async move {
                let (quarantined, unpublished): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM quarantine),
                        (SELECT count(*) FROM outbox)",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or((-1, -1));
                quarantined == invalid as i64 && unpublished == 0
            }
        },
    )
    .await;
    assert_all_running(&mut instances, seed);
    // An instance started by the last fault may not have installed its signal handlers
    // yet: a SIGTERM would then end it by default, not gracefully. Its metrics endpoint
    // answers once they are installed.
    for instance in &mut instances {
        let addr = instance.metrics;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = instance.child.try_wait().expect("child status") {
                panic!(
                    "chaos: an instance exited by itself ({status}; seed {seed}); {} ends:\n{}",
                    instance.log.display(),
                    quoted(&tail_of(&instance.log, 30))
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chaos: the instance logging to {} never served {addr} (seed {seed})",
                instance.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut exits = Vec::new();
    for mut instance in instances {
        signal(&instance.child, "TERM");
        let status = wait_exit(&mut instance.child, Duration::from_secs(90)).await;
        if !status.success() {
            println!(
                "chaos: an instance did not stop cleanly on SIGTERM ({status}); {} ends:\n{}",
                instance.log.display(),
                quoted(&tail_of(&instance.log, 30))
            );
        }
        exits.push(status);
    }

    let ledger = ledger_totals(&pool).await;
    let applied = count(&pool, "SELECT count(*) FROM ledger_revisions WHERE applied").await;
    let dead_letters = common::read_topic_until(&dlq, Duration::from_secs(60), |read| {
        read.iter()
            .filter_map(|r| r.header("royalty.dlq.id"))
            .collect::<HashSet<_>>()
            .len()
            >= invalid
    });
    let ids: HashSet<String> = dead_letters
        .iter()
        .filter_map(|r| r.header("royalty.dlq.id"))
        .collect();
    let catalog_versions = count(&pool, "SELECT count(*) FROM catalog_versions").await;
    let store = SchemaStore::builtin().expect("schemas");
    let alert_records = common::read_topic_until(&alerts, Duration::from_secs(60), |read| {
        read.iter()
            .filter_map(|r| r.header("royalty.alert.id"))
            .collect::<HashSet<_>>()
            .len()
            >= drifting.len()
    });
    let alerted: Vec<DriftAlert> = alert_records
        .iter()
        .map(|r| DriftAlert::decode(&store, r.value.as_deref().unwrap_or_default()).expect("alert"))
        .collect();
    let alert_ids: HashSet<&str> = alerted.iter().map(|a| a.alert_id.as_str()).collect();
    let alerted_isrcs: HashSet<String> = alerted.iter().map(|a| a.isrc.clone()).collect();
    println!(
        "chaos verdict: seed {seed}, {} lines + {} redeliveries + {} restatements + {invalid} invalid; \
         {faults} faults ({kills} kills, {broker_restarts} broker restarts; {}); ledger {} rows, \
         quantity {}, amount {} (expected {} / {} / {}); {applied} restatements applied; \
         {} dead letters on the topic ({} copies); {catalog_versions} catalog versions; \
         {} drift alerts ({} copies) for {} drifting tracks",
        line_count,
        redeliveries,
        lines.iter().step_by(50).count(),
        log.join(", "),
        ledger.0,
        ledger.1,
        ledger.2,
        expected.0,
        expected.1,
        expected.2,
        ids.len(),
        dead_letters.len(),
        alert_ids.len(),
        alerted.len(),
        drifting.len(),
    );
    assert_eq!(ledger, expected, "ledger rows and exact sums (seed {seed})");
    assert_eq!(
        applied,
        lines.iter().step_by(50).count() as i64,
        "one applied revision per restatement (seed {seed})"
    );
    assert_eq!(
        ids.len(),
        invalid,
        "every refused record on the DLQ topic, once by id (seed {seed})"
    );
    assert_eq!(
        catalog_versions,
        updates.len() as i64,
        "one catalog version per update (seed {seed})"
    );
    assert_eq!(
        alerted_isrcs, drifting,
        "a label-drift alert for every drifting track, none for the others (seed {seed})"
    );
    assert_eq!(
        alert_ids.len(),
        drifting.len(),
        "one alert per drift, repeats only with the same id (seed {seed})"
    );
    assert!(
        alerted.iter().all(|a| a.kind == "label_mismatch"),
        "only label drift (seed {seed})"
    );
    assert!(
        exits.iter().all(|s| s.success()),
        "clean exits on SIGTERM: {exits:?}"
    );
}

/// Whether dead letters wait in the outbox within `timeout` (polled).
async fn outbox_waiting(pool: &sqlx::PgPool, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(pool)
            .await
            .unwrap_or(0);
        if waiting > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
