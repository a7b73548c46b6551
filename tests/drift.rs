//! Metadata drift against the real broker and database: catalog import, one alert per
//! distinct drift with every line counted, unknown ISRCs (one alert per DSP and report per
//! batch, every track listed), catalog updates that change a UPC, crash safety of alerts,
//! and the subscribers' `alerts tail --json`.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::pipeline::{
    commit, distinct_lines, encode, kill_at_thresholds, ledger_count, publish,
    publish_in_background, run_args, run_until_idle, spawn_run, wait_exit,
};
use royalty_ingest::avro::SchemaStore;
use royalty_ingest::config::RunArgs;
use royalty_ingest::domain::{DecodedLine, validate};
use royalty_ingest::drift::alert::{DRIFT_ALERT, UNKNOWN_ISRC_SAMPLE, headers};
use royalty_ingest::drift::catalog::{RawCatalogEntry, check_entry};
use royalty_ingest::drift::detect::detect_line;
use royalty_ingest::drift::store::{apply_entries, record_drifts, versions_at};
use royalty_ingest::drift::{DriftAlert, DriftSettings};
use royalty_ingest::ledger::{Batch, LineToPost, OffsetAdvance};
use royalty_ingest::record::{SourceRecord, TopicPartition};
use royalty_ingest::sample::{record_key, upc_for};
use sqlx::PgPool;

const ISRC: &str = "GBQZA2400007";

fn entry(isrc: &str, upc: &str, valid_from: &str) -> RawCatalogEntry {
    RawCatalogEntry {
        isrc: isrc.into(),
        upc: upc.into(),
        title: Some("Night Ledger".into()),
        display_artist: Some("Mira Kade".into()),
        label: Some("Harbor Records".into()),
        iswc: None,
        valid_from: valid_from.into(),
    }
}

async fn load_catalog(pool: &PgPool, entries: &[RawCatalogEntry]) {
    let checked: Vec<_> = entries
        .iter()
        .map(|e| (check_entry(e).expect("valid entry"), "test".to_string()))
        .collect();
    let mut tx = pool.begin().await.expect("begin");
    apply_entries(&mut tx, checked.iter().map(|(e, s)| (e, s.as_str())))
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
}

/// Lines for `isrc` with `upc`, no label/artist (so only the UPC can drift).
fn lines_for(seed: u64, first_txn: u64, count: usize, isrc: &str, upc: &str) -> Vec<DecodedLine> {
    distinct_lines(seed, first_txn, count)
        .into_iter()
        .map(|mut l| {
            l.isrc = isrc.into();
            l.upc = Some(upc.into());
            l.label = None;
            l.artist = None;
            l.report_period = "2026-09-01".into();
            l
        })
        .collect()
}

fn alerts_on(topic: &str, expected: usize) -> Vec<DriftAlert> {
    let store = SchemaStore::builtin().expect("schemas");
    common::read_topic(topic, expected, Duration::from_secs(30))
        .iter()
        .map(|r| {
            let alert = DriftAlert::decode(&store, r.value.as_deref().unwrap_or_default())
                .expect("alert decodes");
            assert_eq!(
                r.header(headers::ID).as_deref(),
                Some(alert.alert_id.as_str()),
                "stable id header"
            );
            alert
        })
        .collect()
}

/// A test's own topics (lines, dead letters, alerts) and database.
struct Setup {
    topic: String,
    dlq: String,
    alerts: String,
    url: String,
    pool: PgPool,
}

/// Topics named after `prefix` (the lines' with `partitions`) and a fresh database.
async fn setup(prefix: &str, partitions: i32) -> Setup {
    let topic = common::fresh_topic(&format!("{prefix}.raw"), partitions).await;
    let dlq = common::fresh_topic(&format!("{prefix}.dlq"), 1).await;
    let alerts = common::fresh_topic(&format!("{prefix}.alerts"), 1).await;
    let (url, pool) = common::fresh_database().await;
    Setup {
        topic,
        dlq,
        alerts,
        url,
        pool,
    }
}

impl Setup {
    /// Settings of an in-process `run` in `group` over the test's topics, its alerts to the
    /// test's own topic.
    fn run_args(&self, group: &str) -> RunArgs {
        let mut args = run_args(&self.topic, &self.dlq, &self.url, group);
        args.alerts_topic = self.alerts.clone();
        args
    }
}

#[tokio::test]
async fn catalog_import_loads_good_rows_reports_bad_ones_and_a_reimport_changes_nothing() {
    let (url, pool) = common::fresh_database().await;
    let alerts = common::fresh_topic("it.drift.alerts", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("catalog.csv");
    std::fs::write(
        &file,
        format!(
            "isrc,upc,title,display_artist,label,iswc,valid_from\n\
             {ISRC},{}|{},Night Ledger,Mira Kade,Harbor Records,T-034.524.680-1,2026-01-01\n\
             not-an-isrc,{},Bad,Someone,Label,,2026-01-01\n\
             GBQZA2400008,731453000000,Bad UPC,Someone,Label,,2026-01-01\n\
             GBQZA2400009,{},Fine,Someone Else,Quiet Current,,2026-02-01\n",
            upc_for(1),
            upc_for(2),
            upc_for(3),
            upc_for(4)
        ),
    )
    .expect("write csv");
    let import = || {
        Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
            .args(["catalog", "import"])
            .arg(&file)
            .args(["--alerts-topic", &alerts, "--max-skipped", "2"])
            .env("DATABASE_URL", &url)
            .env("KAFKA_BROKERS", common::brokers())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run catalog import")
    };

    let first = import();
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stdout.contains("4 rows read, 2 new versions, 0 superseded, 0 unchanged, 2 bad rows"),
        "{stdout}"
    );
    assert!(
        stderr.contains("catalog.csv:3: isrc:"),
        "bad ISRC reported with its line: {stderr}"
    );
    assert!(
        stderr.contains("catalog.csv:4: upc: gs1_check_digit"),
        "bad UPC reported with its line: {stderr}"
    );
    let versions: Vec<(String, Vec<String>, Option<String>)> =
        sqlx::query_as("SELECT isrc, upcs, iswc FROM catalog_versions ORDER BY isrc")
            .fetch_all(&pool)
            .await
            .expect("versions");
    let mut upcs = vec![upc_for(1), upc_for(2)];
    upcs.sort();
    assert_eq!(
        versions[0],
        (ISRC.to_string(), upcs, Some("T-034.524.680-1".to_string()))
    );
    assert_eq!(versions.len(), 2);

    let again = import();
    assert!(again.status.success());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("0 new versions, 0 superseded, 2 unchanged"),
        "{stdout}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_versions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 2, "a re-import changes nothing");
}

