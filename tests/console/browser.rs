//! A royalty manager's work in a real headless Chromium; the README's screenshots.

use std::path::{Path, PathBuf};

use royalty_ingest::config::SchemaArgs;

use crate::common::console::{ConsoleServer, PASSWORD, add_user};
use crate::common::pipeline::{count, royalty_ingest, run_args, run_until_idle};
use crate::common::produce::{Setup, stderr, stdout};
use crate::common::webdriver::{Browser, Chromedriver};
use crate::fixture::{GROUP, queue_fixture};

/// Where the screenshots go: the README's directory (`docs/console`) when
/// `ROYALTY_SCREENSHOTS=docs` asks for them to be refreshed, else `target/console-screenshots`,
/// so that an ordinary test run leaves the working tree as it was.
fn screenshots() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var("ROYALTY_SCREENSHOTS").is_ok_and(|v| v == "docs") {
        root.join("docs/console")
    } else {
        root.join("target/console-screenshots")
    }
}

/// Signs in through the browser's sign-in form.
async fn browser_sign_in(browser: &Browser, console: &ConsoleServer, user: &str) {
    browser.goto(&console.url("/")).await;
    assert!(
        browser.url().await.ends_with("/sign-in"),
        "a browser without a session lands on the sign-in page"
    );
    let name = browser.find("input[name=user]").await;
    browser.type_into(&name, user).await;
    let password = browser.find("input[name=password]").await;
    browser.type_into(&password, PASSWORD).await;
    let button = browser.find("button[type=submit]").await;
    browser.click(&button).await;
    browser.wait_for_text("h1", "Overview").await;
    browser.wait_for_text("form.who", user).await;
}

#[tokio::test]
async fn a_royalty_manager_works_the_dead_letter_queue_in_chromium() {
    let queue = queue_fixture().await;
    add_user(&queue.url, "mara", "operator").await;
    let console = queue.console().await;
    let driver = Chromedriver::start().await;
    let browser = Browser::open(&driver).await;

    browser_sign_in(&browser, &console, "mara").await;
    let open = browser.wait_for_text("#open-letters .figure", "5").await;
    assert_eq!(open.trim(), "5");
    browser
        .screenshot(&screenshots().join("overview.png"))
        .await;

    // The queue, then filtered by class.
    browser
        .goto(&console.url("/dead-letters?status=open"))
        .await;
    browser.wait_for_text("h1", "Dead letters").await;
    assert_eq!(browser.find_all("#letters tbody tr").await.len(), 5);
    browser
        .screenshot(&screenshots().join("dead-letters.png"))
        .await;
    browser
        .goto(&console.url("/dead-letters?class=unknown_fingerprint&status=open"))
        .await;
    browser.find("#letters").await;
    let classes = browser.find_all("#letters td.class").await;
    assert_eq!(classes.len(), 3, "only the class asked for");
    for cell in &classes {
        assert_eq!(browser.text(cell).await, "unknown_fingerprint");
    }

    // A letter's decoded fields.
    browser
        .goto(&console.url(&format!("/dead-letters/{}", queue.bad_upc)))
        .await;
    let decoded = browser
        .wait_for_text("#decoded", &queue.lines[3].transaction_id)
        .await;
    assert!(decoded.contains("731453000000"), "{decoded}");
    assert!(decoded.contains(&queue.lines[3].isrc), "{decoded}");
    browser.wait_for_text("#reason", "gs1_check_digit").await;
    browser.screenshot(&screenshots().join("letter.png")).await;

    // Three letters replayed, with the confirmation naming count and target.
    browser
        .goto(&console.url("/dead-letters?class=unknown_fingerprint&status=open"))
        .await;
    browser.find("#letters").await;
    for checkbox in browser.find_all("#letters input[name=id]").await {
        browser.click(&checkbox).await;
    }
    let replay = browser.find("#replay-selected").await;
    browser.click(&replay).await;
    assert_eq!(browser.wait_for_text("#count", "3").await, "3");
    assert_eq!(
        browser.wait_for_text("#targets", &queue.raw).await,
        queue.raw
    );
    let confirm = browser.find("#confirm").await;
    browser.click(&confirm).await;
    browser.wait_for_text("#outcome", "replayed 3").await;

    // `run`, now knowing the schema, books them; the console shows them resolved.
    let mut args = run_args(&queue.raw, &queue.dlq, &queue.url, GROUP);
    args.schemas = SchemaArgs {
        schemas_dir: Some(queue.with_new.clone()),
        registry_url: None,
    };
    run_until_idle(args).await;
    assert_eq!(
        count(&queue.pool, "SELECT count(*) FROM royalty_ledger").await,
        3
    );
    browser
        .goto(&console.url("/dead-letters?class=unknown_fingerprint"))
        .await;
    browser.find("#letters").await;
    let statuses = browser.find_all("#letters td.status").await;
    assert_eq!(statuses.len(), 3);
    for cell in &statuses {
        assert_eq!(browser.text(cell).await, "resolved");
    }
    for id in &queue.unknown {
        assert!(!queue.is_open(id).await, "{id} resolved in quarantine");
    }

    // One resolved by hand with a note.
    browser
        .goto(&console.url(&format!("/dead-letters/{}", queue.bad_upc)))
        .await;
    let note = browser.find("#note").await;
    browser.type_into(&note, "withdrawn by the DSP").await;
    let resolve = browser.find("#resolve").await;
    browser.click(&resolve).await;
    browser.wait_for_text("#status", "resolved").await;
    let by = browser
        .wait_for_text("#resolved-by", "withdrawn by the DSP")
        .await;
    assert!(by.contains("mara"), "{by}");
    browser.wait_for_text("#audit", "resolve").await;
    let actions: Vec<(String, String)> =
        sqlx::query_as("SELECT user_name, action FROM console_audit ORDER BY audit_id")
            .fetch_all(&queue.pool)
            .await
            .expect("audit");
    assert_eq!(
        actions,
        vec![
            ("mara".to_string(), "replay".to_string()),
            ("mara".to_string(), "resolve".to_string())
        ]
    );
}

