//! The console over HTTP: no session, a viewer, a missing CSRF token, a hostile payload,
//! wrong passwords.

use crate::common;
use crate::common::console::{
    ConsoleServer, PASSWORD, add_user, csrf_of, get_page, post_form, sign_in,
};
use crate::common::pipeline::count;
use crate::fixture::{SCRIPT, queue_fixture, session_of};

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
    let viewer_csrf = csrf_of(&page).expect("the viewer's token (sign-out form)");
    let csrf = viewer_csrf.clone();
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
            ("csrf", &viewer_csrf),
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

/// The `id="older"` link of a queue page, decoded.
fn older_link(body: &str) -> Option<String> {
    let at = body.find("id=\"older\" href=\"")? + "id=\"older\" href=\"".len();
    body[at..]
        .split('"')
        .next()
        .map(|href| href.replace("&amp;", "&"))
}

/// The dead-letter ids a queue page lists (its rows' `data-id`).
fn listed_ids(body: &str) -> Vec<String> {
    body.split("data-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_queue_pages_by_position_and_filters_by_dsp_period_status_and_text() {
    let (url, pool) = common::fresh_database().await;
    // 130 refused lines, written as `run` writes them (the columns the queue reads): two
    // DSPs, two periods, every fifth resolved by hand.
    sqlx::query(
        "INSERT INTO quarantine (source_topic, source_partition, source_offset, consumer_group,
                error_stage, error_class, reason, dead_letter_id, dsp_name, report_period,
                report_id, resolved_at, resolved_note, resolved_by_user)
         SELECT 'raw', 0, n, 'g', 'validate', 'gs1_check_digit',
                'upc: gs1_check_digit (line ' || n || ')', 'dl-' || lpad(n::text, 4, '0'),
                CASE WHEN n % 2 = 0 THEN 'Spotify' ELSE 'Deezer' END,
                CASE WHEN n % 3 = 0 THEN date '2026-09-01' ELSE date '2026-10-01' END,
                'R-' || n,
                CASE WHEN n % 5 = 0 THEN now() END, CASE WHEN n % 5 = 0 THEN 'fixed' END,
                CASE WHEN n % 5 = 0 THEN 'ana' END
           FROM generate_series(1, 130) AS n",
    )
    .execute(&pool)
    .await
    .expect("quarantine rows");
    add_user(&url, "ana", "viewer").await;
    let console = ConsoleServer::start(&url, &[]).await;
    let session = session_of(&console, "ana").await;

    // Every letter once, newest first, 50 to a page, following "Older".
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some("/dead-letters".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let (status, body) = get_page(&console, &session, &path).await;
        assert_eq!(status, 200, "{path}");
        let ids = listed_ids(&body);
        assert!(ids.len() <= 50, "{path}: {} rows", ids.len());
        seen.extend(ids);
        next = older_link(&body);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=130).rev().map(|n| format!("dl-{n:04}")).collect();
    assert_eq!(seen, expected, "each letter once, newest first");

    // Filters, and the next page keeps them.
    let (_, body) = get_page(
        &console,
        &session,
        "/dead-letters?dsp=spotify&period=2026-09&status=open",
    )
    .await;
    let ids = listed_ids(&body);
    let wanted: Vec<String> = (1..=130)
        .rev()
        .filter(|n| n % 2 == 0 && n % 3 == 0 && n % 5 != 0)
        .map(|n| format!("dl-{n:04}"))
        .collect();
    assert_eq!(ids, wanted, "DSP (any case), period (a month) and open");
    let (_, body) = get_page(
        &console,
        &session,
        "/dead-letters?status=resolved&dsp=Deezer",
    )
    .await;
    let first = listed_ids(&body);
    assert_eq!(
        first.len(),
        13,
        "odd multiples of five: 13 resolved Deezer letters"
    );
    let (_, body) = get_page(&console, &session, "/dead-letters?q=line+77%29").await;
    assert_eq!(listed_ids(&body), vec!["dl-0077"], "text in the reason");
    let (_, body) = get_page(&console, &session, "/dead-letters?q=R-42").await;
    assert_eq!(listed_ids(&body), vec!["dl-0042"], "a report id");
    let (_, body) = get_page(&console, &session, "/dead-letters?q=100%25").await;
    assert!(
        listed_ids(&body).is_empty(),
        "% is a character, not a wildcard"
    );
    let (_, body) = get_page(&console, &session, "/dead-letters?status=open").await;
    let link = older_link(&body).expect("a second page of open letters");
    assert!(
        link.contains("status=open") && link.contains("before="),
        "{link}"
    );
    let (status, body) = get_page(&console, &session, "/dead-letters?class=no_such_class").await;
    assert_eq!(status, 400);
    assert!(body.contains("is not an error class"), "{body}");
}
