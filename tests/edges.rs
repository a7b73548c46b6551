//! The edges a new user touches first, each once wrong: repeated or empty topic names
//! (once a segfault in the admin client), a catalog header with unknown or missing
//! columns (once loaded blank artists), commands that never exited on a missing topic or
//! an unreachable broker, `alerts tail --group` resuming past alerts, and output into a
//! pipe whose reader left (`| head`: once a panic in every command).

mod common;

use std::process::{Command, Output, Stdio};

use common::pipeline::{
    distinct_lines, ledger_count, publish, royalty_ingest, royalty_ingest_into_closed_pipe,
    royalty_ingest_with_env,
};
use royalty_ingest::avro::SchemaStore;
use royalty_ingest::drift::alert::{DRIFT_ALERT, DriftAlert};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `run` over one topic of the test's own, as a batch job.
fn run_args<'a>(topics: &'a str, dlq: &'a str, alerts: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--topics",
        topics,
        "--dlq-topic",
        dlq,
        "--alerts-topic",
        alerts,
        "--catalog-topic",
        "",
        "--metrics-addr",
        "",
        "--group",
        "it-edges",
        "--exit-when-idle-ms",
        "1500",
    ]
}

#[tokio::test]
async fn a_repeated_input_topic_is_read_once_and_bad_topic_names_are_refused_by_name() {
    let topic = common::fresh_topic("it.edges.raw", 2).await;
    let dlq = common::fresh_topic("it.edges.dlq", 1).await;
    let alerts = common::fresh_topic("it.edges.alerts", 1).await;
    let (url, pool) = common::fresh_database().await;
    publish(&common::producer(), &topic, 3, &distinct_lines(41, 1, 20)).await;

    let repeated = format!("{topic},{topic}");
    let output = royalty_ingest(&run_args(&repeated, &dlq, &alerts), &url).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(ledger_count(&pool).await, 20);

    let output = royalty_ingest(&run_args(",", &dlq, &alerts), &url).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--topics: empty topic name"),
        "{}",
        stderr(&output)
    );

    let output = royalty_ingest(&run_args(&topic, &topic, &alerts), &url).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("--dlq-topic {topic:?} is also an input topic")),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_missing_input_topic_ends_a_batch_job_with_an_error_naming_it() {
    let dlq = common::fresh_topic("it.edges.dlq", 1).await;
    let alerts = common::fresh_topic("it.edges.alerts", 1).await;
    let (url, _pool) = common::fresh_database().await;
    let missing = format!("it.edges.missing.{}", common::unique_suffix());
    let mut args = run_args(&missing, &dlq, &alerts);
    args.push("--no-create-topics");
    let output = royalty_ingest(&args, &url).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("input topic(s) [{missing:?}] do not exist")),
        "{}",
        stderr(&output)
    );

    // The same through the environment, spelled as many operators spell a boolean.
    let output = Command::new(env!("CARGO_BIN_EXE_royalty-ingest"))
        .args(run_args(&missing, &dlq, &alerts))
        .env("ROYALTY_NO_CREATE_TOPICS", "1")
        .env("KAFKA_BROKERS", common::brokers())
        .env("DATABASE_URL", &url)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("do not exist"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn alerts_tail_against_an_unreachable_broker_exits_with_one_clear_message() {
    let (url, _pool) = common::fresh_database().await;
    // The flag wins over the KAFKA_BROKERS the helper sets.
    let output = royalty_ingest(
        &[
            "alerts",
            "tail",
            "--brokers",
            "127.0.0.1:9",
            "--idle-exit-ms",
            "2000",
        ],
        &url,
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("127.0.0.1:9 did not answer within 10 s"),
        "{text}"
    );
    assert!(
        text.lines().count() <= 3,
        "one message, not one per retry:\n{text}"
    );
}

#[tokio::test]
async fn alerts_tail_group_resumes_where_it_stopped_even_after_a_session_without_alerts() {
    let alerts = common::fresh_topic("it.edges.alerts", 2).await;
    let (url, _pool) = common::fresh_database().await;
    let group = format!("it-tail-{}", common::unique_suffix());
    let tail = |group: String, alerts: String, url: String| async move {
        royalty_ingest(
            &[
                "alerts",
                "tail",
                "--json",
                "--alerts-topic",
                &alerts,
                "--group",
                &group,
                "--idle-exit-ms",
                "3000",
            ],
            &url,
        )
        .await
    };
    let first = tail(group.clone(), alerts.clone(), url.clone()).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(first.stdout.is_empty(), "no alert yet");

    // Published between the two sessions.
    let store = SchemaStore::builtin().expect("schemas");
    let schema = store.latest(DRIFT_ALERT).expect("alert schema");
    let alert = DriftAlert {
        alert_id: format!("drift-{}", common::unique_suffix()),
        kind: "upc_mismatch".into(),
        isrc: "GBQZA2400001".into(),
        expected: Some("036000291452".into()),
        received: Some("6291041500213".into()),
        catalog_version_id: Some(1),
        dsp_name: "spotify".into(),
        report_id: None,
        report_period: Some("2026-09-01".into()),
        transaction_id: Some("T-1".into()),
        source: "raw[0]@5".into(),
        detected_at: "2026-11-27T00:00:00+00:00".into(),
        tracks: 1,
        isrc_sample: vec!["GBQZA2400001".into()],
    };
    let message = alert.to_message(&schema, &alerts).expect("encode alert");
    common::send(
        &common::producer(),
        &alerts,
        message.key.as_deref().unwrap_or_default(),
        message.payload.as_deref().unwrap_or_default(),
    )
    .await;

    let second = tail(group.clone(), alerts.clone(), url.clone()).await;
    assert!(second.status.success(), "{}", stderr(&second));
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&second.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(printed.len(), 1, "the alert published between sessions");
    assert_eq!(printed[0]["alert_id"], alert.alert_id.as_str());

    let third = tail(group, alerts, url).await;
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(third.stdout.is_empty(), "already shown to this group");
}

/// Runs `catalog import` on `csv` with a test database; publishing is left out.
async fn import(csv: &str, url: &str) -> Output {
    import_with(csv, url, &["--no-publish"]).await
}

/// Runs `catalog import` on `csv` with a test database and the given flags.
async fn import_with(csv: &str, url: &str, flags: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("catalog.csv");
    std::fs::write(&file, csv).expect("write csv");
    let path = file.to_string_lossy().into_owned();
    let mut args = vec!["catalog", "import", &path];
    args.extend_from_slice(flags);
    royalty_ingest(&args, url).await
}

/// Bad rows were skipped with exit 0 (a cron job saw success with entries missing), while
/// `produce` exits 1 for refused lines: now the same rule, `--max-skipped` as
/// `--max-refused`.
#[tokio::test]
async fn catalog_import_with_bad_rows_loads_nothing_and_exits_1_unless_max_skipped_allows_them() {
    let (url, pool) = common::fresh_database().await;
    let csv = "isrc,upc,valid_from\n\
               USRC17607839,036000291452,2026-01-01\n\
               USRC17607840,036000291453,2026-01-01\n";
    let versions = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM catalog_versions")
            .fetch_one(&pool)
            .await
            .expect("count")
    };

    let refused = import(csv, &url).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let text = stderr(&refused);
    assert!(
        text.contains("catalog.csv:3: upc: gs1_check_digit"),
        "{text}"
    );
    assert!(
        text.contains("1 bad row(s) (listed above); nothing was loaded")
            && text.contains("--max-skipped 1"),
        "{text}"
    );
    assert_eq!(versions().await, 0, "nothing loaded past --max-skipped");

    let allowed = import_with(csv, &url, &["--no-publish", "--max-skipped", "1"]).await;
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    assert!(
        String::from_utf8_lossy(&allowed.stdout).contains("1 bad rows"),
        "{allowed:?}"
    );
    assert_eq!(versions().await, 1, "the good row is loaded");
}