#[tokio::test]
async fn a_upc_drift_raises_one_alert_and_counts_all_1000_lines() {
    let s = setup("it.drift", 2).await;
    load_catalog(&s.pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let wrong_upc = upc_for(99);
    let lines = lines_for(91, 1, 1_000, ISRC, &wrong_upc);
    // The whole report twice, the second time in schema v2: a resend, not new drift.
    publish(&common::producer(), &s.topic, 3, &lines).await;
    publish(&common::producer(), &s.topic, 2, &lines).await;

    let args = s.run_args("it-drift");
    let totals = run_until_idle(args).await;

    assert_eq!(totals.stats.drift_alerts, 1);
    assert_eq!(
        common::topic_size(&s.alerts),
        1,
        "exactly one alert on the topic"
    );
    let alert = &alerts_on(&s.alerts, 1)[0];
    assert_eq!(alert.kind, "upc_mismatch");
    assert_eq!(alert.isrc, ISRC);
    assert_eq!(alert.expected.as_deref(), Some(upc_for(1).as_str()));
    assert_eq!(alert.received.as_deref(), Some(wrong_upc.as_str()));
    assert!(!alert.dsp_name.is_empty());
    let occurrences: i64 =
        sqlx::query_scalar("SELECT sum(occurrences)::bigint FROM drift_events WHERE drift_id = $1")
            .bind(&alert.alert_id)
            .fetch_one(&s.pool)
            .await
            .expect("occurrences");
    assert_eq!(
        occurrences, 1_000,
        "every drifting line counted once, resends not again"
    );
    let attributed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM royalty_ledger l JOIN catalog_versions v ON v.version_id = l.catalog_version_id",
    )
    .fetch_one(&s.pool)
    .await
    .expect("attributed");
    assert_eq!(
        attributed, 1_000,
        "each row records the catalog version it was checked against"
    );
}

#[tokio::test]
async fn an_isrc_missing_from_the_loaded_catalog_is_drift() {
    let s = setup("it.drift", 1).await;
    load_catalog(&s.pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let unknown = lines_for(92, 1, 3, "USRC17607839", &upc_for(5));
    publish(&common::producer(), &s.topic, 3, &unknown).await;
    // The catalogued ISRC with its UPC written as EAN-13 (leading zero): the same product.
    let padded = lines_for(92, 100, 2, ISRC, &format!("0{}", upc_for(1)));
    publish(&common::producer(), &s.topic, 3, &padded).await;

    let args = s.run_args("it-unknown");
    run_until_idle(args).await;

    // Each DSP's report names the track once: an alert per DSP the lines came from.
    let dsps: HashSet<String> = unknown
        .iter()
        .map(|l| l.dsp_name.trim().to_lowercase())
        .collect();
    let found = alerts_on(&s.alerts, dsps.len());
    assert_eq!(found.len(), dsps.len());
    for alert in &found {
        assert_eq!(
            (alert.kind.as_str(), alert.isrc.as_str()),
            ("unknown_isrc", "USRC17607839")
        );
        assert_eq!(
            (alert.tracks, alert.isrc_sample.as_slice()),
            (1, ["USRC17607839".to_string()].as_slice()),
            "one track, one ISRC"
        );
    }
    assert_eq!(common::topic_size(&s.alerts), dsps.len() as i64);
    assert_eq!(ledger_count(&s.pool).await, 5, "drift never blocks booking");
    // A row per DSP the lines came from, each naming its DSP's alert.
    let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT dsp_name, alert_id, occurrences FROM drift_events
          WHERE kind = 'unknown_isrc' AND isrc = 'USRC17607839' ORDER BY dsp_name",
    )
    .fetch_all(&s.pool)
    .await
    .expect("the unknown track's rows");
    assert_eq!(rows.len(), dsps.len());
    assert_eq!(
        rows.iter().map(|r| r.2).sum::<i64>(),
        3,
        "every line counted"
    );
    let alert_ids: HashSet<&str> = found.iter().map(|a| a.alert_id.as_str()).collect();
    let named: HashSet<&str> = rows.iter().filter_map(|r| r.1.as_deref()).collect();
    assert_eq!(named, alert_ids, "each row names its own DSP's alert");
}

/// `lines` as one batch of partition 0 of `raw`, from `first_offset` on.
fn one_batch(lines: &[DecodedLine], first_offset: i64, expected: Option<i64>) -> Batch {
    let next = first_offset + lines.len() as i64;
    Batch {
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, l)| LineToPost {
                line: validate(l).expect("valid line"),
                source: SourceRecord {
                    topic: Arc::from("raw"),
                    partition: 0,
                    offset: first_offset + i as i64,
                    timestamp: chrono::Utc::now(),
                },
                record: Default::default(),
            })
            .collect(),
        offsets: vec![OffsetAdvance {
            partition: TopicPartition::new("raw", 0),
            expected,
            next,
        }],
        ..Batch::default()
    }
}

