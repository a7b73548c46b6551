//! Upstream producers and finance on the real broker and database: DSP report files
//! (DDEX DSR, CSV through profiles) published by `produce`, booked by `run`, checked by
//! `reconcile` against the reports' own control totals.

mod common;

use std::path::Path;

use common::produce::{Setup, dec, stderr, stdout};

const DSR_FIXTURE: &str =
    "tests/fixtures/dsr/DSR_TEST_YouTube_AdSupport-music_2015-Q4_IS_1of1_20160121T150926.tsv";

async fn setup(prefix: &str) -> Setup {
    Setup::new(prefix, "it-produce").await
}

/// A BasicAudioProfile 1.3-style DSR: `#` column lines, versioned record types, three
/// summary records in two currencies, per-line amounts allocated from the summaries, a
/// block without UPC and a block whose only line has zero streams.
fn generated_dsr(dir: &Path) -> std::path::PathBuf {
    let rows = [
        "HEAD\tdsrf/1.3\tBasicAudioProfile\t1.3\tMSG-2026-10-A\t2026-10-05T08:00:00Z\t1\t1\t2026-09-01\t2026-09-30\tPADPIDA2014120301A\tStreamCo\tPremium",
        "#HEAD\tMessageVersion\tProfile\tProfileVersion\tMessageId\tMessageCreatedDateTime\tFileNumber\tNumberOfFiles\tUsageStartDate\tUsageEndDate\tSenderPartyId\tSenderName\tServiceDescription",
        "#SY01.02\tSummaryRecordId\tDistributionChannel\tDistributionChannelDPID\tCommercialModel\tUseType\tTerritory\tServiceDescription\tUsages\tSubscribers\tCurrencyOfReporting\tNetRevenue",
        "#RE01.02\tBlockId\tReleaseReference\tDspReleaseId\tProprietaryReleaseId\tCatalogNumber\tICPN\tDisplayArtistName\tDisplayArtistPartyId\tTitle\tSubTitle\tReleaseType\tLabel",
        "#AS02.03\tBlockId\tResourceReference\tDspResourceId\tISRC\tTitle\tSubTitle\tDisplayArtistName\tDisplayArtistPartyId\tDuration\tResourceType",
        "#SU02.02\tBlockId\tSummaryRecordId\tSalesTransactionId\tTransactedRelease\tTransactedResource\tIsRoyaltyBearing\tNumberOfStreams",
        "SY01.02\tS1\t\t\tSubscriptionModel\tOnDemandStream\tSE\tPremium\t10\t\tUSD\t100.0000001",
        "SY01.02\tS2\t\t\tSubscriptionModel\tOnDemandStream\tDE\tPremium\t9\t\tEUR\t3.33",
        "SY01.02\tS3\t\t\tAdSupportedModel\tOnDemandStream\tDE\tFree\t0\t\tEUR\t0",
        "RE01.02\tB1\tR1\tDR1\t\t\t0036000291452\tMira Kade\t\tNight Ledger\t\tAlbum\tHarbor Records",
        "AS02.03\tB1\tA1\tDA1\tGBQZA2400007\tNight Ledger\t\tMira Kade\t\tPT3M\tSoundRecording",
        "SU02.02\tB1\tS1\tT1\tDR1\tDA1\ttrue\t3",
        "SU02.02\tB1\tS1\tT2\tDR1\tDA1\ttrue\t7",
        "SU02.02\tB1\tS2\tT3\tDR1\tDA1\ttrue\t4",
        "RE01.02\tB2\tR2\tDR2\t\t\t\tLone Singer\t\tNo Code\t\tSingle\t",
        "AS02.03\tB2\tA2\tDA2\tGBQZA2400008\tNo Code\t\tLone Singer\t\tPT2M\tSoundRecording",
        "SU02.02\tB2\tS2\tT4\tDR2\tDA2\ttrue\t5",
        "SU02.02\tB2\tS3\tT5\tDR2\tDA2\ttrue\t0",
    ];
    let mut text = rows.join("\n");
    text.push_str(&format!(
        "\nFOOT\t{}\t{}\t3\t2\t2\n",
        rows.len() + 1,
        rows.len() + 1
    ));
    let path = dir.join("DSR_StreamCo_2026-09.tsv");
    std::fs::write(&path, text).expect("write dsr");
    path
}

