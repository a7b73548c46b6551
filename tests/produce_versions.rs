//! Reports that come back: a DSP's corrected resend, a renamed or re-saved copy, a
//! statement re-issued with a row removed, an old copy published after its correction.
//! Each goes through `produce` → `run` → the ledger and `reconcile` on the real broker and
//! database, with the files in `tests/fixtures/versions`.

mod common;

use std::path::Path;
use std::process::Output;

use common::pipeline::royalty_ingest;
use common::produce::{Setup, dec};
use rust_decimal::Decimal;

const FIXTURES: &str = "tests/fixtures/versions";

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

async fn setup(prefix: &str) -> Setup {
    Setup::new(prefix, "it-versions").await
}

impl Setup {
    async fn produce_ok(&self, extra: &[&str]) -> String {
        let output = self.produce(extra).await;
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    }

    async fn amount_of(&self, isrc: &str) -> Decimal {
        sqlx::query_scalar("SELECT sum(royalty_amount) FROM royalty_ledger WHERE isrc = $1")
            .bind(isrc)
            .fetch_one(&self.pool)
            .await
            .expect("amount")
    }
}

/// Finding 2: a DSR resent with corrections (new MessageId, fresh SalesTransactionIds,
/// later MessageCreatedDateTime, NetRevenue 5000.00 → 5100.00) restates the report's
/// lines instead of booking them a second time; the original published again afterwards
/// changes nothing (finding 5 for DSR).
#[tokio::test]
async fn a_corrected_dsr_resend_restates_its_lines_and_an_old_copy_changes_nothing() {
    let s = setup("dsrv").await;
    let started = chrono::Utc::now().timestamp_millis();
    s.produce_ok(&[&fixture("DSR_StreamCo_GB_2026-09_original.tsv")])
        .await;
    // The report's time (MessageCreatedDateTime, two months back) travels in a header; the
    // records carry the time they were published, which the topic's retention counts from
    // (stamped with the report's own time, a broker's 7-day retention deleted them within
    // minutes, before `run` read them: this test's old flake).
    let raw = tokio::task::spawn_blocking({
        let topic = s.raw.clone();
        move || common::read_topic(&topic, 5, std::time::Duration::from_secs(30))
    })
    .await
    .expect("reader");
    assert_eq!(raw.len(), 5);
    for record in &raw {
        assert_eq!(
            record.header("royalty.report.time").as_deref(),
            Some("2026-10-05T08:00:00.000Z")
        );
        assert!(
            record.timestamp.is_some_and(|at| at >= started - 60_000),
            "published with the time it was sent: {:?}",
            record.timestamp
        );
    }
    s.ingest().await;
    assert_eq!(s.ledger("").await, (5, 15000, dec("5000.00")));

    s.produce_ok(&[&fixture("DSR_StreamCo_GB_2026-09_corrected.tsv")])
        .await;
    s.ingest().await;
    assert_eq!(
        s.ledger("").await,
        (5, 15000, dec("5100.00")),
        "the resend is the same report: its lines restate, none is added"
    );
    let restated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_revisions WHERE applied AND reason IS NULL",
    )
    .fetch_one(&s.pool)
    .await
    .expect("revisions");
    assert_eq!(restated, 5, "every line's new share is journaled");
    let reconciled = s.reconcile(&[]).await;
    assert_eq!(reconciled.status.code(), Some(0), "{}", text(&reconciled));

    // The original again, later: the same content is a no-op; forced out again, it is
    // older by its own creation time, so stale.
    let again = s
        .produce_ok(&[&fixture("DSR_StreamCo_GB_2026-09_original.tsv")])
        .await;
    assert!(again.contains("already published"), "{again}");
    s.produce_ok(&[
        "--republish",
        &fixture("DSR_StreamCo_GB_2026-09_original.tsv"),
    ])
    .await;
    s.ingest().await;
    assert_eq!(s.ledger("").await, (5, 15000, dec("5100.00")));
    let reconciled = s.reconcile(&["--json"]).await;
    assert_eq!(reconciled.status.code(), Some(0), "{}", text(&reconciled));
    let parsed: serde_json::Value =
        serde_json::from_slice(&reconciled.stdout).expect("--json parses");
    assert_eq!(parsed["reports"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        parsed["reports"][0]["ledger_amount"].as_str().map(dec),
        Some(dec("5100.00"))
    );
}