/// The alerts waiting in the outbox, decoded, by alert id.
async fn outbox_alerts(pool: &PgPool) -> HashMap<String, DriftAlert> {
    let store = SchemaStore::builtin().expect("schemas");
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = 'alerts'")
            .fetch_all(pool)
            .await
            .expect("outbox");
    payloads
        .iter()
        .map(|p| DriftAlert::decode(&store, p).expect("alert decodes"))
        .map(|a| (a.alert_id.clone(), a))
        .collect()
}

/// `alerts unknown-tracks ARGS --json`: the ISRCs listed.
async fn unknown_tracks(url: &str, args: &[&str]) -> Vec<String> {
    let output = common::pipeline::royalty_ingest(
        &[&["alerts", "unknown-tracks", "--json"], args].concat(),
        url,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let track: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            track["isrc"].as_str().expect("isrc").to_string()
        })
        .collect()
}

/// `count` lines of `dsp`'s report for September 2026, each with an ISRC of its own.
fn unknown_report(seed: u64, first_txn: u64, count: usize, dsp: &str) -> Vec<DecodedLine> {
    distinct_lines(seed, first_txn, count)
        .into_iter()
        .enumerate()
        .map(|(i, mut l)| {
            l.isrc = format!("QZUNK{:02}{:05}", seed % 100, first_txn as usize + i);
            l.dsp_name = dsp.into();
            l.report_id = Some(format!("{}-202609", dsp.to_lowercase()));
            l.report_period = "2026-09-01".into();
            l
        })
        .collect()
}

#[tokio::test]
async fn a_batch_of_many_unknown_isrcs_raises_one_alert_per_report_and_lists_every_track() {
    let (url, pool) = common::fresh_database().await;
    load_catalog(&pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let spotify = unknown_report(31, 1, 250, "Spotify");
    let deezer = unknown_report(32, 1_000, 120, "Deezer");
    let mut lines = spotify.clone();
    lines.extend(deezer.clone());
    // Ten Spotify tracks on a second line each: counted, not announced again.
    for (i, line) in spotify[..10].iter().enumerate() {
        let mut again = line.clone();
        again.transaction_id = format!("AGAIN-{i}");
        lines.push(again);
    }
    // A UPC drift of the catalogued track stays an alert of its own.
    lines.extend(lines_for(33, 5_000, 1, ISRC, &upc_for(9)));

    let stats = commit(&pool, &one_batch(&lines, 0, None)).await;
    assert_eq!(stats.drift_alerts, 3, "Spotify's report, Deezer's, the UPC");
    assert_eq!(stats.unknown_tracks, 370);

    let alerts = outbox_alerts(&pool).await;
    let mut unknown: Vec<&DriftAlert> = alerts
        .values()
        .filter(|a| a.kind == "unknown_isrc")
        .collect();
    unknown.sort_by_key(|a| a.dsp_name.clone());
    let shape: Vec<(&str, Option<&str>, Option<&str>, u64)> = unknown
        .iter()
        .map(|a| {
            let report = a.report_id.as_deref();
            (
                a.dsp_name.as_str(),
                report,
                a.report_period.as_deref(),
                a.tracks,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("Deezer", Some("deezer-202609"), Some("2026-09-01"), 120),
            ("Spotify", Some("spotify-202609"), Some("2026-09-01"), 250),
        ]
    );
    for (alert, report) in unknown.iter().zip([&deezer, &spotify]) {
        let first: Vec<String> = report[..UNKNOWN_ISRC_SAMPLE]
            .iter()
            .map(|l| l.isrc.clone())
            .collect();
        assert_eq!(
            alert.isrc_sample, first,
            "a bounded sample, in the order seen"
        );
        assert_eq!(alert.isrc, first[0]);
        let mut listed = unknown_tracks(&url, &["--alert", &alert.alert_id]).await;
        listed.sort();
        let mut all: Vec<String> = report.iter().map(|l| l.isrc.clone()).collect();
        all.sort();
        assert_eq!(listed, all, "every track of the alert is listed");
    }
    assert_eq!(
        alerts.values().filter(|a| a.kind == "upc_mismatch").count(),
        1
    );
    let (rows, lines_counted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(occurrences)::bigint FROM drift_events WHERE kind = 'unknown_isrc'",
    )
    .fetch_one(&pool)
    .await
    .expect("drift events");
    assert_eq!(
        (rows, lines_counted),
        (370, 380),
        "a row per track, every line counted"
    );
    assert_eq!(
        unknown_tracks(&url, &["--dsp", "DEEZER", "--period", "2026-09-01"])
            .await
            .len(),
        120
    );
    assert_eq!(
        unknown_tracks(&url, &["--report", "spotify-202609"])
            .await
            .len(),
        250
    );

    // The next batch: the report resent (duplicates: neither booked nor counted again) with
    // five new tracks in it, which are announced in an alert of their own.
    let mut next = spotify.clone();
    next.extend(unknown_report(31, 251, 5, "Spotify"));
    let stored = lines.len() as i64;
    let stats = commit(&pool, &one_batch(&next, stored, Some(stored))).await;
    assert_eq!((stats.drift_alerts, stats.unknown_tracks), (1, 5));
    let newest: Vec<DriftAlert> = outbox_alerts(&pool)
        .await
        .into_values()
        .filter(|a| !alerts.contains_key(&a.alert_id))
        .collect();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].tracks, 5);
    assert_eq!(
        unknown_tracks(&url, &["--dsp", "spotify"]).await.len(),
        255,
        "listed once each, however often reported"
    );
}