#[tokio::test]
async fn a_drift_is_acknowledged_and_a_report_that_does_not_reconcile_shows_its_difference_in_chromium()
 {
    let s = Setup::new("console", "it-console-reports").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.csv");
    std::fs::write(
        &catalog,
        "isrc,upc,title,display_artist,label,iswc,valid_from\n\
         GBQZA2400007,5012345678900,Night Ledger,Mira Kade,Harbor Records,,2026-01-01\n",
    )
    .expect("write catalog");
    let imported = royalty_ingest(
        &[
            "catalog",
            "import",
            &catalog.to_string_lossy(),
            "--alerts-topic",
            &s.alerts,
        ],
        &s.url,
    )
    .await;
    assert!(imported.status.success(), "{}", stderr(&imported));
    let statement = dir.path().join("statement.csv");
    std::fs::write(
        &statement,
        "isrc,upc,quantity,amount,currency,period,dsp,transaction_id,artist,report_id\n\
         GBQZA2400007,036000291452,1204,1.50,USD,2026-09,Spotify,T1,Mira Kade,ST-1\n\
         GBQZA2400008,036000291452,3,0.0123,USD,2026-09,Spotify,T2,Lone Singer,ST-1\n\
         GBQZA2400009,036000291452,1,0.99,USD,2026-09,Spotify,T3,Someone,ST-1\n",
    )
    .expect("write statement");
    let produced = s
        .produce(&[
            "--report-time",
            "2026-10-02T00:00:00Z",
            &statement.to_string_lossy(),
        ])
        .await;
    assert!(
        produced.status.success(),
        "{}{}",
        stdout(&produced),
        stderr(&produced)
    );
    s.ingest().await;
    // One booked line goes missing.
    sqlx::query("DELETE FROM royalty_ledger WHERE transaction_id = 'T2'")
        .execute(&s.pool)
        .await
        .expect("delete");
    let drift_id: String = sqlx::query_scalar(
        "SELECT drift_id FROM drift_events WHERE kind = 'upc_mismatch' AND isrc = 'GBQZA2400007'",
    )
    .fetch_one(&s.pool)
    .await
    .expect("the UPC drift");

    add_user(&s.url, "mara", "operator").await;
    let console = ConsoleServer::start(
        &s.url,
        &[
            "--group",
            &s.group,
            "--summaries-topic",
            &s.summaries,
            "--dlq-topic",
            &s.dlq,
        ],
    )
    .await;
    let driver = Chromedriver::start().await;
    let browser = Browser::open(&driver).await;
    browser_sign_in(&browser, &console, "mara").await;
    browser.wait_for_text("#unreconciled", "ST-1").await;

    // The drift, acknowledged with a note.
    browser.goto(&console.url("/drift?status=open")).await;
    let row = format!("tr[data-drift=\"{drift_id}\"]");
    let cells = browser.wait_for_text(&row, "upc_mismatch").await;
    assert!(
        cells.contains("5012345678900")
            && cells.contains("036000291452")
            && cells.to_lowercase().contains("spotify"),
        "{cells}"
    );
    let note = browser.find(&format!("{row} textarea")).await;
    browser
        .type_into(&note, "label confirmed the new UPC")
        .await;
    let button = browser.find(&format!("{row} button")).await;
    browser.click(&button).await;
    let acknowledged = browser
        .wait_for_text(&format!("{row} td.ack"), "label confirmed the new UPC")
        .await;
    assert!(acknowledged.contains("by mara"), "{acknowledged}");
    let stored: (String, String) = sqlx::query_as(
        "SELECT acknowledged_by, note FROM drift_acknowledgements WHERE drift_id = $1",
    )
    .bind(&drift_id)
    .fetch_one(&s.pool)
    .await
    .expect("acknowledgement row");
    assert_eq!(
        stored,
        (
            "mara".to_string(),
            "label confirmed the new UPC".to_string()
        )
    );

    // The drifted track's catalog history, and the version in effect for the line's period
    // as known now (what `catalog as-of` answers).
    let isrc = browser.find(&format!("{row} td.mono a")).await;
    browser.click(&isrc).await;
    let history = browser.wait_for_text("#history", "5012345678900").await;
    assert!(history.contains("Mira Kade"), "{history}");
    let period = browser.find("input[name=period]").await;
    browser.type_into(&period, "2026-09-01").await;
    let show = browser.find("form.filters button").await;
    browser.click(&show).await;
    let as_of = browser.wait_for_text("#as-of", "5012345678900").await;
    assert!(as_of.contains("2026-01-01"), "valid from: {as_of}");

    // The report that does not reconcile, with its difference.
    browser.goto(&console.url("/reports")).await;
    browser.wait_for_text("#verdict", "differ").await;
    let report = browser
        .wait_for_text("tr.report[data-report=\"ST-1\"]", "DIFFERS")
        .await;
    assert!(report.to_lowercase().contains("spotify"), "{report}");
    let difference = browser
        .wait_for_text("tr.report[data-report=\"ST-1\"] .amount-diff", "-0.0123")
        .await;
    assert_eq!(difference.trim(), "-0.0123");
    browser
        .wait_for_text(
            "tr.explanation",
            "1 line(s) of the report are not in the ledger",
        )
        .await;
}
