//! A record that makes PostgreSQL itself refuse the batch (a line, a catalog entry, a
//! report summary) is isolated (savepoints, bisecting), dead-lettered with stage `ledger`,
//! and the rest of the batch commits: the partition moves on. A dead letter PostgreSQL
//! refuses is stored without the record's bytes.

mod common;

use std::time::Duration;

use common::pipeline::{expected_totals, ledger_totals, publish, run_args, run_until_idle};
use royalty_ingest::drift::catalog::RawCatalogEntry;
use royalty_ingest::ledger::dead_letter::headers;
use royalty_ingest::report::ReportSummary;
use tokio_util::sync::CancellationToken;

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

#[tokio::test]
async fn catalog_entries_summaries_and_dead_letters_the_database_refuses_are_isolated() {
    let topic = common::fresh_topic("it.poison2.raw", 1).await;
    let dlq = common::fresh_topic("it.poison2.dlq", 1).await;
    let catalog = common::fresh_topic("it.poison2.catalog", 1).await;
    let summaries = common::fresh_topic("it.poison2.summaries", 1).await;
    let (url, pool) = common::fresh_database().await;
    // Fault injection in this test's own database: triggers refusing one catalog entry, one
    // report summary and one dead letter, standing in for any value the checks pass and
    // PostgreSQL refuses.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.label = 'POISON' THEN RAISE EXCEPTION 'poison catalog entry'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_catalog BEFORE INSERT ON catalog_versions
           FOR EACH ROW EXECUTE FUNCTION refuse_catalog();
         CREATE FUNCTION refuse_summary() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.report_id LIKE 'POISON%' THEN RAISE EXCEPTION 'poison summary'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_summary BEFORE INSERT ON report_summaries
           FOR EACH ROW EXECUTE FUNCTION refuse_summary();
         CREATE FUNCTION refuse_letter() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.record_key = convert_to('poison-letter', 'UTF8') THEN
             RAISE EXCEPTION 'poison dead letter';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_letter BEFORE INSERT ON quarantine
           FOR EACH ROW EXECUTE FUNCTION refuse_letter();",
    )
    .execute(&pool)
    .await
    .expect("install triggers");

    let lines = common::pipeline::distinct_lines(53, 1, 30);
    let producer = common::producer();
    let store = royalty_ingest::avro::SchemaStore::builtin().expect("schemas");
    for (i, label) in ["Harbor Records", "POISON", "Quay Music"]
        .iter()
        .enumerate()
    {
        let line = &lines[i];
        let entry = RawCatalogEntry {
            isrc: line.isrc.clone(),
            upc: line.upc.clone().expect("sample lines carry a UPC"),
            title: None,
            display_artist: None,
            label: Some((*label).to_string()),
            iswc: None,
            valid_from: "2020-01-01".into(),
        };
        let update = common::catalog_update(&entry, "label-ops");
        common::send(&producer, &catalog, line.isrc.as_bytes(), &update).await;
    }
    for report_id in ["R-1", "POISON-R"] {
        let summary = ReportSummary {
            report_id: report_id.into(),
            dsp_name: "Spotify".into(),
            report_period: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("date"),
            currency: "EUR".into(),
            lines: 1,
            quantity: 1,
            amount: "1.00".parse().expect("decimal"),
            declared_amount: None,
            source: "test".into(),
            created_at: chrono::Utc::now(),
            content_sha256: None,
        };
        let value = summary.encode(&store).expect("encode summary");
        common::send(
            &producer,
            &summaries,
            summary.record_key().as_bytes(),
            &value,
        )
        .await;
    }
    publish(&producer, &topic, 3, &lines[..15]).await;
    common::send(&producer, &topic, b"poison-letter", b"not avro, poison").await;
    common::send(&producer, &topic, b"garbage", b"not avro either").await;
    publish(&producer, &topic, 3, &lines[15..]).await;

    let mut args = run_args(&topic, &dlq, &url, "it-poison2");
    args.catalog_topic = catalog.clone();
    args.summaries_topic = summaries.clone();
    args.no_unknown_isrc_alerts = true;
    args.batch_size = 1_000;
    args.linger_ms = 2_000;
    let totals = run_until_idle(args).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(
        totals.stats.poisoned, 2,
        "the catalog entry and the summary"
    );
    let labels: Vec<String> =
        sqlx::query_scalar("SELECT label FROM catalog_versions ORDER BY label")
            .fetch_all(&pool)
            .await
            .expect("catalog");
    assert_eq!(labels, ["Harbor Records", "Quay Music"]);
    let reports: Vec<String> = sqlx::query_scalar("SELECT report_id FROM report_summaries")
        .fetch_all(&pool)
        .await
        .expect("summaries");
    assert_eq!(reports, ["R-1"]);
    type Row = (String, String, Option<Vec<u8>>, Option<Vec<u8>>, String);
    let quarantined: Vec<Row> = sqlx::query_as(
        "SELECT source_topic, error_class, record_key, record_value, reason FROM quarantine
          ORDER BY source_topic, source_offset",
    )
    .fetch_all(&pool)
    .await
    .expect("quarantine");
    assert_eq!(quarantined.len(), 4, "{quarantined:?}");
    let on = |t: &str| quarantined.iter().filter(|r| r.0 == t).collect::<Vec<_>>();
    let catalog_rows = on(&catalog);
    assert_eq!(catalog_rows.len(), 1);
    assert_eq!(catalog_rows[0].1, "database_rejected");
    assert!(catalog_rows[0].4.contains("poison catalog entry"));
    assert!(
        catalog_rows[0].3.is_some(),
        "the refused entry's bytes are kept"
    );
    let summary_rows = on(&summaries);
    assert_eq!(summary_rows.len(), 1);
    assert!(summary_rows[0].4.contains("poison summary"));
    let raw_rows = on(&topic);
    assert_eq!(raw_rows.len(), 2);
    // The dead letter PostgreSQL refused is stored without the record's bytes.
    assert_eq!(
        (raw_rows[0].2.as_deref(), raw_rows[0].3.as_deref()),
        (None, None)
    );
    assert!(
        raw_rows[0].4.contains("could not be stored whole")
            && raw_rows[0].4.contains("poison dead letter"),
        "{}",
        raw_rows[0].4
    );
    assert_eq!(raw_rows[1].2.as_deref(), Some(&b"garbage"[..]));
    // Every partition moved to its end; every dead letter reached the DLQ topic.
    let offsets: Vec<(String, i64)> =
        sqlx::query_as("SELECT topic, next_offset FROM consumer_offsets ORDER BY topic")
            .fetch_all(&pool)
            .await
            .expect("offsets");
    for (t, next) in &offsets {
        assert_eq!(*next, common::topic_size(t), "{t} read to its end");
    }
    assert_eq!(offsets.len(), 3);
    let letters = common::read_topic(&dlq, 4, Duration::from_secs(30));
    assert_eq!(letters.len(), 4);
}