#[tokio::test]
async fn alerts_tail_reads_an_alert_for_a_reports_unknown_tracks() {
    let s = setup("it.tail", 1).await;
    load_catalog(&s.pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let lines = unknown_report(34, 1, 60, "Tidal");
    publish(&common::producer(), &s.topic, 3, &lines).await;
    let args = s.run_args("it-tail-unknown");
    let totals = run_until_idle(args).await;
    assert_eq!(ledger_count(&s.pool).await, 60);

    // However the run cut its batches, each alert is one report's share of them.
    let tail = |json: bool| {
        let output = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
            .args([
                "alerts",
                "tail",
                "--from-beginning",
                "--alerts-topic",
                &s.alerts,
            ])
            .args(["--kind", "unknown_isrc", "--dsp", "tidal"])
            .args(["--idle-exit-ms", "3000"])
            .args(json.then_some("--json"))
            .env("KAFKA_BROKERS", common::brokers())
            .env("DATABASE_URL", &s.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("alerts tail");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let printed: Vec<serde_json::Value> = tail(true)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(printed.len() as u64, totals.stats.drift_alerts);
    let mut tracks = 0;
    for alert in &printed {
        let n = alert["tracks"].as_u64().expect("tracks");
        let sample = alert["isrc_sample"].as_array().expect("isrc_sample");
        assert_eq!(sample.len() as u64, n.min(UNKNOWN_ISRC_SAMPLE as u64));
        assert_eq!(alert["report_id"], "tidal-202609");
        tracks += n;
    }
    assert_eq!(tracks, 60, "every unknown track announced once");
    let text = tail(false);
    assert_eq!(text.lines().count(), printed.len(), "{text}");
    for alert in printed.iter().filter(|a| a["tracks"].as_u64() > Some(1)) {
        let id = alert["alert_id"].as_str().expect("alert_id");
        let said = format!(
            "unknown_isrc {} tracks (",
            alert["tracks"].as_u64().unwrap_or_default()
        );
        let line = text.lines().find(|l| l.contains(id)).unwrap_or_default();
        assert!(line.contains(&said), "{line}");
        assert!(
            line.contains(&format!(
                "royalty-ingest alerts unknown-tracks --alert {id}"
            )),
            "a readable alert of several tracks says where the rest are: {line}"
        );
    }
}

#[tokio::test]
async fn a_catalog_update_changing_a_upc_alerts_and_opens_a_version_without_touching_old_rows() {
    let s = setup("it.drift", 1).await;
    let catalog = common::fresh_topic("it.drift.catalog", 1).await;
    load_catalog(&s.pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let producer = common::producer();
    let before = lines_for(93, 1, 20, ISRC, &upc_for(1));
    publish(&producer, &s.topic, 3, &before).await;
    let mut args = s.run_args("it-catalog");
    args.catalog_topic = catalog.clone();
    run_until_idle(args.clone()).await;
    assert_eq!(
        common::topic_size(&s.alerts),
        0,
        "lines matching the catalog raise nothing"
    );
    let old_version: i64 = sqlx::query_scalar("SELECT version_id FROM catalog_versions")
        .fetch_one(&s.pool)
        .await
        .expect("version");

    // Backdated: effective before the period of the lines already booked.
    let update = common::catalog_update(&entry(ISRC, &upc_for(2), "2026-07-01"), "label-ops");
    common::send(&producer, &catalog, ISRC.as_bytes(), &update).await;
    run_until_idle(args).await;

    let found = alerts_on(&s.alerts, 1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, "catalog_upc_changed");
    assert_eq!(found[0].expected.as_deref(), Some(upc_for(1).as_str()));
    assert_eq!(found[0].received.as_deref(), Some(upc_for(2).as_str()));
    let versions: Vec<(i64, chrono::NaiveDate, Option<chrono::NaiveDate>)> = sqlx::query_as(
        "SELECT version_id, valid_from, valid_to FROM catalog_versions ORDER BY valid_from",
    )
    .fetch_all(&s.pool)
    .await
    .expect("versions");
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0],
        (old_version, day("2026-01-01"), Some(day("2026-07-01"))),
        "old version closed at the new date, its content untouched"
    );
    assert_eq!((versions[1].1, versions[1].2), (day("2026-07-01"), None));
    let source: String =
        sqlx::query_scalar("SELECT source FROM catalog_versions WHERE valid_to IS NULL")
            .fetch_one(&s.pool)
            .await
            .expect("source");
    assert!(source.starts_with("label-ops ("), "{source}");
    let untouched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM royalty_ledger WHERE catalog_version_id = $1 AND upc = $2 AND version = 1",
    )
    .bind(old_version)
    .bind(upc_for(1))
    .fetch_one(&s.pool)
    .await
    .expect("rows");
    assert_eq!(
        untouched, 20,
        "history is never re-attributed, even by a backdated update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_drifting_stream_neither_loses_nor_multiplies_alerts() {
    let s = setup("it.drift.crash", 2).await;
    // 20 catalogued ISRCs; every 10th line carries a wrong UPC out of 5 possible ones.
    let isrcs: Vec<String> = (0..20).map(|i| format!("GBQZA24{:05}", 100 + i)).collect();
    let catalog: Vec<RawCatalogEntry> = isrcs
        .iter()
        .map(|i| entry(i, &upc_for(1), "2026-01-01"))
        .collect();
    load_catalog(&s.pool, &catalog).await;
    let mut expected_drifts = HashSet::new();
    let mut drifting = 0i64;
    let lines: Vec<DecodedLine> = distinct_lines(94, 1, 6_000)
        .into_iter()
        .enumerate()
        .map(|(n, mut l)| {
            l.isrc = isrcs[n % 20].clone();
            l.upc = Some(upc_for(1));
            l.label = None;
            l.artist = None;
            if n % 10 == 0 {
                l.upc = Some(upc_for(50 + (n as u64 / 10) % 5));
                expected_drifts.insert((l.isrc.clone(), l.upc.clone().unwrap_or_default()));
                drifting += 1;
            }
            l
        })
        .collect();
    let records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| (record_key(l), encode(3, l)))
        .collect();
    let group = format!("it-drift-crash-{}", common::unique_suffix());
    let run = [
        "--topics",
        &s.topic,
        "--dlq-topic",
        &s.dlq,
        "--alerts-topic",
        &s.alerts,
        "--group",
        &group,
        "--batch-size",
        "300",
        "--linger-ms",
        "20",
        "--metrics-addr",
        "",
        "--no-create-topics",
        "--catalog-topic",
        "",
        "--instance-id",
        "drift-crash",
    ];
    let streaming = publish_in_background(common::producer(), &s.topic, records);
    kill_at_thresholds(&run, &s.url, &s.pool, &[0, 900, 2_100, 3_300, 4_500]).await;
    streaming.await.expect("producer");
    let mut last = spawn_run(
        &[&run[..], &["--exit-when-idle-ms", "3000"]].concat(),
        &s.url,
    );
    assert!(
        wait_exit(&mut last, Duration::from_secs(300))
            .await
            .success()
    );

    assert_eq!(ledger_count(&s.pool).await, 6_000);
    let (distinct, occurrences): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT drift_id), sum(occurrences)::bigint FROM drift_events",
    )
    .fetch_one(&s.pool)
    .await
    .expect("drift events");
    assert_eq!(
        distinct,
        expected_drifts.len() as i64,
        "one drift per distinct (ISRC, UPC)"
    );
    assert_eq!(
        occurrences, drifting,
        "every drifting line counted exactly once"
    );
    let published = alerts_on(&s.alerts, common::topic_size(&s.alerts) as usize);
    let ids: HashSet<&str> = published.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids.len(), expected_drifts.len(), "no alert lost");
    let pairs: HashSet<(String, String)> = published
        .iter()
        .map(|a| (a.isrc.clone(), a.received.clone().unwrap_or_default()))
        .collect();
    assert_eq!(pairs, expected_drifts);
}

