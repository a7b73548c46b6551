//! A dead letter made obsolete by the DSP's corrected resend is closed as superseded (issue
//! 19, item 12): `produce` → `run` → the ledger, `dlq` and `reconcile` on the real broker and
//! database, with the files in `tests/fixtures/versions`.

mod common;

use std::process::Output;

use chrono::NaiveDate;
use common::pipeline::{encode, royalty_ingest};
use common::produce::dec;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::sample::record_key;
use rust_decimal::Decimal;

const FIXTURES: &str = "tests/fixtures/versions";
const GROUP: &str = "it-superseded";

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The produce tests' fixture, with this test's profile and the dead-letter commands.
struct Setup(common::produce::Setup);

impl Setup {
    async fn new() -> Setup {
        Setup(common::produce::Setup::new("superseded", GROUP).await)
    }

    /// Publishes a statement through `produce`, as the DSP's files arrive.
    async fn produce(&self, file: &str, extra: &[&str]) {
        let (profile, file) = (fixture("statement.toml"), fixture(file));
        let mut args = vec!["--profile", &profile];
        args.extend_from_slice(extra);
        args.push(&file);
        let output = self.0.produce(&args).await;
        assert!(output.status.success(), "{}", text(&output));
    }

    async fn ingest(&self) {
        self.0.ingest().await;
    }