#[tokio::test]
async fn dsr_files_are_published_booked_and_reconciled_to_the_last_decimal() {
    let s = setup("dsr").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = generated_dsr(dir.path());
    let generated = generated.to_string_lossy().into_owned();

    let output = s.produce(&[DSR_FIXTURE, &generated]).await;
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    s.ingest().await;

    // The sample carries its own amounts (7.0 USD over 6 lines, no UPC anywhere).
    let youtube = s.ledger("WHERE dsp_name = 'YouTube'").await;
    assert_eq!(youtube, (6, 10210, dec("7.0")));
    // The generated file: each summary record's revenue to the last place.
    assert_eq!(
        s.ledger("WHERE dsp_name = 'StreamCo' AND currency = 'USD'")
            .await,
        (2, 10, dec("100.0000001"))
    );
    assert_eq!(
        s.ledger("WHERE dsp_name = 'StreamCo' AND currency = 'EUR'")
            .await,
        (3, 9, dec("3.33"))
    );
    let no_upc: i64 = sqlx::query_scalar("SELECT count(*) FROM royalty_ledger WHERE upc IS NULL")
        .fetch_one(&s.pool)
        .await
        .expect("count");
    assert_eq!(no_upc, 6 + 2, "ISRC-only lines are booked");

    let reconciled = s.reconcile(&[]).await;
    assert_eq!(
        reconciled.status.code(),
        Some(0),
        "{}{}",
        stdout(&reconciled),
        stderr(&reconciled)
    );
    let json = s.reconcile(&["--json"]).await;
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json parses");
    assert_eq!(parsed["matched"], true);
    assert_eq!(parsed["reports"].as_array().map(Vec::len), Some(3));

    // A file that disagrees with its own FOOT is reported with the numbers, not published.
    let broken = dir.path().join("broken.tsv");
    let text = std::fs::read_to_string(&generated)
        .expect("read")
        .replace("FOOT\t19", "FOOT\t25");
    std::fs::write(&broken, text).expect("write");
    let before = s.ledger("").await;
    let output = s.produce(&[&broken.to_string_lossy()]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("FOOT says 25 lines, the file has 19"),
        "{}",
        stderr(&output)
    );
    s.ingest().await;
    assert_eq!(s.ledger("").await, before);
}