/// Finding 3: a CSV without transaction or report ids, published as is, renamed, saved with
/// CRLF line ends and with one amount corrected, is three lines, not twelve.
#[tokio::test]
async fn a_renamed_resaved_or_corrected_copy_lands_on_the_same_lines() {
    let s = setup("dkv").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let original = fixture("distrokid_2026-09.tsv");
    let body = std::fs::read_to_string(&original).expect("read fixture");
    let renamed = dir.path().join("bank-details-copy.tsv");
    std::fs::write(&renamed, &body).expect("write");
    let crlf = dir.path().join("resaved.tsv");
    std::fs::write(&crlf, body.replace('\n', "\r\n")).expect("write");
    let corrected = dir.path().join("corrected.tsv");
    std::fs::write(&corrected, body.replace("\t0.07\n", "\t0.08\n")).expect("write");

    s.produce_ok(&["--profile", "distrokid", &original]).await;
    // The renamed copy holds the same bytes: a no-op, and produce says so. Sent anyway, it
    // lands on the same lines, as do the re-saved and the corrected copy.
    let copy = s
        .produce_ok(&["--profile", "distrokid", &renamed.to_string_lossy()])
        .await;
    assert!(copy.contains("already published"), "{copy}");
    for file in [&renamed, &crlf, &corrected] {
        s.produce_ok(&[
            "--profile",
            "distrokid",
            "--republish",
            &file.to_string_lossy(),
        ])
        .await;
    }
    s.ingest().await;
    assert_eq!(
        s.ledger("").await,
        (3, 1520, dec("5.257515112")),
        "three lines, the correction applied"
    );
    let reports: i64 = sqlx::query_scalar("SELECT count(*) FROM report_summaries")
        .fetch_one(&s.pool)
        .await
        .expect("summaries");
    assert_eq!(reports, 1, "one report: Spotify's September");
    let reconciled = s.reconcile(&[]).await;
    assert_eq!(reconciled.status.code(), Some(0), "{}", text(&reconciled));
}

/// Findings 4 and 5: a statement re-issued with one row removed and one corrected: no line
/// moves onto another, the removed one is reversed to zero with the reason journaled, and
/// the old statement published afterwards changes nothing.
#[tokio::test]
async fn a_reissued_statement_reverses_the_line_it_no_longer_has() {
    let s = setup("stv").await;
    let profile = fixture("statement.toml");
    s.produce_ok(&["--profile", &profile, &fixture("statement_ST-9_v1.csv")])
        .await;
    s.ingest().await;
    assert_eq!(s.ledger("").await, (4, 1000, dec("10.00")));

    s.produce_ok(&["--profile", &profile, &fixture("statement_ST-9_v2.csv")])
        .await;
    s.ingest().await;
    assert_eq!(s.amount_of("GBQZA2400011").await, dec("1.00"));
    assert_eq!(s.amount_of("GBQZA2400012").await, dec("0"), "reversed");
    assert_eq!(s.amount_of("GBQZA2400013").await, dec("4.50"), "restated");
    assert_eq!(s.amount_of("GBQZA2400014").await, dec("2.00"));
    assert_eq!(s.ledger("").await, (4, 700, dec("7.50")));
    let reason: String = sqlx::query_scalar(
        "SELECT v.reason FROM ledger_revisions v JOIN royalty_ledger l USING (line_key)
          WHERE l.isrc = 'GBQZA2400012' AND v.reason IS NOT NULL",
    )
    .fetch_one(&s.pool)
    .await
    .expect("the reversal is journaled");
    assert!(reason.contains("no longer has this line"), "{reason}");
    let reconciled = s.reconcile(&[]).await;
    assert_eq!(reconciled.status.code(), Some(0), "{}", text(&reconciled));

    // The first statement copied again later: its own report time is older.
    s.produce_ok(&[
        "--profile",
        &profile,
        "--republish",
        &fixture("statement_ST-9_v1.csv"),
    ])
    .await;
    s.ingest().await;
    assert_eq!(s.ledger("").await, (4, 700, dec("7.50")));
    assert_eq!(s.amount_of("GBQZA2400012").await, dec("0"));
    let reconciled = s.reconcile(&[]).await;
    assert_eq!(reconciled.status.code(), Some(0), "{}", text(&reconciled));

    // Had the reversed line stayed booked from the replaced version, reconcile says so.
    sqlx::query(
        "UPDATE royalty_ledger SET royalty_amount = 3.00, stream_count = 300,
                source_timestamp = '2026-10-01T00:00:00Z'
          WHERE isrc = 'GBQZA2400012'",
    )
    .execute(&s.pool)
    .await
    .expect("undo the reversal");
    let reconciled = s.reconcile(&[]).await;
    assert_eq!(reconciled.status.code(), Some(1), "{}", text(&reconciled));
    assert!(
        text(&reconciled).contains("1 line(s) of an older version of the report are still booked"),
        "{}",
        text(&reconciled)
    );
}