#[tokio::test]
async fn alerts_tail_json_prints_one_parseable_object_per_alert() {
    let s = setup("it.tail", 1).await;
    load_catalog(&s.pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let mut lines = lines_for(95, 1, 4, ISRC, &upc_for(7));
    lines[1].upc = Some(upc_for(8));
    lines[2].isrc = "USRC17607839".into();
    publish(&common::producer(), &s.topic, 3, &lines).await;
    let args = s.run_args("it-tail");
    run_until_idle(args).await;
    assert_eq!(common::topic_size(&s.alerts), 3);

    let output = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args([
            "alerts",
            "tail",
            "--json",
            "--from-beginning",
            "--alerts-topic",
            &s.alerts,
            "--limit",
            "2",
        ])
        .args(["--kind", "upc_mismatch", "--idle-exit-ms", "30000"])
        .env("KAFKA_BROKERS", common::brokers())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("alerts tail");
    assert!(output.status.success(), "{output:?}");
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(printed.len(), 2, "the unknown-ISRC alert is filtered out");
    let received: HashSet<&str> = printed
        .iter()
        .filter_map(|a| a["received"].as_str())
        .collect();
    assert_eq!(
        received,
        HashSet::from([upc_for(7).as_str(), upc_for(8).as_str()])
    );
    for alert in &printed {
        assert_eq!(alert["kind"], "upc_mismatch");
        assert_eq!(alert["isrc"], ISRC);
        assert!(
            alert["alert_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("drift-"))
        );
    }
}

#[tokio::test]
async fn alerts_tail_dsp_matches_every_dsp_that_showed_the_drift() {
    let s = setup("it.tail", 1).await;
    load_catalog(&s.pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    // The same UPC drift, first at one DSP, then at another: one alert, naming the first.
    let mut lines = lines_for(96, 1, 2, ISRC, &upc_for(7));
    lines[0].dsp_name = "Spotify".into();
    lines[1].dsp_name = "Deezer".into();
    publish(&common::producer(), &s.topic, 3, &lines).await;
    let args = s.run_args("it-tail-dsp");
    run_until_idle(args).await;
    assert_eq!(common::topic_size(&s.alerts), 1);

    let tail = |dsp: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
            .args(["alerts", "tail", "--json", "--from-beginning"])
            .args([
                "--alerts-topic",
                &s.alerts,
                "--dsp",
                dsp,
                "--idle-exit-ms",
                "3000",
            ])
            .env("KAFKA_BROKERS", common::brokers())
            .env("DATABASE_URL", &s.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("alerts tail");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    assert_eq!(tail("spotify"), 1, "the DSP that raised it");
    assert_eq!(tail("DEEZER"), 1, "a DSP that showed it later");
    assert_eq!(tail("TIDAL"), 0, "a DSP that never showed it");
}

/// Bitemporal catalog: a backdated correction changes what is in effect for a period, and
/// `catalog as-of --known-at` still answers what the catalog said before it.
#[tokio::test]
async fn catalog_as_of_answers_what_was_known_at_a_time_even_after_a_backdated_update() {
    let (url, pool) = common::fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let isrc = "GBQZA2400042";
    let import = |label: &str, from: &str| {
        let file = dir.path().join(format!("{label}.csv"));
        std::fs::write(
            &file,
            format!("isrc,upc,label,valid_from\n{isrc},036000291452,{label},{from}\n"),
        )
        .expect("write csv");
        file
    };
    let now = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT clock_timestamp()")
                .fetch_one(&pool)
                .await
                .expect("clock")
        }
    };
    let load = |file: std::path::PathBuf| {
        let url = url.clone();
        async move {
            let output = common::pipeline::royalty_ingest(
                &["catalog", "import", &file.to_string_lossy(), "--no-publish"],
                &url,
            )
            .await;
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    load(import("First", "2026-01-01")).await;
    let t1 = now().await;
    load(import("Second", "2026-06-01")).await;
    let t2 = now().await;
    // Backdated: from March on it was "Corrected" all along, learned only now.
    load(import("Corrected", "2026-03-01")).await;
    let t3 = now().await;

    let label_at = |period: &'static str, known_at: chrono::DateTime<chrono::Utc>| {
        let url = url.clone();
        async move {
            let output = common::pipeline::royalty_ingest(
                &[
                    "catalog",
                    "as-of",
                    isrc,
                    "--period",
                    period,
                    "--known-at",
                    &known_at.to_rfc3339(),
                    "--json",
                ],
                &url,
            )
            .await;
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let json: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("as-of --json");
            json["label"].as_str().unwrap_or_default().to_string()
        }
    };
    assert_eq!(label_at("2026-04-01", t1).await, "First");
    assert_eq!(label_at("2026-04-01", t2).await, "First");
    assert_eq!(label_at("2026-04-01", t3).await, "Corrected");
    assert_eq!(
        label_at("2026-07-01", t1).await,
        "First",
        "before June was known"
    );
    assert_eq!(label_at("2026-07-01", t3).await, "Second");
    // Who closed whom, and when.
    let (closed, by): (Option<chrono::DateTime<chrono::Utc>>, Option<i64>) = sqlx::query_as(
        "SELECT closed_at, superseded_by FROM catalog_versions WHERE label = 'First'",
    )
    .fetch_one(&pool)
    .await
    .expect("first version");
    assert!(
        closed.is_some_and(|c| c > t2 && c <= t3),
        "closed by the last load: {closed:?}"
    );
    let corrected: i64 =
        sqlx::query_scalar("SELECT version_id FROM catalog_versions WHERE label = 'Corrected'")
            .fetch_one(&pool)
            .await
            .expect("corrected version");
    assert_eq!(by, Some(corrected));
    let too_early = common::pipeline::royalty_ingest(
        &["catalog", "as-of", isrc, "--period", "2025-12-01"],
        &url,
    )
    .await;
    assert!(!too_early.status.success());
}

/// Found by review of what reaches PostgreSQL unchecked: a catalog update whose sender
/// `source` holds a NUL (PostgreSQL text cannot) once failed its whole batch again and
/// again. The entry is applied with the character replaced; the run goes on.
#[tokio::test]
async fn a_catalog_update_with_a_nul_in_its_source_does_not_stop_the_run() {
    let s = setup("it.drift.nul", 1).await;
    let catalog = common::fresh_topic("it.drift.nulcat", 1).await;
    let update = common::catalog_update(&entry(ISRC, &upc_for(1), "2026-01-01"), "label\0ops");
    let producer = common::producer();
    common::send(&producer, &catalog, ISRC.as_bytes(), &update).await;
    let lines = lines_for(97, 1, 5, ISRC, &upc_for(1));
    publish(&producer, &s.topic, 3, &lines).await;
    let mut args = s.run_args("it-nul");
    args.catalog_topic = catalog;
    let run = tokio::time::timeout(Duration::from_secs(60), run_until_idle(args))
        .await
        .expect("the run ends by itself");
    assert_eq!(run.stats.dead_letters, 0);
    let source: String = sqlx::query_scalar("SELECT source FROM catalog_versions")
        .fetch_one(&s.pool)
        .await
        .expect("the entry was applied");
    assert!(source.starts_with("label\u{fffd}ops"), "{source}");
    assert_eq!(ledger_count(&s.pool).await, 5);
}

/// Two lanes that meet the same new drift at once, each finding it unknown, raise and count
/// one alert between them: the lane whose transaction waited for the other's counts none (a
/// 2-partition run under load once counted two).
#[tokio::test]
async fn two_lanes_meeting_the_same_new_drift_at_once_count_one_alert() {
    two_lanes_meet_one_new_drift(false).await;
}

/// The same, when the relay published the first lane's alert (and deleted its outbox row)
/// before the second lane enqueued its own: the second plans again once it meets the first's
/// rows, and raises nothing.
#[tokio::test]
async fn a_lane_meeting_a_drift_another_lane_just_raised_and_published_raises_nothing() {
    two_lanes_meet_one_new_drift(true).await;
}

async fn two_lanes_meet_one_new_drift(published_at_once: bool) {
    let (_url, pool) = common::fresh_database().await;
    load_catalog(&pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let decoded = lines_for(93, 1, 1, ISRC, &upc_for(99)).remove(0);
    let line = validate::validate(&decoded).expect("valid line");
    let mut conn = pool.acquire().await.expect("connection");
    let versions = versions_at(&mut conn, &[(ISRC, line.report_period)])
        .await
        .expect("versions");
    drop(conn);
    let version = versions.values().next().expect("the loaded version");
    let drifts = detect_line(&line, Some(version), true, true, "raw[0]@1");
    assert_eq!(drifts.len(), 1, "one UPC drift: {drifts:?}");
    let store = SchemaStore::builtin().expect("schemas");
    let settings = DriftSettings {
        alerts_topic: "alerts".into(),
        alert_unknown_isrc: true,
        alert_schema: store.latest(DRIFT_ALERT).expect("alert schema"),
    };

    let mut first = pool.begin().await.expect("begin");
    let raised_first = record_drifts(&mut first, &drifts, &settings)
        .await
        .expect("first lane");
    // The second lane's transaction waits on the first's rows until it commits.
    let second = tokio::spawn({
        let (pool, drifts, settings) = (pool.clone(), drifts.clone(), settings.clone());
        async move {
            let mut tx = pool.begin().await.expect("begin");
            let raised = record_drifts(&mut tx, &drifts, &settings)
                .await
                .expect("second lane");
            tx.commit().await.expect("commit");
            raised
        }
    });
    common::wait_until(
        Duration::from_secs(30),
        "the second lane waiting on the first",
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n > 0)
            }
        },
    )
    .await;
    if published_at_once {
        // As the relay would, the moment the first lane commits.
        sqlx::query("DELETE FROM outbox")
            .execute(&mut *first)
            .await
            .expect("published");
    }
    first.commit().await.expect("commit");
    let raised_second = second.await.expect("second lane task");

    assert_eq!(raised_first.ids.len(), 1, "the first lane raises the alert");
    assert_eq!(raised_second.ids.len(), 0, "the second finds it raised");
    assert_eq!(
        raised_first.by_kind.iter().sum::<u64>() + raised_second.by_kind.iter().sum::<u64>(),
        1
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    let waiting = if published_at_once { 0 } else { 1 };
    assert_eq!(outbox, waiting, "one alert, published or waiting");
    let occurrences: i64 = sqlx::query_scalar("SELECT sum(occurrences)::bigint FROM drift_events")
        .fetch_one(&pool)
        .await
        .expect("occurrences");
    assert_eq!(occurrences, 2, "both lanes' lines counted");
}

/// Migrations `20261207000001_lean_appends` and `20261209000002_drift_events_lean` on drift
/// tables with rows: every event, count and acknowledgement kept, the tracks still listed by
/// alert and by report, and the next batch counts onto the same rows.
#[tokio::test]
async fn drift_rows_recorded_before_the_lean_appends_migration_are_kept_and_counted_on() {
    let (url, pool) = common::fresh_database().await;
    for undo in [common::UNDO_DRIFT_EVENTS_LEAN, common::UNDO_LEAN_APPENDS] {
        sqlx::raw_sql(undo)
            .execute(&pool)
            .await
            .expect("back to the schema before the migrations");
    }
    load_catalog(&pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let mut lines = unknown_report(41, 1, 40, "Spotify");
    lines.extend(lines_for(42, 5_000, 3, ISRC, &upc_for(9)));
    let stats = commit(&pool, &one_batch(&lines, 0, None)).await;
    assert_eq!((stats.drift_alerts, stats.unknown_tracks), (2, 40));
    let upc_drift: String =
        sqlx::query_scalar("SELECT min(drift_id) FROM drift_events WHERE kind = 'upc_mismatch'")
            .fetch_one(&pool)
            .await
            .expect("the UPC drift");
    assert!(
        royalty_ingest::drift::review::acknowledge(&pool, &upc_drift, "ops", "label informed")
            .await
            .expect("acknowledge")
    );
    let events = "SELECT drift_id, dsp_name, isrc, kind, occurrences, alert_id
                    FROM drift_events ORDER BY drift_id, dsp_name";
    let before: Vec<(String, String, String, String, i64, Option<String>)> = sqlx::query_as(events)
        .fetch_all(&pool)
        .await
        .expect("events");
    let unknown_rows = before.iter().filter(|e| e.3 == "unknown_isrc").count();
    assert_eq!(unknown_rows, 40, "a row per unknown track");
    let lines_counted: i64 = before.iter().map(|e| e.4).sum();
    assert_eq!(lines_counted, 43);

    royalty_ingest::db::migrate(&pool).await.expect("migrate");
    // As `run` after an upgrade: new sessions (the pool's hold statements prepared against
    // the old column types, which PostgreSQL refuses to reuse).
    pool.close().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("reconnect");

    let after: Vec<(String, String, String, String, i64, Option<String>)> = sqlx::query_as(events)
        .fetch_all(&pool)
        .await
        .expect("events");
    assert_eq!(after, before, "every event as it was");
    let (indexes, fk): (Vec<String>, i64) = sqlx::query_as(
        "SELECT (SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes
                  WHERE tablename = 'drift_events'),
                (SELECT count(*) FROM pg_constraint
                  WHERE conname = 'ledger_revisions_line_fkey')",
    )
    .fetch_one(&pool)
    .await
    .expect("schema");
    assert_eq!(indexes, vec!["drift_events_alert", "drift_events_pkey"]);
    assert_eq!(fk, 0, "the journal's foreign key is gone");
    // And 20261209000002: the alert index hashed, the catalog foreign key gone.
    let (alert_index, catalog_fk): (String, i64) = sqlx::query_as(
        "SELECT (SELECT indexdef FROM pg_indexes WHERE indexname = 'drift_events_alert'),
                (SELECT count(*) FROM pg_constraint
                  WHERE conrelid = 'drift_events'::regclass AND contype = 'f')",
    )
    .fetch_one(&pool)
    .await
    .expect("drift_events schema");
    assert!(
        alert_index.contains("USING hash (alert_id)"),
        "{alert_index}"
    );
    assert_eq!(catalog_fk, 0);
    assert_eq!(
        acknowledged_ids(&pool).await,
        vec![upc_drift.clone()],
        "the acknowledgement still joins its drift"
    );
    let alert_id = before
        .iter()
        .find_map(|e| e.5.clone().filter(|_| e.3 == "unknown_isrc"))
        .expect("the report's alert");
    assert_eq!(
        unknown_tracks(&url, &["--alert", &alert_id]).await.len(),
        40
    );
    assert_eq!(
        unknown_tracks(&url, &["--report", "spotify-202609"])
            .await
            .len(),
        40
    );

    // More lines of the same tracks: counted onto the same rows, nothing announced.
    let (again, counts) = the_same_tracks_again(&pool, &lines).await;
    assert_eq!(again.drift_alerts, 0);
    assert_eq!(counts, (before.len() as i64, 2 * lines_counted));
}

/// Commits other lines of the same tracks after `lines` (their transaction ids suffixed),
/// and returns the batch's statistics and the `drift_events` rows and occurrences after it.
async fn the_same_tracks_again(
    pool: &PgPool,
    lines: &[DecodedLine],
) -> (royalty_ingest::ledger::BatchStats, (i64, i64)) {
    let mut more = lines.to_vec();
    for line in &mut more {
        line.transaction_id = format!("{}-B", line.transaction_id);
    }
    let next = lines.len() as i64;
    let again = commit(pool, &one_batch(&more, next, Some(next))).await;
    let counts: (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(occurrences)::bigint FROM drift_events")
            .fetch_one(pool)
            .await
            .expect("counts");
    (again, counts)
}

/// The ids of the drift acknowledged so far, as the review lists them.
async fn acknowledged_ids(pool: &PgPool) -> Vec<String> {
    royalty_ingest::drift::review::drifts(pool, None, Some(true), 10)
        .await
        .expect("acknowledged drift")
        .into_iter()
        .map(|d| d.drift_id)
        .collect()
}

/// Migration `20261210000001_unknown_track_ids` on drift tables with rows recorded under the
/// hashed ids: each unknown track's row gets its new id and keeps everything else, its
/// acknowledgement moves along, other drift keeps its id, the report's alert still lists
/// its tracks, and the next lines of the same tracks are counted on the same rows with
/// nothing announced again.
#[tokio::test]
async fn unknown_tracks_recorded_under_hashed_ids_keep_their_rows_and_acknowledgements() {
    let (url, pool) = common::fresh_database().await;
    load_catalog(&pool, &[entry(ISRC, &upc_for(1), "2026-01-01")]).await;
    let mut lines = unknown_report(43, 1, 30, "Spotify");
    lines.extend(lines_for(44, 5_000, 3, ISRC, &upc_for(9)));
    let stats = commit(&pool, &one_batch(&lines, 0, None)).await;
    assert_eq!((stats.drift_alerts, stats.unknown_tracks), (2, 30));
    sqlx::raw_sql(common::UNDO_UNKNOWN_TRACK_IDS)
        .execute(&pool)
        .await
        .expect("back to hashed ids");
    let (hashed, hashed_isrc): (String, String) = sqlx::query_as(
        "SELECT drift_id, isrc FROM drift_events WHERE kind = 'unknown_isrc'
          ORDER BY isrc LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("an unknown track");
    assert!(
        hashed.starts_with("drift-") && hashed.len() == 38,
        "recorded as before: {hashed}"
    );
    assert!(
        royalty_ingest::drift::review::acknowledge(&pool, &hashed, "ops", "catalog team told")
            .await
            .expect("acknowledge")
    );
    let rows = "SELECT isrc, dsp_name, kind, occurrences, alert_id, first_report_id,
                       first_source, first_period::text
                  FROM drift_events ORDER BY isrc, kind";
    type Row = (
        String,
        String,
        String,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let before: Vec<Row> = sqlx::query_as(rows).fetch_all(&pool).await.expect("events");
    let other_ids = "SELECT array_agg(drift_id ORDER BY drift_id) FROM drift_events
                      WHERE kind <> 'unknown_isrc'";
    let others_before: Vec<String> = sqlx::query_scalar(other_ids)
        .fetch_one(&pool)
        .await
        .expect("other drift");

    royalty_ingest::db::migrate(&pool).await.expect("migrate");

    let after: Vec<Row> = sqlx::query_as(rows).fetch_all(&pool).await.expect("events");
    assert_eq!(after, before, "every row kept as it was");
    let misnamed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM drift_events
          WHERE kind = 'unknown_isrc' AND drift_id <> 'drift-unknown-isrc-' || isrc",
    )
    .fetch_one(&pool)
    .await
    .expect("ids");
    assert_eq!(misnamed, 0, "every unknown track under its new id");
    let others_after: Vec<String> = sqlx::query_scalar(other_ids)
        .fetch_one(&pool)
        .await
        .expect("other drift");
    assert_eq!(
        others_after, others_before,
        "other drift keeps its hashed id"
    );
    assert_eq!(
        acknowledged_ids(&pool).await,
        vec![format!("drift-unknown-isrc-{hashed_isrc}")],
        "the acknowledgement moved with its drift"
    );
    let alert_id = before
        .iter()
        .find_map(|e| e.4.clone().filter(|_| e.2 == "unknown_isrc"))
        .expect("the report's alert");
    assert_eq!(
        unknown_tracks(&url, &["--alert", &alert_id]).await.len(),
        30
    );

    // More lines of the same tracks: counted onto the same rows, nothing announced.
    let (again, counts) = the_same_tracks_again(&pool, &lines).await;
    assert_eq!((again.drift_alerts, again.unknown_tracks), (0, 0));
    let lines_counted: i64 = before.iter().map(|e| e.3).sum();
    assert_eq!(counts, (before.len() as i64, 2 * lines_counted));
}

/// A track the catalog knows only from a later date is not unknown in an earlier period
/// (the catalog does not cover that period); a track it does not know at all is, in the
/// same batch, from the same lookup.
#[tokio::test]
async fn a_track_catalogued_only_from_a_later_date_is_not_an_unknown_isrc() {
    let (_url, pool) = common::fresh_database().await;
    load_catalog(&pool, &[entry(ISRC, &upc_for(1), "2026-10-01")]).await;
    let mut lines = lines_for(51, 1, 2, ISRC, &upc_for(1));
    lines.extend(unknown_report(52, 100, 1, "Spotify"));
    let stats = commit(&pool, &one_batch(&lines, 0, None)).await;
    assert_eq!(stats.post.inserted, 3);
    assert_eq!((stats.drift_alerts, stats.unknown_tracks), (1, 1));
    let isrcs: Vec<String> = sqlx::query_scalar("SELECT isrc FROM drift_events")
        .fetch_all(&pool)
        .await
        .expect("drift rows");
    assert_eq!(
        isrcs,
        vec![unknown_report(52, 100, 1, "Spotify")[0].isrc.clone()]
    );
    let versions: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT catalog_version_id FROM royalty_ledger")
            .fetch_all(&pool)
            .await
            .expect("ledger");
    assert!(
        versions.iter().all(Option::is_none),
        "no version at September"
    );
}