#[tokio::test]
async fn csv_files_of_every_spelling_are_booked_once_and_a_missing_row_fails_reconcile() {
    let s = setup("csv").await;
    let dir = tempfile::tempdir().expect("tempdir");
    // UTF-8 with BOM, quoted delimiters, a return in parentheses, a bad check digit, an
    // ISRC-only line, lower-case ISRCs.
    let utf8 = dir.path().join("statement.csv");
    std::fs::write(
        &utf8,
        "\u{feff}isrc,upc,quantity,amount,currency,period,dsp,transaction_id,artist,report_id\n\
         gbqza2400007,036000291452,1204,\"1,234.5000000001\",USD,2026-09,Spotify,T1,\"Kade, Mira\",ST-1\n\
         GBQZA2400008,,3,0.0123,USD,2026-09,Spotify,T2,Lone Singer,ST-1\n\
         GBQZA2400009,036000291452,1,(0.99),USD,2026-09,Spotify,T3,Refunded,ST-1\n\
         GBQZA2400010,731453000000,5,1.00,USD,2026-09,Spotify,T4,Bad Code,ST-1\n",
    )
    .expect("write csv");
    // ISO-8859-1, semicolons, decimal commas, periods written 09/2026 (the built-in
    // believe-eu profile).
    let latin1 = dir.path().join("releve.csv");
    let mut bytes: Vec<u8> = Vec::new();
    for line in [
        "ISRC;EAN;Quantit\u{e9};Montant net;P\u{e9}riode;R\u{e9}f\u{e9}rence;Plateforme;Pays;Type d'usage;Label;Artiste;Relev\u{e9}",
        "GBQZA2400011;0036000291452;1.204;12,3456789;09/2026;R-1;Deezer;FR;stream;Harbor;Beyonc\u{e9};REL-9",
        "GBQZA2400012;;7;0,5;09/2026;R-2;Deezer;BE;stream;Harbor;Zo\u{eb};REL-9",
    ] {
        bytes.extend(
            line.chars()
                .map(|c| u8::try_from(u32::from(c)).expect("latin-1")),
        );
        bytes.push(b'\n');
    }
    std::fs::write(&latin1, bytes).expect("write latin-1");

    let issued = ["--report-time", "2026-10-02T00:00:00Z"];
    let output = s
        .produce(&[issued[0], issued[1], &utf8.to_string_lossy()])
        .await;
    assert!(!output.status.success(), "a refused line fails the command");
    assert!(
        stdout(&output).contains("published 0"),
        "a refused line holds the whole file back: {}",
        stdout(&output)
    );
    let err = stderr(&output);
    assert!(
        err.contains("statement.csv:5: upc: gs1_check_digit"),
        "{err}"
    );
    let output = s
        .produce(&[
            issued[0],
            issued[1],
            "--profile",
            "believe-eu",
            &latin1.to_string_lossy(),
        ])
        .await;
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    // Allowed with --max-refused, the good lines go out; published twice, the ledger
    // absorbs the second copy.
    for _ in 0..2 {
        let again = s
            .produce(&[
                issued[0],
                issued[1],
                "--max-refused",
                "1",
                &utf8.to_string_lossy(),
            ])
            .await;
        assert!(again.status.success(), "{}", stderr(&again));
    }
    s.ingest().await;

    assert_eq!(
        s.ledger("WHERE report_id = 'ST-1'").await,
        (3, 1208, dec("1233.5223000001"))
    );
    let (isrc, artist, line_type): (String, String, String) = sqlx::query_as(
        "SELECT isrc, artist, line_type FROM royalty_ledger WHERE transaction_id = 'T3'",
    )
    .fetch_one(&s.pool)
    .await
    .expect("return line");
    assert_eq!(
        (isrc.as_str(), artist.as_str(), line_type.as_str()),
        ("GBQZA2400009", "Refunded", "return")
    );
    let comma: String =
        sqlx::query_scalar("SELECT artist FROM royalty_ledger WHERE transaction_id = 'T1'")
            .fetch_one(&s.pool)
            .await
            .expect("quoted cell");
    assert_eq!(comma, "Kade, Mira");
    assert_eq!(
        s.ledger("WHERE report_id = 'REL-9'").await,
        (2, 1211, dec("12.8456789"))
    );
    let artist: String =
        sqlx::query_scalar("SELECT artist FROM royalty_ledger WHERE transaction_id = 'R-2'")
            .fetch_one(&s.pool)
            .await
            .expect("latin-1 row");
    assert_eq!(artist, "Zo\u{eb}");
    assert_eq!(
        s.ledger("WHERE upc IS NULL").await.0,
        2,
        "ISRC-only lines are booked"
    );
    let reconciled = s.reconcile(&[]).await;
    assert_eq!(
        reconciled.status.code(),
        Some(0),
        "{}{}",
        stdout(&reconciled),
        stderr(&reconciled)
    );

    // One booked line goes missing: reconcile names the report and the difference.
    sqlx::query("DELETE FROM royalty_ledger WHERE transaction_id = 'T2'")
        .execute(&s.pool)
        .await
        .expect("delete");
    let reconciled = s.reconcile(&["--report-id", "ST-1"]).await;
    assert_eq!(reconciled.status.code(), Some(1), "{}", stdout(&reconciled));
    let out = stdout(&reconciled);
    assert!(out.contains("ST-1") && out.contains("DIFFERS"), "{out}");
    assert!(
        out.contains("1 line(s) of the report are not in the ledger"),
        "{out}"
    );
    let csv = s.reconcile(&["--csv", "--dsp", "spotify"]).await;
    assert_eq!(csv.status.code(), Some(1));
    assert!(
        stdout(&csv)
            .lines()
            .nth(1)
            .is_some_and(|row| row.starts_with("ST-1,Spotify,2026-09-01,USD,3,2,")),
        "{}",
        stdout(&csv)
    );
    // Only the Deezer report: it still matches.
    let deezer = s.reconcile(&["--dsp", "Deezer"]).await;
    assert_eq!(deezer.status.code(), Some(0), "{}", stdout(&deezer));
}

