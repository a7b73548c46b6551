//! The dead-letter reviewer's workflow on the real broker and database: lines in a schema
//! version `run` does not know yet are dead-lettered, listed, shown, replayed once the
//! schema is added, and booked exactly once however often the replay is repeated; an old
//! version replayed after a restatement stays stale; a replay killed halfway and run again
//! books every line once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::pipeline::{
    ChildGuard, count, distinct_lines, encode, expected_totals, kill_hard, ledger_totals,
    royalty_ingest, run_args, run_until_idle,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use royalty_ingest::avro::{WriterSchema, encode_single_object};
use royalty_ingest::config::SchemaArgs;
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::sample::record_key;
use rust_decimal::Decimal;

/// A royalty-line version the built-in schemas lack: v3 plus an optional field.
const NEW_VERSION: u32 = 9;

fn new_schema_json() -> String {
    let v3: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/royalty_line.v3.avsc")).expect("v3 json");
    let mut schema = v3;
    schema["doc"] = "Test writer version 9: v3 plus a track title.".into();
    schema["fields"].as_array_mut().expect("fields").push(
        serde_json::json!({"name": "track_title", "type": ["null", "string"], "default": null}),
    );
    schema.to_string()
}

fn encode_new(line: &DecodedLine) -> Vec<u8> {
    let schema = WriterSchema::parse(&new_schema_json()).expect("v9 parses");
    encode_single_object(&schema, line).expect("encode v9")
}

/// Two schema directories: the built-in versions, and the same plus version 9.
struct SchemaDirs {
    _root: tempfile::TempDir,
    known: PathBuf,
    with_new: PathBuf,
}

fn schema_dirs() -> SchemaDirs {
    let root = tempfile::tempdir().expect("tempdir");
    let known = root.path().join("known");
    let with_new = root.path().join("with_new");
    for dir in [&known, &with_new] {
        std::fs::create_dir(dir).expect("mkdir");
        for version in 1..=3 {
            let file = format!("royalty_line.v{version}.avsc");
            std::fs::copy(Path::new("schemas").join(&file), dir.join(&file)).expect("copy schema");
        }
    }
    std::fs::write(
        with_new.join(format!("royalty_line.v{NEW_VERSION}.avsc")),
        new_schema_json(),
    )
    .expect("write v9");
    SchemaDirs {
        _root: root,
        known,
        with_new,
    }
}

