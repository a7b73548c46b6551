//! Money at the file boundary, end to end: report files in `tests/fixtures/amounts/` go
//! through `produce`, `run` and `reconcile` on the real broker and database. An amount in
//! the wrong notation is refused with `file:line: amount:` and never booked; a return is
//! booked negative whichever way its file writes it; a DSR line that bears no royalty
//! takes no share of its summary's revenue.

mod common;

use common::produce::{Setup, dec, stderr, stdout};
use rust_decimal::Decimal;

const FIXTURES: &str = "tests/fixtures/amounts";

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

async fn setup(prefix: &str) -> Setup {
    Setup::new(prefix, "it-amounts")
        .await
        // The statements' version (these files carry no report time of their own).
        .with_produce_args(&["--report-time", "2026-10-01T00:00:00Z"])
}

impl Setup {
    /// `reconcile` over everything the test published: it must match.
    async fn reconciled(&self) {
        let output = self.reconcile(&[]).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}{}",
            stdout(&output),
            stderr(&output)
        );
    }

    /// `(transaction id, line type, quantity, amount)` of every booked line.
    async fn rows(&self) -> Vec<(String, String, i64, Decimal)> {
        sqlx::query_as(
            "SELECT transaction_id, line_type, stream_count, royalty_amount FROM royalty_ledger \
             ORDER BY transaction_id",
        )
        .fetch_all(&self.pool)
        .await
        .expect("ledger rows")
    }
}

/// Every line of `err` names `file:line: amount:` for each of `lines`.
fn refused_amounts(err: &str, file: &str, lines: &[u64]) {
    for line in lines {
        let prefix = format!("{file}:{line}: amount: ");
        assert!(
            err.lines().any(|l| l.contains(&prefix)),
            "no {prefix:?} in:\n{err}"
        );
    }
}