    async fn dlq(&self, extra: &[&str]) -> Output {
        let mut args = vec!["dlq"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--dlq-topic", &self.0.dlq]);
        royalty_ingest(&args, &self.0.url).await
    }

    /// `dlq list --each --json`: every dead letter with its status.
    async fn letters(&self) -> Vec<serde_json::Value> {
        let output = self.dlq(&["list", "--each", "--json"]).await;
        assert!(output.status.success(), "{}", text(&output));
        let list: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("one JSON object");
        list["letters"].as_array().expect("letters").clone()
    }

    async fn open_letters(&self) -> u64 {
        let output = self.dlq(&["list", "--json"]).await;
        assert!(output.status.success(), "{}", text(&output));
        let list: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("one JSON object");
        list["open"].as_u64().expect("open")
    }

    async fn reconcile(&self) -> Output {
        self.0.reconcile(&[]).await
    }

    /// Lines, quantity and amount in the ledger.
    async fn ledger(&self) -> (i64, i64, Decimal) {
        self.0.ledger("").await
    }
}

/// Deezer's statement ST-12 reports 30,000,000 streams for one track, which the label's
/// ledger refuses (a plausibility constraint of its own): the line is dead-lettered and
/// stays open, also when the same version is published again. The DSP's corrected resend
/// books the line: both letters close as superseded, naming the version that did it, the
/// ledger holds the corrected statement exactly and `reconcile` says so. A copy of the
/// line's first version refused after the correction is closed as it is refused.
#[tokio::test]
async fn a_corrected_resend_closes_the_dead_letter_of_the_line_it_corrects() {
    let s = Setup::new().await;
    // The label's own rule, in its ledger: no track streams 30 million times a month at
    // one DSP in one territory.
    sqlx::query(
        "ALTER TABLE royalty_ledger ADD CONSTRAINT plausible_streams
            CHECK (stream_count < 10000000)",
    )
    .execute(&s.0.pool)
    .await
    .expect("constraint");

    s.produce("statement_ST-12_v1.csv", &[]).await;
    s.ingest().await;
    assert_eq!(s.ledger().await, (2, 500, dec("5.00")));
    let letters = s.letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["status"], "open", "{letters:?}");
    assert_eq!(letters[0]["class"], "database_rejected", "{letters:?}");
    let first = letters[0]["id"].as_str().expect("id").to_string();
    let differs = s.reconcile().await;
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs));
    assert!(
        text(&differs).contains("database_rejected"),
        "the refused line explains the difference:\n{}",
        text(&differs)
    );

    // The same version again: nothing newer is booked, so its letter stays open too.
    s.produce("statement_ST-12_v1.csv", &["--republish"]).await;
    s.ingest().await;
    assert_eq!(s.open_letters().await, 2);

    // The DSP's corrected resend (a later report time): the line is booked.
    s.produce("statement_ST-12_v2.csv", &[]).await;
    s.ingest().await;
    assert_eq!(
        s.ledger().await,
        (3, 800, dec("8.40")),
        "the corrected statement"
    );
    assert_eq!(s.open_letters().await, 0);
    let letters = s.letters().await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    for letter in &letters {
        assert_eq!(letter["status"], "superseded", "{letter}");
        let by = letter["superseded_by"].as_str().expect("superseded_by");
        assert!(
            by.contains(
                "the version of report ST-12 made 2026-10-12T00:00:00.000Z was booked from"
            ) && by.contains(&s.0.raw),
            "{by}"
        );
    }
    let open = s.dlq(&["list", "--open"]).await;
    assert!(
        text(&open).contains("no dead letters match"),
        "{}",
        text(&open)
    );
    let show = s.dlq(&["show", &first]).await;
    assert!(show.status.success(), "{}", text(&show));
    assert!(
        text(&show).contains("status        superseded (the version of report ST-12 made"),
        "{}",
        text(&show)
    );
    let matched = s.reconcile().await;
    assert_eq!(matched.status.code(), Some(0), "{}", text(&matched));
    // A replay would only be journaled as stale: skipped.
    let replay = s.dlq(&["replay", "--yes", "--dry-run"]).await;
    assert!(replay.status.success(), "{}", text(&replay));
    assert!(
        text(&replay).contains("skipped 2 (0 already booked, 2 superseded"),
        "{}",
        text(&replay)
    );

    // The old copy published once more after the correction: older than what is booked,
    // its lines are journaled as stale and not applied; nothing is refused or opened.
    s.produce("statement_ST-12_v1.csv", &["--republish"]).await;
    s.ingest().await;
    assert_eq!(s.ledger().await, (3, 800, dec("8.40")));
    assert_eq!(s.open_letters().await, 0);

    // Another producer's copy of the line at the first version, its UPC's check digit
    // wrong: refused by validation, and closed as it is refused (what is booked is newer).
    let (dsp_name, period, transaction_id): (String, NaiveDate, String) = sqlx::query_as(
        "SELECT dsp_name, report_period, transaction_id FROM royalty_ledger
          WHERE isrc = 'GBQZA2400022'",
    )
    .fetch_one(&s.0.pool)
    .await
    .expect("the booked line");
    let old_copy = DecodedLine {
        isrc: "GBQZA2400022".into(),
        upc: Some("731453000000".into()),
        dsp_name,
        report_period: period.to_string(),
        transaction_id,
        stream_count: 30_000_000,
        royalty_amount: dec("3.00"),
        currency: "EUR".into(),
        territory: Some("SE".into()),
        usage_type: Some("stream".into()),
        line_type: None,
        label: None,
        artist: None,
        report_id: Some("ST-12".into()),
    };
    // Versioned as a producer does: the report's time in a header, published now.
    common::producer()
        .send(
            FutureRecord::to(&s.0.raw)
                .key(record_key(&old_copy).as_bytes())
                .payload(&encode(4, &old_copy))
                .headers(OwnedHeaders::new().insert(Header {
                    key: "royalty.report.time",
                    value: Some("2026-10-01T00:00:00Z"),
                })),
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("acknowledged");
    s.ingest().await;
    assert_eq!(s.ledger().await, (3, 800, dec("8.40")));
    let letters = s.letters().await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    let refused = letters
        .iter()
        .find(|l| l["class"] == "gs1_check_digit")
        .expect("the validation refusal");
    assert_eq!(refused["status"], "superseded", "{refused}");
    assert_eq!(s.open_letters().await, 0, "{letters:?}");
    let (superseded, by_hand): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE superseded_version = '2026-10-12T00:00:00Z'
                                   AND resolved_note LIKE 'the version of report ST-12 %'),
                count(*) FILTER (WHERE resolved_by_user IS NOT NULL)
           FROM quarantine",
    )
    .fetch_one(&s.0.pool)
    .await
    .expect("quarantine");
    assert_eq!((superseded, by_hand), (3, 0));
}

/// 20,000 open letters of lines of one period (keys: SHA-256 of 1…20,000), for the plan
/// tests.
const OPEN_LETTERS: &str = "
         INSERT INTO quarantine (source_topic, source_partition, source_offset, consumer_group,
                                 error_stage, error_class, reason, dead_letter_id, line_key,
                                 report_period)
         SELECT 'raw', 0, n, 'g', 'validate', 'isrc_format', 'bad ISRC', 'dl-' || n,
                sha256(int8send(n)), date '2026-07-01'
           FROM generate_series(1, 20000) AS n;";