/// A delimited file states its report time, or `produce` refuses it: a file's modification
/// time changes with every copy. Without a `line_key` or transaction ids, line numbers are
/// used only when asked for, with a warning.
#[tokio::test]
async fn identity_and_version_are_never_guessed_from_how_a_file_is_stored() {
    let s = setup("idv").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let undated = dir.path().join("undated.tsv");
    let body = std::fs::read_to_string(fixture("distrokid_2026-09.tsv")).expect("read");
    let without_date: String = body
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&undated, without_date + "\n").expect("write");
    let output = s
        .produce(&["--profile", "distrokid", &undated.to_string_lossy()])
        .await;
    assert!(!output.status.success());
    assert!(text(&output).contains("--report-time"), "{}", text(&output));
    s.produce_ok(&[
        "--profile",
        "distrokid",
        "--report-time",
        "2026-10-15T00:00:00Z",
        &undated.to_string_lossy(),
    ])
    .await;

    let no_ids = write(
        dir.path(),
        "no-ids.csv",
        "isrc,quantity,amount,currency,period,dsp,report_id\nGBQZA2400021,1,0.10,USD,2026-09,Tidal,R-1\n",
    );
    let output = s
        .produce(&["--report-time", "2026-10-01T00:00:00Z", &no_ids])
        .await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("--line-number-identity"),
        "{}",
        text(&output)
    );
    let output = s
        .produce_ok(&[
            "--report-time",
            "2026-10-01T00:00:00Z",
            "--line-number-identity",
            &no_ids,
        ])
        .await;
    assert!(output.contains("warning"), "{output}");
    s.ingest().await;
    assert_eq!(s.ledger("WHERE dsp_name = 'Tidal'").await.0, 1);
}

