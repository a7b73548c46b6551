//! The console as deployed: its least-privileged database role, HTTPS from a certificate.

use crate::common;
use crate::common::console::{ConsoleServer, PASSWORD, add_user, csrf_of, get_page, post_form};
use crate::common::pipeline::count;
use crate::fixture::{GROUP, queue_fixture, session_of};

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