/// Publishes records with explicit timestamps (ms), keyed by line identity.
async fn publish_at(
    producer: &FutureProducer,
    topic: &str,
    records: &[(DecodedLine, Vec<u8>, i64)],
) {
    for chunk in records.chunks(500) {
        let sends = chunk.iter().map(|(line, value, ts)| {
            let key = record_key(line);
            async move {
                producer
                    .send(
                        FutureRecord::to(topic)
                            .key(key.as_bytes())
                            .payload(value.as_slice())
                            .timestamp(*ts),
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .expect("record acknowledged");
            }
        });
        futures::future::join_all(sends).await;
    }
}

/// Runs the pipeline in-process over `topic` with the given schema directory.
async fn ingest(topic: &str, dlq: &str, url: &str, schemas: &Path) {
    let mut args = run_args(topic, dlq, url, "it-dlq");
    args.schemas = SchemaArgs {
        schemas_dir: Some(schemas.to_path_buf()),
        registry_url: None,
    };
    run_until_idle(args).await;
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a `dlq` subcommand that must succeed; returns its stdout.
async fn dlq_ok(args: &[&str], url: &str) -> String {
    let output = royalty_ingest(args, url).await;
    assert!(
        output.status.success(),
        "royalty-ingest {args:?} failed: {}\n{}",
        stderr(&output),
        stdout(&output)
    );
    stdout(&output)
}

/// `dlq list --json` with extra filters, parsed.
async fn list_json(dlq: &str, url: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["dlq", "list", "--dlq-topic", dlq, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&dlq_ok(&args, url).await).expect("dlq list --json parses")
}

#[tokio::test]
async fn unknown_schema_lines_are_replayed_once_the_schema_is_known_and_booked_once() {
    let dirs = schema_dirs();
    let topic = common::fresh_topic("it.dlq.raw", 2).await;
    let dlq = common::fresh_topic("it.dlq.dlq", 2).await;
    let (url, pool) = common::fresh_database().await;
    let known_dir = dirs.known.to_string_lossy().into_owned();
    let new_dir = dirs.with_new.to_string_lossy().into_owned();

    // 1,000 lines: half in v3, half in a version `run` does not know yet.
    let lines = distinct_lines(801, 1, 1000);
    let now = chrono::Utc::now().timestamp_millis();
    let records: Vec<(DecodedLine, Vec<u8>, i64)> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let value = if i % 2 == 0 {
                encode(3, line)
            } else {
                encode_new(line)
            };
            (line.clone(), value, now - 60_000 + i as i64)
        })
        .collect();
    publish_at(&common::producer(), &topic, &records).await;
    ingest(&topic, &dlq, &url, &dirs.known).await;
    assert_eq!(ledger_totals(&pool).await.0, 500);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM quarantine WHERE error_class = 'unknown_fingerprint'"
        )
        .await,
        500
    );

    // The report: one group, 500 open; filters that match nothing give nothing.
    let all = list_json(&dlq, &url, &[]).await;
    assert_eq!(all["total"], 500, "{all}");
    assert_eq!(all["open"], 500, "{all}");
    assert_eq!(all["groups"].as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all["groups"][0]["class"], "unknown_fingerprint");
    assert_eq!(all["groups"][0]["stage"], "decode");
    assert_eq!(all["groups"][0]["source_topic"], topic.as_str());
    for filter in [
        &["--class", "iso4217_code"][..],
        &["--stage", "validate"][..],
        &["--source-topic", "another.topic"][..],
        &["--since", "2999-01-01"][..],
        &["--until", "2000-01-01"][..],
    ] {
        let none = list_json(&dlq, &url, filter).await;
        assert_eq!(none["total"], 0, "{filter:?}: {none}");
    }
    let each = list_json(&dlq, &url, &["--each", "--class", "unknown_fingerprint"]).await;
    let ids: Vec<String> = each["letters"]
        .as_array()
        .expect("letters")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 500);
    // The reason names the fingerprint once (it once added "(writer schema fingerprint
    // 0x…)" after saying it).
    let reason = each["letters"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no writer schema with fingerprint 0x")
            && reason.matches("0x").count() == 1,
        "{reason}"
    );

    // `show`: hex while the schema is unknown, the line once it is; an unknown id fails.
    let shown: serde_json::Value = serde_json::from_str(
        &dlq_ok(
            &["dlq", "show", "--dlq-topic", &dlq, "--json", &ids[0]],
            &url,
        )
        .await,
    )
    .expect("show --json parses");
    assert!(shown["payload"]["hex"].is_string(), "{shown}");
    assert_eq!(shown["quarantine"]["error_class"], "unknown_fingerprint");
    let shown: serde_json::Value = serde_json::from_str(
        &dlq_ok(
            &[
                "dlq",
                "show",
                "--dlq-topic",
                &dlq,
                "--json",
                "--schemas-dir",
                &new_dir,
                &ids[0],
            ],
            &url,
        )
        .await,
    )
    .expect("show --json parses");
    let txn = shown["payload"]["decoded"]["transaction_id"]
        .as_str()
        .expect("decoded line");
    assert!(lines.iter().any(|l| l.transaction_id == txn), "{shown}");
    let missing = royalty_ingest(
        &["dlq", "show", "--dlq-topic", &dlq, "dl-does-not-exist"],
        &url,
    )
    .await;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no dead letter \"dl-does-not-exist\""),
        "{}",
        stderr(&missing)
    );

    // A dry run and an unconfirmed replay send nothing and record nothing.
    let before = common::topic_size(&topic);
    let dry = dlq_ok(
        &[
            "dlq",
            "replay",
            "--dlq-topic",
            &dlq,
            "--class",
            "unknown_fingerprint",
            "--dry-run",
        ],
        &url,
    )
    .await;
    assert!(dry.contains("would replay 500"), "{dry}");
    let unconfirmed = royalty_ingest(&["dlq", "replay", "--dlq-topic", &dlq], &url).await;
    assert!(!unconfirmed.status.success());
    assert!(
        stderr(&unconfirmed).contains("--yes"),
        "{}",
        stderr(&unconfirmed)
    );
    let to_dlq = royalty_ingest(
        &["dlq", "replay", "--dlq-topic", &dlq, "--to", &dlq, "--yes"],
        &url,
    )
    .await;
    assert!(!to_dlq.status.success());
    assert_eq!(common::topic_size(&topic), before);
    assert_eq!(count(&pool, "SELECT count(*) FROM dlq_replays").await, 0);

    // Replayed before the fix: refused again, each new dead letter names the one it
    // replays, and the open count stays 500 (the old ones are superseded).
    dlq_ok(
        &[
            "dlq",
            "replay",
            "--dlq-topic",
            &dlq,
            "--yes",
            "--note",
            "too early",
        ],
        &url,
    )
    .await;
    ingest(&topic, &dlq, &url, &dirs.known).await;
    assert_eq!(ledger_totals(&pool).await.0, 500);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM quarantine WHERE replay_of IS NOT NULL"
        )
        .await,
        500
    );
    let open = list_json(&dlq, &url, &["--open"]).await;
    assert_eq!(open["total"], 500, "{open}");

    // The fix: the schema is added, the open ones replayed (the superseded skipped).
    let replay = dlq_ok(
        &[
            "dlq",
            "replay",
            "--dlq-topic",
            &dlq,
            "--open",
            "--yes",
            "--schemas-dir",
            &known_dir,
            "--note",
            "v9 deployed",
        ],
        &url,
    )
    .await;
    assert!(replay.contains("replayed 500"), "{replay}");
    ingest(&topic, &dlq, &url, &dirs.with_new).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM quarantine WHERE resolved_line_key IS NULL OR resolved_topic IS NULL").await,
        0
    );

    // Again, even forcing the resend: still 1,000 lines, no revision, nothing open.
    let again = dlq_ok(&["dlq", "replay", "--dlq-topic", &dlq, "--yes"], &url).await;
    assert!(again.contains("nothing to replay"), "{again}");
    dlq_ok(
        &[
            "dlq",
            "replay",
            "--dlq-topic",
            &dlq,
            "--yes",
            "--include-resolved",
        ],
        &url,
    )
    .await;
    ingest(&topic, &dlq, &url, &dirs.with_new).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM ledger_revisions").await,
        0
    );
    let open = list_json(&dlq, &url, &["--open"]).await;
    assert_eq!(open["total"], 0, "{open}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM dlq_replays WHERE finished_at IS NOT NULL"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn a_replayed_old_version_stays_stale_after_a_restatement() {
    let dirs = schema_dirs();
    let topic = common::fresh_topic("it.dlq.stale", 1).await;
    let dlq = common::fresh_topic("it.dlq.staledlq", 1).await;
    let (url, pool) = common::fresh_database().await;

    let line = distinct_lines(802, 1, 1).remove(0);
    let mut restated = line.clone();
    restated.royalty_amount += Decimal::new(125, 2);
    let t1 = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let t2 = t1 + 60_000;
    // t1 in the version not known yet (refused), t2 (a restatement) in v3 (booked).
    publish_at(
        &common::producer(),
        &topic,
        &[
            (line.clone(), encode_new(&line), t1),
            (restated.clone(), encode(3, &restated), t2),
        ],
    )
    .await;
    ingest(&topic, &dlq, &url, &dirs.known).await;
    assert_eq!(
        ledger_totals(&pool).await,
        expected_totals(std::slice::from_ref(&restated))
    );

    dlq_ok(&["dlq", "replay", "--dlq-topic", &dlq, "--yes"], &url).await;
    ingest(&topic, &dlq, &url, &dirs.with_new).await;
    assert_eq!(
        ledger_totals(&pool).await,
        expected_totals(std::slice::from_ref(&restated))
    );
    let (applied, old, new): (bool, Decimal, Decimal) = sqlx::query_as(
        "SELECT applied, old_royalty_amount, new_royalty_amount FROM ledger_revisions",
    )
    .fetch_one(&pool)
    .await
    .expect("one revision: the stale t1 version");
    assert!(!applied);
    assert_eq!(old, restated.royalty_amount);
    assert_eq!(new, line.royalty_amount);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM quarantine WHERE resolved_at IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_replay_killed_halfway_and_run_again_books_every_line_once() {
    let dirs = schema_dirs();
    let topic = common::fresh_topic("it.dlq.kill", 2).await;
    let dlq = common::fresh_topic("it.dlq.killdlq", 2).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(803, 1, 600);
    let now = chrono::Utc::now().timestamp_millis();
    let records: Vec<(DecodedLine, Vec<u8>, i64)> = lines
        .iter()
        .map(|l| (l.clone(), encode_new(l), now))
        .collect();
    publish_at(&common::producer(), &topic, &records).await;
    ingest(&topic, &dlq, &url, &dirs.known).await;
    assert_eq!(ledger_totals(&pool).await.0, 0);

    // A slow replay, killed once part of it is acknowledged.
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
            .args([
                "dlq",
                "replay",
                "--dlq-topic",
                &dlq,
                "--yes",
                "--max-per-sec",
                "50",
            ])
            .env("KAFKA_BROKERS", common::brokers())
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dlq replay"),
    );
    common::wait_until(
        Duration::from_secs(60),
        "part of the replay acknowledged",
        || {
            let pool = pool.clone();
            async move { count(&pool, "SELECT count(*) FROM dlq_replay_items").await >= 100 }
        },
    )
    .await;
    kill_hard(&mut child);
    let sent = count(&pool, "SELECT count(*) FROM dlq_replay_items").await;
    assert!(
        sent < 600,
        "the replay finished before the kill ({sent} sent)"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM dlq_replays WHERE finished_at IS NULL"
        )
        .await,
        1
    );

    let rerun = dlq_ok(&["dlq", "replay", "--dlq-topic", &dlq, "--yes"], &url).await;
    assert!(rerun.contains("replayed 600"), "{rerun}");
    assert!(
        rerun.contains(&format!("{sent} of them replayed before")),
        "{rerun}"
    );
    ingest(&topic, &dlq, &url, &dirs.with_new).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM ledger_revisions").await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_dead_letter_the_broker_refused_is_listed_and_replayed_from_quarantine() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let dirs = schema_dirs();
    let topic = common::fresh_topic("it.dlq.big", 1).await;
    // A dead-letter topic that takes at most 4 KB per record: a large refused record plus
    // its headers does not fit.
    let dlq = format!("it.dlq.small.{}", common::unique_suffix());
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .create()
        .expect("admin client");
    for result in
        admin
            .create_topics(
                [&NewTopic::new(&dlq, 1, TopicReplication::Fixed(1))
                    .set("max.message.bytes", "4096")],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .expect("create topic")
    {
        result.expect("topic created");
    }
    let (url, pool) = common::fresh_database().await;

    let lines = distinct_lines(804, 1, 2);
    // The first record carries a 20,000-character header of its own (incompressible: the
    // relay's producer compresses), which its dead letter keeps: too large for the DLQ.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: String = (0..20_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [(state >> 58) as usize % 62],
            )
        })
        .collect();
    let producer = common::producer();
    let now = chrono::Utc::now().timestamp_millis();
    let key = record_key(&lines[0]);
    let value = encode_new(&lines[0]);
    producer
        .send(
            FutureRecord::to(&topic)
                .key(key.as_bytes())
                .payload(value.as_slice())
                .timestamp(now)
                .headers(
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: "trace",
                        value: Some(noise.as_str()),
                    }),
                ),
            Duration::from_secs(60),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("record acknowledged");
    publish_at(
        &producer,
        &topic,
        &[(lines[1].clone(), encode_new(&lines[1]), now)],
    )
    .await;

    // The batch job ends non-zero: one dead letter could not be published.
    let mut args = run_args(&topic, &dlq, &url, "it-dlq");
    args.schemas = SchemaArgs {
        schemas_dir: Some(dirs.known.clone()),
        registry_url: None,
    };
    royalty_ingest::observe::init_tracing();
    let outcome =
        royalty_ingest::pipeline::run(args, tokio_util::sync::CancellationToken::new()).await;
    assert!(
        outcome.is_err(),
        "an unpublished dead letter must fail the batch job"
    );

    let summary = list_json(&dlq, &url, &[]).await;
    assert_eq!(summary["total"], 2, "{summary}");
    assert_eq!(summary["groups"][0]["unpublished"], 1, "{summary}");
    let each = list_json(&dlq, &url, &["--each"]).await;
    let parked: Vec<&serde_json::Value> = each["letters"]
        .as_array()
        .expect("letters")
        .iter()
        .filter(|l| l["place"]["kind"] == "unpublished")
        .collect();
    assert_eq!(parked.len(), 1, "{each}");
    let id = parked[0]["id"].as_str().expect("id").to_string();
    let shown = dlq_ok(&["dlq", "show", "--dlq-topic", &dlq, &id], &url).await;
    assert!(shown.contains("NOT on"), "{shown}");

    // Replayed from its quarantine copy (with its own header), booked.
    let replay = dlq_ok(&["dlq", "replay", "--dlq-topic", &dlq, "--yes"], &url).await;
    assert!(replay.contains("replayed 2"), "{replay}");
    let mut args = run_args(&topic, &dlq, &url, "it-dlq");
    args.schemas = SchemaArgs {
        schemas_dir: Some(dirs.with_new.clone()),
        registry_url: None,
    };
    // Still non-zero (the parked dead letter is still not publishable), but both booked.
    let _ = royalty_ingest::pipeline::run(args, tokio_util::sync::CancellationToken::new()).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    let replayed = common::read_topic(&topic, 4, Duration::from_secs(30));
    let copy = replayed
        .iter()
        .find(|r| r.header("royalty.replay.of").as_deref() == Some(id.as_str()))
        .expect("the parked dead letter was replayed");
    assert_eq!(copy.header("trace").as_deref(), Some(noise.as_str()));
    assert_eq!(copy.timestamp, Some(now));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL"
        )
        .await,
        0
    );
}

