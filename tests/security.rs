//! Least privilege and credentials: `run` and the reviewer's tools work as a member of the
//! runtime role of deploy/postgres/runtime-role.sql (rows yes, schema changes no), with the
//! database URL read from a file (a mounted secret), and the ledger stays exact.

mod common;

use std::time::Duration;

use common::pipeline::{
    count, expected_totals, ledger_totals, mixed_stream, publish_records, royalty_ingest, run_once,
};
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn run_and_dlq_work_as_a_role_that_cannot_change_the_schema() {
    let (owner_url, pool) = common::fresh_database().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/postgres/runtime-role.sql"
        ))
        .expect("runtime-role.sql"),
    ))
    .execute(&pool)
    .await
    .expect("apply the runtime role grants as the owner");
    let login = format!("ri_app_{}", common::unique_suffix());
    let password = format!("App-{}", common::unique_suffix());
    // Generated name and password, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE royalty_run"
    )))
    .execute(&pool)
    .await
    .expect("create the login role");
    let app_url = owner_url.replacen("royalty:royalty@", &format!("{login}:{password}@"), 1);
    assert_ne!(app_url, owner_url);

    // The role reads and writes rows, and cannot change the schema.
    let app = PgPoolOptions::new()
        .max_connections(1)
        .connect(&app_url)
        .await
        .expect("connect as the runtime role");
    let ddl = sqlx::query("CREATE TABLE sneaky (i int)")
        .execute(&app)
        .await;
    let code = ddl.err().and_then(|e| {
        e.as_database_error()
            .and_then(|d| d.code().map(|c| c.to_string()))
    });
    assert_eq!(code.as_deref(), Some("42501"), "DDL must be refused");
    app.close().await;

    let topic = common::fresh_topic("it.sec.raw", 2).await;
    let dlq = common::fresh_topic("it.sec.dlq", 1).await;
    let (records, lines) = mixed_stream(93, 600, 60, 6);
    publish_records(&common::producer(), &topic, &records).await;

    // The URL comes from a file; DATABASE_URL names nothing usable, so only the file
    // can have been used.
    let unusable = "postgres://nobody:wrong@127.0.0.1:5432/nowhere";
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("database-url");
    std::fs::write(&secret_file, format!("{app_url}\n")).expect("write the secret");
    let secret_file = secret_file.to_string_lossy().into_owned();
    let output = run_once(
        &topic,
        &dlq,
        "it-sec",
        &["--database-url-file", &secret_file],
        unusable,
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains(&password),
        "the password leaked into the logs"
    );
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(count(&pool, "SELECT count(*) FROM quarantine").await, 6);

    // The reviewer's tools work with the same role.
    let list = royalty_ingest(
        &[
            "dlq",
            "list",
            "--dlq-topic",
            &dlq,
            "--json",
            "--database-url-file",
            &secret_file,
        ],
        unusable,
    )
    .await;
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&list.stdout).expect("dlq list --json");
    assert_eq!(summary["total"], 6, "{summary}");

    common::wait_until(
        Duration::from_secs(10),
        "the role's sessions closed",
        || {
            let pool = pool.clone();
            let login = login.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                )
                .bind(&login)
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == 0)
            }
        },
    )
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {login}")))
        .execute(&pool)
        .await
        .expect("drop the login role");
}