/// Installs a trigger on the ledger that raises `errcode` (with `constraint` named, if
/// any) for the lines whose transaction id starts with `prefix`.
async fn refuse_lines(pool: &sqlx::PgPool, prefix: &str, errcode: &str, constraint: &str) {
    let constraint = if constraint.is_empty() {
        String::new()
    } else {
        format!(", CONSTRAINT = '{constraint}'")
    };
    // The values are the test's own literals, never input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION refuse_lines() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.transaction_id LIKE '{prefix}%' THEN
             RAISE EXCEPTION 'refused %', NEW.transaction_id
               USING ERRCODE = '{errcode}'{constraint};
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_lines BEFORE INSERT ON royalty_ledger
           FOR EACH ROW EXECUTE FUNCTION refuse_lines();"
    )))
    .execute(pool)
    .await
    .expect("install trigger");
}

/// A unique violation on anything but the ledger's key is no lanes' race: it used to be
/// retried for ever; now the line is isolated and dead-lettered like any refused value.
#[tokio::test]
async fn a_unique_violation_other_than_the_lanes_race_is_isolated_not_retried() {
    let topic = common::fresh_topic("it.poison.unique.raw", 1).await;
    let dlq = common::fresh_topic("it.poison.unique.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    refuse_lines(&pool, "DUP", "23505", "royalty_ledger_isrc_period_key").await;
    let mut lines = common::pipeline::distinct_lines(53, 1, 30);
    let mut duplicate = lines.remove(9);
    duplicate.transaction_id = "DUP-1".into();
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines[..15]).await;
    publish(&producer, &topic, 3, std::slice::from_ref(&duplicate)).await;
    publish(&producer, &topic, 3, &lines[15..]).await;

    let totals = run_until_idle(run_args(&topic, &dlq, &url, "it-poison-unique")).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(totals.stats.poisoned, 1);
    let reason: String = sqlx::query_scalar("SELECT reason FROM quarantine")
        .fetch_one(&pool)
        .await
        .expect("one quarantine row");
    assert!(reason.contains("23505"), "{reason}");
}

/// A refusal that is the code's own fault (a trigger raising bad_copy_file_format stands in
/// for a malformed binary COPY) is no record's: bisecting used to dead-letter every line of
/// the batch and move the offsets on. Now the run stops, naming the SQLSTATE, with nothing
/// dead-lettered, booked or acknowledged.
#[tokio::test]
async fn a_refusal_that_is_the_codes_own_fault_stops_the_run_with_nothing_dead_lettered() {
    let topic = common::fresh_topic("it.poison.fault.raw", 1).await;
    let dlq = common::fresh_topic("it.poison.fault.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    refuse_lines(&pool, "", "22P04", "").await;
    publish(
        &common::producer(),
        &topic,
        3,
        &common::pipeline::distinct_lines(55, 1, 20),
    )
    .await;

    royalty_ingest::observe::init_tracing();
    let args = run_args(&topic, &dlq, &url, "it-poison-fault");
    let err = royalty_ingest::pipeline::run(args, CancellationToken::new())
        .await
        .expect_err("the run stops");
    let text = format!("{err:#}");
    assert!(text.contains("fatal") && text.contains("22P04"), "{text}");
    let (ledger, quarantined, outbox, offsets): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM royalty_ledger), (SELECT count(*) FROM quarantine),
                (SELECT count(*) FROM outbox),
                (SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_offsets)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!(
        (ledger, quarantined, outbox, offsets),
        (0, 0, 0, 0),
        "nothing booked, dead-lettered or acknowledged"
    );
}