/// The superseding update reaches each open letter it found by the letter's address, also
/// when the statistics still describe an empty quarantine: joined by id, PostgreSQL hashed
/// every open letter for each batch (6 ms a batch at 9,000 open letters, growing with them).
#[tokio::test]
async fn superseding_fetches_each_letter_by_address_whatever_the_statistics() {
    let (_url, pool) = common::fresh_database().await;
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::raw_sql(
        "SET enable_seqscan = off;
         ALTER TABLE quarantine SET (autovacuum_enabled = false);
         ANALYZE quarantine;",
    )
    .execute(&mut *conn)
    .await
    .expect("statistics of an empty quarantine");
    sqlx::raw_sql(OPEN_LETTERS)
        .execute(&mut *conn)
        .await
        .expect("open letters the statistics do not know of");
    let letters: Vec<(i64, String, chrono::NaiveDate, Vec<u8>)> = sqlx::query_as(
        "SELECT quarantine_id, ctid::text, report_period, line_key FROM quarantine
          ORDER BY quarantine_id DESC LIMIT 60",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("letters");
    let explain = format!(
        "EXPLAIN (FORMAT TEXT) {}",
        royalty_ingest::ledger::dead_letter::SUPERSEDE_SQL
    );
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .bind(letters.iter().map(|l| l.0).collect::<Vec<_>>())
        .bind(letters.iter().map(|l| l.1.clone()).collect::<Vec<_>>())
        .bind(letters.iter().map(|l| l.2).collect::<Vec<_>>())
        .bind(letters.iter().map(|l| l.3.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .expect("plan");
    let plan = plan.join("\n");
    assert!(plan.contains("Tid Scan on quarantine q"), "{plan}");
    for every_letter in ["Hash Join", "Merge Join", "Bitmap Heap Scan on quarantine"] {
        assert!(!plan.contains(every_letter), "{plan}");
    }
}

/// The open letters of a batch's lines are found one probe per key, also when the
/// statistics still describe an empty ledger and quarantine and every join but a nested
/// loop is made the cheapest: a line the batch only refused is looked up in quarantine
/// only if the ledger holds its row, found by the primary key, never by reading the ledger.
#[tokio::test]
async fn superseding_candidates_are_probed_by_key_whatever_the_statistics() {
    let (_url, pool) = common::fresh_database().await;
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::raw_sql(
        "ALTER TABLE quarantine SET (autovacuum_enabled = false);
         ALTER TABLE royalty_ledger SET (autovacuum_enabled = false);
         ANALYZE quarantine;
         ANALYZE royalty_ledger;",
    )
    .execute(&mut *conn)
    .await
    .expect("statistics of an empty ledger and quarantine");
    sqlx::raw_sql(OPEN_LETTERS)
        .execute(&mut *conn)
        .await
        .expect("open letters");
    sqlx::raw_sql(
        "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc,
                stream_count, royalty_amount, currency, source_topic, source_partition,
                source_offset, source_timestamp)
         SELECT sha256(int8send(n)), 'StreamCo', date '2026-07-01', 'T-' || n, 'GBQZA2400001',
                1, 1, 'GBP', 'raw', 1, n, now()
           FROM generate_series(1, 20000) AS n;
         SET enable_nestloop = off;",
    )
    .execute(&mut *conn)
    .await
    .expect("lines the statistics do not know of");
    let keys = |from: i64| -> Vec<Vec<u8>> {
        (from..from + 60)
            .map(|n| {
                use sha2::Digest;
                sha2::Sha256::digest(n.to_be_bytes()).to_vec()
            })
            .collect()
    };
    let periods = vec![chrono::NaiveDate::from_ymd_opt(2026, 7, 1).expect("date"); 60];
    let explain = format!(
        "EXPLAIN (FORMAT TEXT) {}",
        royalty_ingest::ledger::dead_letter::SUPERSEDE_CANDIDATES_SQL
    );
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .bind(&periods)
        .bind(keys(1))
        .bind(&periods)
        .bind(keys(19_000))
        .fetch_all(&mut *conn)
        .await
        .expect("plan");
    let plan = plan.join("\n");
    assert!(
        plan.contains("using royalty_ledger_pkey on royalty_ledger"),
        "{plan}"
    );
    assert!(
        plan.contains("using quarantine_open_line on quarantine"),
        "{plan}"
    );
    for whole_table in [
        "Seq Scan on royalty_ledger",
        "Seq Scan on quarantine",
        "Hash Join",
        "Merge Join",
    ] {
        assert!(!plan.contains(whole_table), "{plan}");
    }
}
