//! `dlq resolve`: a dead letter no replay will book is closed by hand, with who, when and
//! why kept in quarantine, on the real broker and database.

mod common;

use common::pipeline::{distinct_lines, publish, royalty_ingest, run_args, run_until_idle};

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_dead_letter_is_closed_by_hand_with_who_and_why() {
    let raw = common::fresh_topic("it.resolve.raw", 1).await;
    let dlq = common::fresh_topic("it.resolve.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let mut lines = distinct_lines(71, 1, 3);
    lines[0].isrc = "NOT-AN-ISRC".into();
    lines[1].isrc = "ALSO-BAD".into();
    publish(&common::producer(), &raw, 4, &lines).await;
    run_until_idle(run_args(&raw, &dlq, &url, "it-resolve")).await;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT dead_letter_id FROM quarantine ORDER BY source_offset")
            .fetch_all(&pool)
            .await
            .expect("quarantine");
    assert_eq!(ids.len(), 2, "two refused lines");

    let output = royalty_ingest(
        &[
            "dlq",
            "resolve",
            &ids[0],
            "--note",
            "withdrawn by the DSP (ticket 4711)",
            "--by",
            "alice",
        ],
        &url,
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("closed 1 dead letter(s) by alice"),
        "{}",
        text(&output)
    );
    let (open, by, note): (i64, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM quarantine WHERE resolved_at IS NULL),
                resolved_by_user, resolved_note
           FROM quarantine WHERE dead_letter_id = $1 AND resolved_at IS NOT NULL",
    )
    .bind(&ids[0])
    .fetch_one(&pool)
    .await
    .expect("the closed letter");
    assert_eq!(open, 1, "only the named letter is closed");
    assert_eq!(by.as_deref(), Some("alice"));
    assert_eq!(note.as_deref(), Some("withdrawn by the DSP (ticket 4711)"));

    // Closing it again changes nothing; an unknown id fails, naming it; a note is required.
    let again = royalty_ingest(
        &["dlq", "resolve", &ids[0], "--note", "again", "--by", "bob"],
        &url,
    )
    .await;
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("already resolved"),
        "{}",
        text(&again)
    );
    let by: String =
        sqlx::query_scalar("SELECT resolved_by_user FROM quarantine WHERE dead_letter_id = $1")
            .bind(&ids[0])
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(by, "alice", "the first closing stands");
    let unknown = royalty_ingest(
        &["dlq", "resolve", "no-such-id", "--note", "x", "--by", "bob"],
        &url,
    )
    .await;
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(text(&unknown).contains("no-such-id"), "{}", text(&unknown));
    let no_note = royalty_ingest(&["dlq", "resolve", &ids[1], "--note", " "], &url).await;
    assert!(!no_note.status.success(), "{}", text(&no_note));
    let still_open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM quarantine WHERE resolved_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(still_open, 1);
    // The ledger is not touched: the valid line is booked, the refused ones are not.
    let booked: i64 = sqlx::query_scalar("SELECT count(*) FROM royalty_ledger")
        .fetch_one(&pool)
        .await
        .expect("ledger");
    assert_eq!(booked, 1);
}
