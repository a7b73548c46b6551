//! The operator console against the real broker and database: HTTP-level security (no
//! session → sign-in, a viewer's POST → 403, a POST without its CSRF token → 403, a hostile
//! payload shown as text, wrong passwords rate-limited) and a royalty manager's work in a
//! real headless Chromium (sign-in, the queue filtered by class, a letter's decoded fields,
//! three letters replayed and booked by `run`, one resolved with a note, a drift
//! acknowledged, a report that does not reconcile). The browser tests also take the
//! README's screenshots (docs/console/).

mod common;

use std::path::{Path, PathBuf};

use common::console::{ConsoleServer, PASSWORD, add_user, csrf_of, get_page, post_form, sign_in};
use common::pipeline::{count, distinct_lines, encode, royalty_ingest, run_args, run_until_idle};
use common::produce::{Setup, stderr, stdout};
use common::webdriver::{Browser, Chromedriver};
use royalty_ingest::avro::{WriterSchema, encode_single_object};
use royalty_ingest::config::SchemaArgs;
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::sample::record_key;

/// The consumer group of the queue fixture's `run`.
const GROUP: &str = "it-console";
/// A royalty-line version the built-in schemas lack (v3 plus a field).
const NEW_VERSION: u32 = 9;
/// The hostile text one refused line carries.
const SCRIPT: &str = "<script>alert('x')</script>";

fn new_schema_json() -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/royalty_line.v3.avsc")).expect("v3 json");
    schema["doc"] = "Test writer version 9: v3 plus a track title.".into();
    schema["fields"].as_array_mut().expect("fields").push(
        serde_json::json!({"name": "track_title", "type": ["null", "string"], "default": null}),
    );
    schema.to_string()
}

/// A schema directory with the built-in versions plus version 9.
fn schemas_with_new(root: &Path) -> PathBuf {
    let dir = root.join("with_new");
    std::fs::create_dir(&dir).expect("mkdir");
    for version in 1..=3 {
        let file = format!("royalty_line.v{version}.avsc");
        std::fs::copy(Path::new("schemas").join(&file), dir.join(&file)).expect("copy schema");
    }
    std::fs::write(
        dir.join(format!("royalty_line.v{NEW_VERSION}.avsc")),
        new_schema_json(),
    )
    .expect("write v9");
    dir
}

/// Dead letters of every kind the console shows, made by the real pipeline.
struct Queue {
    raw: String,
    dlq: String,
    url: String,
    pool: sqlx::PgPool,
    _root: tempfile::TempDir,
    /// Schemas `run` needs to book the unknown-schema letters once replayed.
    with_new: PathBuf,
    /// Three letters refused for a writer schema `run` did not know (replayable).
    unknown: Vec<String>,
    /// A line refused for its UPC check digit (decodes).
    bad_upc: String,
    /// A line refused for its UPC whose report id and artist are a `<script>`.
    hostile: String,
    /// The lines, in the order above.
    lines: Vec<DecodedLine>,
}

async fn queue_fixture() -> Queue {
    let raw = common::fresh_topic("it.console.raw", 1).await;
    let dlq = common::fresh_topic("it.console.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let root = tempfile::tempdir().expect("tempdir");
    let with_new = schemas_with_new(root.path());
    let mut lines = distinct_lines(21, 1, 5);
    for line in &mut lines[3..] {
        line.upc = Some("731453000000".to_string());
    }
    lines[4].report_id = Some(SCRIPT.to_string());
    lines[4].artist = Some(SCRIPT.to_string());
    let producer = common::producer();
    let v9 = WriterSchema::parse(&new_schema_json()).expect("v9 parses");
    for (n, line) in lines.iter().enumerate() {
        let value = if n < 3 {
            encode_single_object(&v9, line).expect("encode v9")
        } else {
            encode(3, line)
        };
        common::send(&producer, &raw, record_key(line).as_bytes(), &value).await;
    }
    run_until_idle(run_args(&raw, &dlq, &url, GROUP)).await;
    let ids = |class: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT dead_letter_id FROM quarantine WHERE error_class = $1
                  ORDER BY source_offset",
            )
            .bind(class)
            .fetch_all(&pool)
            .await
            .expect("dead-letter ids")
        }
    };
    let unknown = ids("unknown_fingerprint").await;
    let bad = ids("gs1_check_digit").await;
    assert_eq!(
        (unknown.len(), bad.len()),
        (3, 2),
        "the fixture's dead letters"
    );
    Queue {
        raw,
        dlq,
        url,
        pool,
        _root: root,
        with_new,
        unknown,
        bad_upc: bad[0].clone(),
        hostile: bad[1].clone(),
        lines,
    }
}