/// Reconcile says "not yet ingested", names an unknown report, flags a report booked twice
/// under two identities, and exits 2 when the broker cannot be reached.
#[tokio::test]
async fn reconcile_catches_what_a_per_report_comparison_cannot_see() {
    let s = setup("recv").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = s.reconcile(&[]).await;
    assert_eq!(
        empty.status.code(),
        Some(1),
        "nothing to compare is not 'all match': {}",
        text(&empty)
    );

    let statement = fixture("statement_ST-9_v1.csv");
    s.produce_ok(&["--profile", &fixture("statement.toml"), &statement])
        .await;
    let waiting = s.reconcile(&[]).await;
    assert_eq!(waiting.status.code(), Some(1), "{}", text(&waiting));
    assert!(
        text(&waiting).contains("not yet ingested"),
        "{}",
        text(&waiting)
    );
    s.ingest().await;
    let ok = s.reconcile(&[]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    let unknown = s.reconcile(&["--report-id", "NO-SUCH-REPORT"]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("NO-SUCH-REPORT"),
        "{}",
        text(&unknown)
    );

    // The same statement under another report id (an identity the old rules derived from
    // the file): booked twice, and reconcile says so although each report matches itself.
    let copy = write(
        dir.path(),
        "copy.csv",
        &std::fs::read_to_string(&statement)
            .expect("read")
            .replace("ST-9,", "ST-9-COPY,"),
    );
    s.produce_ok(&["--profile", &fixture("statement.toml"), &copy])
        .await;
    s.ingest().await;
    let twice = s.reconcile(&[]).await;
    assert_eq!(twice.status.code(), Some(1), "{}", text(&twice));
    assert!(
        text(&twice).contains("probable double booking: reports ST-9 and ST-9-COPY"),
        "{}",
        text(&twice)
    );

    let unreachable = royalty_ingest(
        &[
            "reconcile",
            "--brokers",
            "127.0.0.1:1",
            "--summaries-topic",
            &s.summaries,
        ],
        &s.url,
    )
    .await;
    assert_eq!(unreachable.status.code(), Some(2), "{}", text(&unreachable));
}

/// With several files, one that cannot be read is named and the others are still checked
/// and published.
#[tokio::test]
async fn an_unreadable_file_is_named_and_the_others_still_go_out() {
    let s = setup("multi").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = fixture("statement.toml");
    let empty = write(dir.path(), "empty.csv", "");
    let png = dir.path().join("logo.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0").expect("write");
    let output = s
        .produce(&[
            "--profile",
            &profile,
            &fixture("statement_ST-9_v1.csv"),
            &empty,
            &png.to_string_lossy(),
        ])
        .await;
    assert!(!output.status.success(), "{}", text(&output));
    let out = text(&output);
    assert!(
        out.contains("empty.csv: the file has no header line"),
        "{out}"
    );
    assert!(out.contains("logo.png: not a text file"), "{out}");
    assert!(out.contains("2 file(s) not published"), "{out}");
    s.ingest().await;
    assert_eq!(s.ledger("").await, (4, 1000, dec("10.00")));
}

/// A ledger booked under the old identity rules: the migration moves nothing, and lists
/// (and `migrate` prints) what it cannot map and why.
#[tokio::test]
async fn the_identity_migration_moves_nothing_and_lists_what_it_cannot_map() {
    let (url, pool) = common::fresh_database().await;
    // Back to the state before the migration, with lines booked under the old rules.
    common::undo_ledger_by_period(&pool).await;
    sqlx::raw_sql(
        "DROP TABLE legacy_line_identities; DROP TABLE ledger_reversals;
         DROP INDEX report_summaries_pending;
         ALTER TABLE report_summaries DROP COLUMN replaces_pending;
         ALTER TABLE ledger_revisions DROP COLUMN reason;
         DELETE FROM _sqlx_migrations WHERE version = 20261204000001;",
    )
    .execute(&pool)
    .await
    .expect("undo the migration");
    for (n, report, txn, amount) in [
        (1u8, "MSG-1", "MSG-1/B1/T1", "1.50"),
        (2, "MSG-1", "MSG-1/B2/T2", "2.25"),
        (
            3,
            "statement-0123456789abcdef",
            "statement-0123456789abcdef:2",
            "0.10",
        ),
        (4, "ST-1", "T-4", "4.00"),
    ] {
        sqlx::query(
            "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc,
                    stream_count, royalty_amount, currency, report_id, source_topic,
                    source_partition, source_offset, source_timestamp)
             VALUES ($1, 'StreamCo', '2026-09-01', $2, 'GBQZA2400001', 1, $3::numeric, 'GBP',
                     $4, 'raw', 0, $5, now())",
        )
        .bind([n; 32].to_vec())
        .bind(txn)
        .bind(amount)
        .bind(report)
        .bind(i64::from(n))
        .execute(&pool)
        .await
        .expect("old line");
    }
    let before: Vec<(Vec<u8>, String, Decimal)> = sqlx::query_as(
        "SELECT line_key, transaction_id, royalty_amount FROM royalty_ledger ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("ledger");

    let output = royalty_ingest(&["migrate"], &url).await;
    assert!(output.status.success(), "{}", text(&output));
    let out = text(&output);
    assert!(
        out.contains("2 report(s) keep lines booked under an earlier identity rule"),
        "{out}"
    );
    assert!(
        out.contains("report MSG-1: 2 line(s), amount 3.75: keyed by MessageId"),
        "{out}"
    );
    assert!(
        out.contains("report statement-0123456789abcdef: 1 line(s), amount 0.1: keyed by the file"),
        "{out}"
    );
    assert!(
        !out.contains("ST-1"),
        "a line with the DSP's own transaction id is not legacy: {out}"
    );
    let after: Vec<(Vec<u8>, String, Decimal)> = sqlx::query_as(
        "SELECT line_key, transaction_id, royalty_amount FROM royalty_ledger ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("ledger");
    assert_eq!(before, after, "nothing already booked moved");
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write");
    path.to_string_lossy().into_owned()
}