#[tokio::test]
async fn a_generic_file_in_the_wrong_notation_is_refused_and_a_correct_one_booked_exactly() {
    let s = setup("amt-generic").await;
    // 0,0035 was booked as 35, "1,50" as 150, 1.234,56 as 1.23456, 1,2,3.4 as 123.4.
    let misread = fixture("generic_misread.csv");
    let output = s.produce(&[&misread]).await;
    assert!(!output.status.success(), "{}", stdout(&output));
    let err = stderr(&output);
    refused_amounts(&err, "generic_misread.csv", &[2, 3, 4, 5, 6, 7]);
    assert!(
        err.contains("generic_misread.csv:2: amount: \"0,0035\" is not an amount"),
        "{err}"
    );
    assert!(
        err.contains("generic_misread.csv:7: amount: \"1,234\" is not an amount: ambiguous"),
        "{err}"
    );
    assert!(
        stdout(&output).contains("6 lines, published 0, refused 6"),
        "{}",
        stdout(&output)
    );
    s.ingest().await;
    assert_eq!(s.ledger("").await, (0, 0, Decimal::ZERO), "nothing booked");

    let output = s.produce(&[&fixture("generic_exact.csv")]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    s.ingest().await;
    assert_eq!(
        s.rows().await,
        vec![
            ("A1".into(), "sale".into(), 1, dec("0.0035")),
            ("A2".into(), "sale".into(), 2, dec("1.50")),
            ("A3".into(), "sale".into(), 1204, dec("1234.5600000001")),
            // (0.99) typed Refund; -3 units at -12.30 untyped: returns, counted as units back.
            ("A4".into(), "return".into(), 1, dec("-0.99")),
            ("A5".into(), "return".into(), 3, dec("-12.30")),
        ]
    );
    assert_eq!(s.ledger("").await, (5, 1211, dec("1222.7735000001")));
    s.reconciled().await;
}

#[tokio::test]
async fn a_decimal_comma_file_refuses_decimal_points_and_reads_its_groups() {
    let s = setup("amt-believe").await;
    let output = s
        .produce(&["--profile", "believe-eu", &fixture("believe_misread.csv")])
        .await;
    assert!(!output.status.success(), "{}", stdout(&output));
    let err = stderr(&output);
    // 1.50 was booked as 150, 0.0035 as 35; 1.234 is 1234 or 1,234.
    refused_amounts(&err, "believe_misread.csv", &[2, 3, 4]);
    assert!(
        err.contains("believe_misread.csv:2: amount: \"1.50\" is not an amount"),
        "{err}"
    );
    assert!(err.contains("decimal_separator = \",\""), "{err}");
    s.ingest().await;
    assert_eq!(s.ledger("").await, (0, 0, Decimal::ZERO), "nothing booked");

    let output = s
        .produce(&["--profile", "believe-eu", &fixture("believe_releve.csv")])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    s.ingest().await;
    assert_eq!(
        s.rows().await,
        vec![
            ("B-11".into(), "sale".into(), 1204, dec("1234.56")),
            ("B-12".into(), "sale".into(), 7, dec("0.0035")),
            ("B-13".into(), "sale".into(), 2, dec("1234.5")),
            ("B-14".into(), "return".into(), 1, dec("-0.99")),
        ]
    );
    assert_eq!(
        s.ledger("WHERE report_id = 'REL-AMT'").await,
        (4, 1214, dec("2468.0735"))
    );
    s.reconciled().await;
}

#[tokio::test]
async fn a_dsr_line_that_bears_no_royalty_is_booked_at_zero_and_the_others_sum_to_the_summary() {
    let s = setup("amt-dsr").await;
    let file = fixture("DSR_StreamCo_NonBearing_2026-09.tsv");
    let output = s.produce(&[&file]).await;
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    s.ingest().await;
    // 1000.00 USD over the royalty-bearing 1 + 2 streams (the flag of the 2-stream line is
    // absent: it bears); the 4 streams with IsRoyaltyBearing false are kept, at zero.
    let lines: Vec<(i64, Decimal)> = sqlx::query_as(
        "SELECT stream_count, royalty_amount FROM royalty_ledger ORDER BY stream_count",
    )
    .fetch_all(&s.pool)
    .await
    .expect("ledger rows");
    assert_eq!(
        lines,
        vec![
            (1, dec("333.3333333333333")),
            (2, dec("666.6666666666667")),
            (4, Decimal::ZERO),
        ]
    );
    assert_eq!(s.ledger("").await, (3, 7, dec("1000.00")));
    s.reconciled().await;

    // The same report with every line flagged non-bearing: its revenue would go nowhere.
    let dir = tempfile::tempdir().expect("tempdir");
    let nobody = dir.path().join("DSR_StreamCo_NoneBearing_2026-09.tsv");
    let text = std::fs::read_to_string(&file).expect("fixture");
    let text: Vec<String> = text
        .lines()
        .map(|line| {
            let mut cells: Vec<&str> = line.split('\t').collect();
            if cells[0].starts_with("SU02") {
                cells[6] = "false";
            }
            cells.join("\t")
        })
        .collect();
    std::fs::write(&nobody, text.join("\n") + "\n").expect("write");
    let output = s.produce(&[&nobody.to_string_lossy()]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "summary record S1 has revenue 1000.00 but none of its 3 usage line(s) is royalty-bearing"
        ),
        "{}",
        stderr(&output)
    );
    s.ingest().await;
    assert_eq!(s.ledger("").await, (3, 7, dec("1000.00")), "nothing more");
}

#[tokio::test]
async fn a_cdbaby_refund_written_positive_is_booked_negative_and_chargeback_is_a_return() {
    let s = setup("amt-cdbaby").await;
    let output = s
        .produce(&["--profile", "cdbaby", &fixture("cdbaby_statement.csv")])
        .await;
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    s.ingest().await;
    assert_eq!(
        s.rows().await,
        vec![
            ("CD-1".into(), "sale".into(), 1, dec("0.99")),
            ("CD-2".into(), "return".into(), 1, dec("-0.99")),
            ("CD-3".into(), "sale".into(), 2, dec("1.98")),
            ("CD-4".into(), "return".into(), 1, dec("-0.99")),
            ("CD-5".into(), "sale".into(), 1, dec("1234.50")),
        ]
    );
    assert_eq!(s.ledger("").await, (5, 6, dec("1235.49")));
    s.reconciled().await;

    // A Refund written negative contradicts the profile's return_amounts = "positive".
    let output = s
        .produce(&[
            "--profile",
            "cdbaby",
            &fixture("cdbaby_refund_written_negative.csv"),
        ])
        .await;
    assert!(!output.status.success());
    let err = stderr(&output);
    refused_amounts(&err, "cdbaby_refund_written_negative.csv", &[2]);
    assert!(err.contains("return_amounts = \"positive\""), "{err}");
    s.ingest().await;
    assert_eq!(s.ledger("").await, (5, 6, dec("1235.49")), "nothing more");
}
