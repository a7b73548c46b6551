//! A record that makes PostgreSQL itself refuse the batch is isolated (savepoints,
//! bisecting), dead-lettered with stage `ledger`, and the rest of the batch commits: the
//! partition moves on.

mod common;

use std::time::Duration;

use common::pipeline::{expected_totals, ledger_totals, publish, run_args, run_until_idle};
use royalty_ingest::ledger::dead_letter::headers;

#[tokio::test]
async fn a_line_the_database_refuses_is_isolated_and_dead_lettered() {
    let topic = common::fresh_topic("it.poison.raw", 1).await;
    let dlq = common::fresh_topic("it.poison.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    // Fault injection in this test's own database: a trigger refusing one transaction id,
    // standing in for any value the validator passes and PostgreSQL refuses.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.transaction_id LIKE 'POISON%' THEN
             RAISE EXCEPTION 'poison line %', NEW.transaction_id;
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON royalty_ledger
           FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&pool)
    .await
    .expect("install trigger");

    let mut lines = common::pipeline::distinct_lines(51, 1, 40);
    let mut poison = lines.remove(17);
    poison.transaction_id = "POISON-1".into();
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines[..20]).await;
    publish(&producer, &topic, 3, std::slice::from_ref(&poison)).await;
    publish(&producer, &topic, 3, &lines[20..]).await;

    let mut args = run_args(&topic, &dlq, &url, "it-poison");
    args.batch_size = 1_000; // everything in one batch: the poison must be bisected out
    args.linger_ms = 2_000;
    let totals = run_until_idle(args).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(totals.stats.poisoned, 1);
    let (stage, class, offset): (String, String, i64) =
        sqlx::query_as("SELECT error_stage, error_class, source_offset FROM quarantine")
            .fetch_one(&pool)
            .await
            .expect("one quarantine row");
    assert_eq!(
        (stage.as_str(), class.as_str(), offset),
        ("ledger", "database_rejected", 20)
    );
    let next: i64 = sqlx::query_scalar("SELECT next_offset FROM consumer_offsets")
        .fetch_one(&pool)
        .await
        .expect("offset");
    assert_eq!(next, 40, "the partition moved past the poison record");
    let letters = common::read_topic(&dlq, 1, Duration::from_secs(30));
    assert_eq!(letters.len(), 1);
    let reason = letters[0].header(headers::REASON).unwrap_or_default();
    assert!(reason.contains("poison line POISON-1"), "{reason}");
}