impl Queue {
    async fn console(&self) -> ConsoleServer {
        ConsoleServer::start(&self.url, &["--dlq-topic", &self.dlq, "--group", GROUP]).await
    }

    async fn is_open(&self, id: &str) -> bool {
        sqlx::query_scalar("SELECT resolved_at IS NULL FROM quarantine WHERE dead_letter_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("quarantine row")
    }
}

/// Signs in and returns the session cookie.
async fn session_of(console: &ConsoleServer, user: &str) -> String {
    let signed = sign_in(console, user, PASSWORD).await;
    assert_eq!(signed.status.as_u16(), 303, "{user} signs in");
    signed.session.expect("a session cookie")
}

#[tokio::test]
async fn without_a_session_every_page_redirects_to_sign_in() {
    let (url, _pool) = common::fresh_database().await;
    let console = ConsoleServer::start(&url, &[]).await;
    let client = common::console::http();
    for path in [
        "/",
        "/dead-letters",
        "/dead-letters?status=open&class=gs1_check_digit",
        "/dead-letters/dl-0123",
        "/drift",
        "/tracks/GBQZA2400007",
        "/reports",
    ] {
        for cookie in [None, Some("ri_console_session=forged")] {
            let mut request = client.get(console.url(path));
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            let response = request.send().await.expect("answer");
            assert_eq!(response.status().as_u16(), 303, "GET {path} ({cookie:?})");
            assert_eq!(
                response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok()),
                Some("/sign-in"),
                "GET {path}"
            );
        }
    }
    for path in [
        "/dead-letters/replay",
        "/dead-letters/replay/send",
        "/dead-letters/resolve",
        "/drift/acknowledge",
    ] {
        let (status, _) = post_form(&console, "x=y", path, &[("id", "dl-1"), ("note", "n")]).await;
        assert_eq!(status, 303, "POST {path} without a session");
    }
    let (status, body) = get_page(&console, "", "/sign-in").await;
    assert_eq!(status, 200);
    assert!(body.contains("name=\"password\""), "{body}");
}

#[tokio::test]
async fn a_viewer_post_is_refused_and_a_post_without_its_csrf_token_too() {
    let queue = queue_fixture().await;
    add_user(&queue.url, "vera", "viewer").await;
    add_user(&queue.url, "otto", "operator").await;
    let console = queue.console().await;
    let id = queue.bad_upc.as_str();

    let viewer = session_of(&console, "vera").await;
    let (status, page) = get_page(&console, &viewer, &format!("/dead-letters/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("id=\"resolve\""),
        "no action forms for a viewer"
    );
    let csrf = csrf_of(&page).expect("the viewer's token (sign-out form)");
    for (path, fields) in [
        (
            "/dead-letters/resolve",
            vec![("id", id), ("note", "viewer tries")],
        ),
        ("/dead-letters/replay", vec![("id", id)]),
        ("/dead-letters/replay/send", vec![("id", id)]),
        (
            "/drift/acknowledge",
            vec![("drift_id", "d"), ("note", "viewer tries")],
        ),
    ] {
        let mut pairs = fields.clone();
        pairs.push(("csrf", &csrf));
        let (status, body) = post_form(&console, &viewer, path, &pairs).await;
        assert_eq!(status, 403, "a viewer's POST {path}: {body}");
        assert!(body.contains("operator role"), "{body}");
    }
    assert!(queue.is_open(id).await, "the viewer changed nothing");

    let operator = session_of(&console, "otto").await;
    let (_, page) = get_page(&console, &operator, "/dead-letters").await;
    let csrf = csrf_of(&page).expect("the operator's token");
    for pairs in [
        vec![("id", id), ("note", "no token")],
        vec![("id", id), ("note", "wrong token"), ("csrf", "0123")],
        // The viewer's token is not the operator's.
        vec![
            ("id", id),
            ("note", "a token of another session"),
            ("csrf", &viewer[..]),
        ],
    ] {
        let (status, body) = post_form(&console, &operator, "/dead-letters/resolve", &pairs).await;
        assert_eq!(status, 403, "{pairs:?}: {body}");
        assert!(body.contains("security token"), "{body}");
    }
    assert!(queue.is_open(id).await, "refused POSTs changed nothing");
    assert_eq!(
        count(&queue.pool, "SELECT count(*) FROM console_audit").await,
        0
    );

    let pairs = [
        ("id", id),
        ("note", "withdrawn by the DSP"),
        ("csrf", csrf.as_str()),
    ];
    let (status, _) = post_form(&console, &operator, "/dead-letters/resolve", &pairs).await;
    assert_eq!(status, 303, "with its token the operator's POST is taken");
    assert!(!queue.is_open(id).await);
    let (user, action, note): (String, String, Option<String>) =
        sqlx::query_as("SELECT user_name, action, note FROM console_audit")
            .fetch_one(&queue.pool)
            .await
            .expect("one audit row");
    assert_eq!(
        (user.as_str(), action.as_str(), note.as_deref()),
        ("otto", "resolve", Some("withdrawn by the DSP"))
    );
}