/// A report in two currencies is two rows; each row said "run refused N" with N the whole
/// report's refused lines, so the refusals of one currency were blamed on the other too.
#[tokio::test]
async fn refused_lines_explain_only_the_currency_row_they_belong_to() {
    let s = setup("refcur").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("two_currencies.csv");
    std::fs::write(
        &file,
        "isrc,upc,quantity,amount,currency,period,dsp,transaction_id,report_id\n\
         GBQZA2400007,,10,1.00,USD,2026-09,Spotify,U1,TWO-CUR\n\
         GBQZA2400008,,20,2.00,USD,2026-09,Spotify,U2,TWO-CUR\n\
         GBQZA2400009,,30,3.00,USD,2026-09,Spotify,U3,TWO-CUR\n\
         GBQZA2400010,,40,4.00,EUR,2026-09,Spotify,E1,TWO-CUR\n\
         GBQZA2400011,,50,5.00,EUR,2026-09,Spotify,E2,TWO-CUR\n",
    )
    .expect("write csv");
    let output = s
        .produce(&[
            "--report-time",
            "2026-10-02T00:00:00Z",
            &file.to_string_lossy(),
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    s.ingest().await;

    // As if `run` had refused two USD lines (undecodable then, say): their ledger rows
    // go, their records sit in quarantine. One EUR line is simply missing.
    sqlx::query("DELETE FROM royalty_ledger WHERE transaction_id IN ('U1', 'U2', 'E1')")
        .execute(&s.pool)
        .await
        .expect("delete");
    for (n, txn) in ["U1", "U2"].into_iter().enumerate() {
        let mut line = common::pipeline::distinct_lines(5, 1, 1).remove(0);
        line.report_id = Some("TWO-CUR".into());
        line.currency = "usd".into();
        line.transaction_id = txn.into();
        sqlx::query(
            "INSERT INTO quarantine (source_topic, source_partition, source_offset,
                                     consumer_group, record_value, error_stage, error_class,
                                     reason, dead_letter_id)
             VALUES ($1, 0, $2, $5, $3, 'decode', 'unknown_fingerprint', 'test', $4)",
        )
        .bind(&s.raw)
        .bind(1_000_000 + i64::try_from(n).expect("small"))
        .bind(common::pipeline::encode(3, &line))
        .bind(format!("dl-test-{txn}"))
        .bind(&s.group)
        .execute(&s.pool)
        .await
        .expect("quarantine row");
    }

    let output = s.reconcile(&["--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let explanation = |currency: &str| -> String {
        report["reports"]
            .as_array()
            .expect("reports")
            .iter()
            .find(|r| r["currency"] == currency)
            .map(|r| r["explanation"].to_string())
            .unwrap_or_else(|| panic!("no {currency} row: {report}"))
    };
    let usd = explanation("USD");
    assert!(
        usd.contains("run refused 2 unknown_fingerprint in USD"),
        "{usd}"
    );
    let eur = explanation("EUR");
    assert!(
        !eur.contains("run refused"),
        "EUR had no refused line: {eur}"
    );
    assert!(
        eur.contains("1 line(s) of the report are not in the ledger"),
        "{eur}"
    );
}