/// `--class upc_check_digit` (once the example in `--help`; the class is
/// `gs1_check_digit`), `--class nonsense` and `--stage bogus` printed "no dead letters
/// match" with exit 0: a reviewer read a typo as good news. Now they are refused with the
/// valid names, on `list` and on `replay`.
#[tokio::test]
async fn an_unknown_class_or_stage_is_refused_with_the_valid_ones_listed() {
    let topic = common::fresh_topic("it.dlq.raw", 1).await;
    let dlq = common::fresh_topic("it.dlq.dlq", 1).await;
    let (url, _pool) = common::fresh_database().await;
    let mut line = distinct_lines(77, 1, 1).remove(0);
    line.upc = Some("036000291453".to_string());
    common::pipeline::publish(&common::producer(), &topic, 3, &[line]).await;
    run_until_idle(run_args(&topic, &dlq, &url, "it-dlq-class")).await;

    let listed = list_json(&dlq, &url, &["--class", "gs1_check_digit"]).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let listed = list_json(&dlq, &url, &["--stage", "validate"]).await;
    assert_eq!(listed["total"], 1, "{listed}");

    for (args, expected) in [
        (
            vec!["dlq", "list", "--class", "upc_check_digit"],
            "gs1_check_digit",
        ),
        (
            vec!["dlq", "list", "--class", "nonsense"],
            "unknown_fingerprint",
        ),
        (
            vec!["dlq", "list", "--class", "gs1_check_digit,nonsense"],
            "database_rejected",
        ),
        (
            vec!["dlq", "list", "--stage", "bogus"],
            "decode, validate, ledger",
        ),
        (
            vec!["dlq", "replay", "--class", "nonsense", "--dry-run"],
            "gs1_check_digit",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--dlq-topic", &dlq]);
        let output = royalty_ingest(&args, &url).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let text = stderr(&output);
        assert!(text.contains("invalid value"), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(
            !stdout(&output).contains("no dead letters match"),
            "{args:?}: {}",
            stdout(&output)
        );
    }

    let help = dlq_ok(&["dlq", "list", "--help"], &url).await;
    assert!(
        help.contains("gs1_check_digit") && !help.contains("upc_check_digit"),
        "{help}"
    );
}