#[tokio::test]
async fn a_script_in_a_payload_is_shown_as_text() {
    let queue = queue_fixture().await;
    add_user(&queue.url, "otto", "operator").await;
    let console = queue.console().await;
    let session = session_of(&console, "otto").await;
    let escaped = "&lt;script&gt;alert(";
    for path in [
        format!("/dead-letters/{}", queue.hostile),
        "/dead-letters?class=gs1_check_digit".to_string(),
        format!(
            "/dead-letters?q={}",
            url::form_urlencoded::byte_serialize(SCRIPT.as_bytes()).collect::<String>()
        ),
    ] {
        let (status, body) = get_page(&console, &session, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.contains("<script"),
            "{path} carries a live script:\n{body}"
        );
        assert!(
            body.contains(escaped),
            "{path} shows the payload as text:\n{body}"
        );
    }
    let response = common::console::http()
        .get(console.url(&format!("/dead-letters/{}", queue.hostile)))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    let policy = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(policy.contains("default-src 'none'"), "{policy}");
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_and_the_session_cookie_is_strict() {
    let (url, _pool) = common::fresh_database().await;
    add_user(&url, "ana", "operator").await;
    add_user(&url, "bo", "viewer").await;
    let console = ConsoleServer::start(&url, &[]).await;
    for attempt in 0..5 {
        let signed = sign_in(&console, "ana", "wrong password").await;
        assert_eq!(signed.status.as_u16(), 401, "attempt {attempt}");
        assert!(signed.session.is_none());
    }
    let held = sign_in(&console, "ana", PASSWORD).await;
    assert_eq!(
        held.status.as_u16(),
        429,
        "after five failures even the right password waits"
    );
    assert!(held.session.is_none());
    let other = sign_in(&console, "bo", PASSWORD).await;
    assert_eq!(other.status.as_u16(), 303, "another user is not held");
    assert_eq!(other.location.as_deref(), Some("/"));
    let cookie = other
        .set_cookies
        .iter()
        .find(|c| c.starts_with("ri_console_session="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let stored: i64 = count(&_pool, "SELECT count(*) FROM console_sessions").await;
    assert_eq!(stored, 1);
    let token = cookie
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("token");
    let clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_sessions WHERE encode(token_sha256, 'hex') = $1",
    )
    .bind(&token)
    .fetch_one(&_pool)
    .await
    .expect("count");
    assert_eq!(clear, 0, "the token itself is never stored");

    let secure = ConsoleServer::start(&url, &["--secure-cookies"]).await;
    let signed = sign_in(&secure, "bo", PASSWORD).await;
    let cookie = signed
        .set_cookies
        .iter()
        .find(|c| c.starts_with("ri_console_session="))
        .expect("session cookie");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

/// The repository's screenshot directory.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console")
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
            s.group,
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

#[tokio::test]
async fn the_console_works_as_its_least_privileged_role_and_that_role_cannot_touch_the_ledger() {
    let queue = queue_fixture().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/postgres/console-role.sql"
        ))
        .expect("console-role.sql"),
    ))
    .execute(&queue.pool)
    .await
    .expect("apply the console role grants as the owner");
    let login = format!("ri_console_{}", common::unique_suffix());
    let password = format!("Console-{}", common::unique_suffix());
    // Generated name and password, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE royalty_console"
    )))
    .execute(&queue.pool)
    .await
    .expect("create the login role");
    let console_url = queue
        .url
        .replacen("royalty:royalty@", &format!("{login}:{password}@"), 1);
    assert_ne!(console_url, queue.url);
    add_user(&queue.url, "otto", "operator").await;

    let role = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&console_url)
        .await
        .expect("connect as the console role");
    for statement in [
        "UPDATE royalty_ledger SET royalty_amount = 0",
        "DELETE FROM quarantine",
        "UPDATE quarantine SET reason = 'x'",
        "INSERT INTO console_users (user_name, role, password_hash) VALUES ('eve', 'operator', 'x')",
        "UPDATE console_audit SET note = 'x'",
        "CREATE TABLE sneaky (i int)",
    ] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&role)
            .await
            .err()
            .and_then(|e| {
                e.as_database_error()
                    .and_then(|d| d.code().map(|c| c.to_string()))
            });
        assert_eq!(
            refused.as_deref(),
            Some("42501"),
            "{statement} must be refused"
        );
    }
    role.close().await;

    let console =
        ConsoleServer::start(&console_url, &["--dlq-topic", &queue.dlq, "--group", GROUP]).await;
    let session = session_of(&console, "otto").await;
    for path in [
        "/".to_string(),
        "/dead-letters?status=open".to_string(),
        format!("/dead-letters/{}", queue.bad_upc),
        "/drift".to_string(),
        format!("/tracks/{}", queue.lines[0].isrc),
        "/reports".to_string(),
    ] {
        let (status, body) = get_page(&console, &session, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, page) = get_page(&console, &session, "/dead-letters").await;
    let csrf = csrf_of(&page).expect("token");
    let (status, body) = post_form(
        &console,
        &session,
        "/dead-letters/resolve",
        &[
            ("id", &queue.bad_upc),
            ("note", "withdrawn"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(!queue.is_open(&queue.bad_upc).await);
    let (status, body) = post_form(
        &console,
        &session,
        "/dead-letters/replay/send",
        &[("id", &queue.unknown[0]), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("replayed 1"), "{body}");
    assert_eq!(
        count(&queue.pool, "SELECT count(*) FROM dlq_replay_items").await,
        1
    );
    assert_eq!(
        count(&queue.pool, "SELECT count(*) FROM console_audit").await,
        2
    );
}

#[tokio::test]
async fn the_console_serves_https_from_a_configured_certificate_with_a_secure_cookie() {
    let (url, _pool) = common::fresh_database().await;
    add_user(&url, "ana", "operator").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (scripts/services install installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let console = ConsoleServer::start(
        &url,
        &[
            "--tls-cert",
            &cert.to_string_lossy(),
            "--tls-key",
            &key.to_string_lossy(),
        ],
    )
    .await;
    assert!(console.base.starts_with("https://"));
    let trusted =
        reqwest::Certificate::from_pem(&std::fs::read(&cert).expect("cert")).expect("certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(trusted)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(console.url("/sign-in"))
        .send()
        .await
        .expect("the certificate is the configured one, and verifies");
    let form_cookie = common::console::cookie_from(&page, "ri_console_sign_in").expect("cookie");
    let html = page.text().await.expect("html");
    let csrf = csrf_of(&html).expect("form token");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("user", "ana")
        .append_pair("password", PASSWORD)
        .finish();
    let signed = client
        .post(console.url("/sign-in"))
        .header("cookie", form_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sign-in");
    assert_eq!(signed.status().as_u16(), 303);
    let session = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ri_console_session="))
        .expect("session cookie")
        .to_string();
    assert!(
        session.ends_with("; Secure"),
        "under TLS the cookie is Secure: {session}"
    );
    let plain = reqwest::Client::new()
        .get(console.url("/sign-in").replacen("https://", "http://", 1))
        .send()
        .await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "no plain HTTP on the TLS port"
    );
}