/// An unreachable broker left the alerts of an import in the outbox and exited 0: the
/// subscribers never heard, and nothing said so to a script.
#[tokio::test]
async fn catalog_import_whose_alerts_cannot_be_published_exits_1_and_says_what_to_do() {
    let (url, pool) = common::fresh_database().await;
    let header = "isrc,upc,label,valid_from\n";
    let first = import(
        &format!("{header}USRC17607839,036000291452,Harbor,2026-01-01\n"),
        &url,
    )
    .await;
    assert!(first.status.success(), "{}", stderr(&first));

    // A new UPC set from March on raises a catalog_upc_changed alert.
    let second = import_with(
        &format!("{header}USRC17607839,5012345678900,Harbor,2026-03-01\n"),
        &url,
        &["--brokers", "127.0.0.1:9"],
    )
    .await;
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let text = stderr(&second);
    assert!(
        text.contains("the catalog is loaded, but its 1 drift alert(s) were not published"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1:9 did not answer"), "{text}");
    assert!(
        text.contains("wait in the outbox; start `royalty-ingest run`"),
        "{text}"
    );
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    assert_eq!(pending, 1, "the alert waits for run");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_versions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(versions, 2, "the import itself is committed");
}

#[tokio::test]
async fn a_catalog_header_with_unknown_or_missing_columns_loads_nothing() {
    let (url, pool) = common::fresh_database().await;
    let row = "USRC17607839,036000291452,Song,Mira Kade,Harbor,,2026-01-01";
    for (header, expected) in [
        (
            "isrc,upc,title,performer,label,iswc,valid_from\n",
            "unknown column(s) [\"performer\"]",
        ),
        (
            "",
            "missing required column(s) [\"isrc\", \"upc\", \"valid_from\"]",
        ),
        (
            "code,ean,title,display_artist,label,iswc,valid_from\n",
            "missing required column(s) [\"isrc\", \"upc\"]",
        ),
    ] {
        let output = import(&format!("{header}{row}\n"), &url).await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let text = stderr(&output);
        assert!(text.contains(expected), "{text}");
        assert!(text.contains("nothing was loaded"), "{text}");
        assert_eq!(
            text.lines().count(),
            1,
            "one header error, not one per row: {text}"
        );
    }
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_versions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(versions, 0);
}

#[tokio::test]
async fn an_empty_catalog_cell_keeps_the_known_value_instead_of_erasing_it() {
    let (url, pool) = common::fresh_database().await;
    let header = "isrc,upc,title,display_artist,label,iswc,valid_from\n";
    let first = import(
        &format!("{header}USRC17607839,036000291452,Song,Mira Kade,Harbor,,2026-01-01\n"),
        &url,
    )
    .await;
    assert!(first.status.success(), "{}", stderr(&first));
    // A later export that leaves the artist out restates nothing about it.
    let second = import(
        &format!("{header}USRC17607839,036000291452,Song,,Harbor,,2026-03-01\n"),
        &url,
    )
    .await;
    assert!(second.status.success(), "{}", stderr(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("0 new versions, 0 superseded, 1 unchanged"),
        "{stdout}"
    );
    let artists: Vec<Option<String>> =
        sqlx::query_scalar("SELECT display_artist FROM catalog_versions")
            .fetch_all(&pool)
            .await
            .expect("versions");
    assert_eq!(artists, vec![Some("Mira Kade".to_string())]);
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    assert_eq!(alerts, 0, "no catalog_artist_changed alert");
}

/// A DSR report file `produce` publishes lines and control totals from.
const DSR_FIXTURE: &str =
    "tests/fixtures/dsr/DSR_TEST_YouTube_AdSupport-music_2015-Q4_IS_1of1_20160121T150926.tsv";

/// `… | head -1` made every command panic ("failed printing to stdout: Broken pipe", exit
/// 101), and `produce` stop after the lines, before the control totals. A reader that left
/// drops the output, never the work (README, "Output into a pipe").
#[tokio::test]
async fn a_reader_that_left_the_pipe_stops_no_command_and_no_work() {
    let (url, _pool) = common::fresh_database().await;
    for args in [
        &["config", "show"][..],
        &["--help"],
        &["dlq", "list", "--help"],
    ] {
        let output = royalty_ingest_into_closed_pipe(args, &url).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            !stderr(&output).contains("panicked"),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    let raw = common::fresh_topic("it.edges.pipe.raw", 1).await;
    let summaries = common::fresh_topic("it.edges.pipe.sum", 1).await;
    let output = royalty_ingest_into_closed_pipe(
        &[
            "produce",
            "--topic",
            &raw,
            "--summaries-topic",
            &summaries,
            DSR_FIXTURE,
        ],
        &url,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(common::topic_size(&raw) > 0, "the lines are published");
    assert!(
        common::topic_size(&summaries) > 0,
        "the control totals are published after the output was dropped"
    );
}

/// `alerts tail | head -3`: printing is its only job, so it stops once nobody reads, even
/// while no alert arrives (it would otherwise follow the topic for ever).
#[tokio::test]
async fn alerts_tail_stops_when_the_reader_of_its_output_left() {
    let alerts = common::fresh_topic("it.edges.alerts", 1).await;
    let (url, _pool) = common::fresh_database().await;
    let group = format!("it-tail-{}", common::unique_suffix());
    let output = royalty_ingest_into_closed_pipe(
        &[
            "alerts",
            "tail",
            "--alerts-topic",
            &alerts,
            "--group",
            &group,
        ],
        &url,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// `--kafka-property` values were applied after the consumer's and producers' safety
/// settings: `auto.offset.reset=earliest` replaced `error` (lost records skipped silently),
/// `acks=1` the producers' `all`. Such a property now stops the command before it connects,
/// naming the property and the flag meant for it.
#[tokio::test]
async fn a_kafka_property_undoing_a_safety_setting_is_refused_by_name() {
    let (url, _pool) = common::fresh_database().await;
    let output = royalty_ingest(
        &[
            "run",
            "--kafka-property",
            "auto.offset.reset=earliest",
            "--metrics-addr",
            "",
        ],
        &url,
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("auto.offset.reset=earliest would override auto.offset.reset=error"),
        "{text}"
    );
    assert!(text.contains("--allow-offset-skip"), "{text}");

    let topic = format!("it.edges.unsafe.{}", common::unique_suffix());
    let output = royalty_ingest_with_env(
        &["sample", "--lines", "10", "--topic", &topic],
        &url,
        &[("KAFKA_PROPERTIES", "linger.ms=1,acks=1")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("acks=1 would override acks=all"),
        "{}",
        stderr(&output)
    );
}

/// `catalog as-of` printed JSON with or without `--json`; a reader gets a table, a
/// script asks for JSON.
#[tokio::test]
async fn catalog_as_of_prints_a_table_and_json_only_with_json() {
    let (url, _pool) = common::fresh_database().await;
    let loaded = import(
        "isrc,upc,label,valid_from\nUSRC17607839,036000291452,Harbor,2026-01-01\n",
        &url,
    )
    .await;
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    let args = [
        "catalog",
        "as-of",
        "US-RC1-76-07839",
        "--period",
        "2026-04-01",
    ];

    let text = royalty_ingest(&args, &url).await;
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "not JSON by default: {text}"
    );
    assert!(text.contains("label          Harbor\n"), "{text}");
    assert!(text.contains("upcs           036000291452\n"), "{text}");
    assert!(text.contains("title          -\n"), "{text}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let json = royalty_ingest(&json_args, &url).await;
    assert!(json.status.success(), "{}", stderr(&json));
    let stdout = String::from_utf8_lossy(&json.stdout);
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("--json is JSON");
    assert_eq!(value["label"], "Harbor");
    assert_eq!(value["isrc"], "USRC17607839");
}

/// `--config FILE` worked with every command but was in no command's `--help` (only in the
/// top-level description), and `--metrics-addr`'s help left out `/readyz`.
#[tokio::test]
async fn every_help_shows_config_and_the_metrics_address_names_readyz() {
    let (url, _pool) = common::fresh_database().await;
    for command in [
        &["run"][..],
        &["produce"],
        &["reconcile"],
        &["sample"],
        &["catalog", "import"],
        &["catalog", "as-of"],
        &["alerts", "tail"],
        &["alerts", "unknown-tracks"],
        &["dlq", "list"],
        &["dlq", "show"],
        &["dlq", "replay"],
        &["config", "show"],
        &["migrate"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let output = royalty_ingest(&args, &url).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("--config <FILE>") && help.contains("ROYALTY_CONFIG"),
            "{args:?}:\n{help}"
        );
    }
    let output = royalty_ingest(&["run", "--help"], &url).await;
    let help = String::from_utf8_lossy(&output.stdout);
    let metrics_addr = help
        .split("--metrics-addr <METRICS_ADDR>")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert!(metrics_addr.contains(path), "{path}: {metrics_addr}");
    }
}

/// `sample` wrote its progress as `\rpublished N/M` redraws even into a log file or a
/// pipe, where they pile up on one line; only a terminal gets them now.
#[tokio::test]
async fn sample_draws_no_progress_line_when_stderr_is_not_a_terminal() {
    let (url, _pool) = common::fresh_database().await;
    let topic = common::fresh_topic("it.edges.sample", 1).await;
    let output = royalty_ingest(&["sample", "--lines", "1500", "--topic", &topic], &url).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(!text.contains('\r'), "no redraws off a terminal: {text:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("published 1500 records"),
        "{output:?}"
    );
}

/// The "partitions assigned" log printed Rust's debug structures
/// (`[Assignment { partition: TopicPartition { topic: "…", … } }]`); it says
/// `topic[partition]@offset` now, as every other log does.
#[tokio::test]
async fn the_assignment_log_names_topic_partition_and_offset() {
    let topic = common::fresh_topic("it.edges.assign", 2).await;
    let dlq = common::fresh_topic("it.edges.dlq", 1).await;
    let alerts = common::fresh_topic("it.edges.alerts", 1).await;
    let (url, _pool) = common::fresh_database().await;
    let output = royalty_ingest_with_env(
        &run_args(&topic, &dlq, &alerts),
        &url,
        &[("RUST_LOG", "info")],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    let line = text
        .lines()
        .find(|l| l.contains("partitions assigned"))
        .unwrap_or_else(|| panic!("no assignment logged: {text}"));
    for partition in 0..2 {
        assert!(
            line.contains(&format!("{topic}[{partition}]@earliest")),
            "{line}"
        );
    }
    assert!(
        !line.contains("Assignment {") && !line.contains("TopicPartition {"),
        "{line}"
    );
}
