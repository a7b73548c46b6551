//! Ingestion end to end on the real broker and database: redeliveries absorbed, schema
//! versions converging on one row, restatements journaled, invalid records dead-lettered
//! and quarantined with the valid lines around them ingested.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::pipeline::{
    count, distinct_lines, encode, expected_totals, ledger_totals, publish, run_args,
    run_until_idle,
};
use royalty_ingest::domain::DecodedLine;
use royalty_ingest::ledger::dead_letter::headers;
use royalty_ingest::sample::record_key;
use rust_decimal::Decimal;
use sqlx::Row;

#[tokio::test]
async fn the_same_lines_delivered_three_times_interleaved_are_booked_once() {
    let topic = common::fresh_topic("it.raw", 3).await;
    let dlq = common::fresh_topic("it.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(11, 1, 1_000);
    let producer = common::producer();
    // Three deliveries, interleaved: each line's copies are spread through the stream and
    // arrive in different schema versions.
    for round in 0..3u32 {
        let mut order: Vec<&DecodedLine> = lines.iter().collect();
        if round == 1 {
            order.reverse();
        }
        if round == 2 {
            order.sort_by_key(|l| record_key(l).len() % 7);
        }
        for line in order {
            common::send(
                &producer,
                &topic,
                record_key(line).as_bytes(),
                &encode(round + 1, line),
            )
            .await;
        }
    }

    let totals = run_until_idle(run_args(&topic, &dlq, &url, "it-triple")).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(totals.stats.post.inserted, 1_000);
    // Later copies in newer schema versions fill in fields v1 lacked: enrichment, not change.
    assert_eq!(
        totals.stats.post.duplicates + totals.stats.post.enriched,
        2_000
    );
    assert_eq!(totals.stats.post.restated, 0);
    let revisions: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_revisions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(revisions, 0, "identical redeliveries are not restatements");
}

#[tokio::test]
async fn v1_and_v2_encodings_of_the_same_sales_give_one_row_per_sale() {
    let topic = common::fresh_topic("it.raw", 1).await;
    let dlq = common::fresh_topic("it.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(12, 1, 50);
    let producer = common::producer();
    publish(&producer, &topic, 1, &lines).await;
    publish(&producer, &topic, 2, &lines).await;

    run_until_idle(run_args(&topic, &dlq, &url, "it-versions")).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    // The v2 copy carries territory and usage type the v1 copy lacked: the row learns them.
    let with_territory: i64 =
        sqlx::query_scalar("SELECT count(*) FROM royalty_ledger WHERE territory IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(with_territory, 50);
    let revisions: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_revisions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(revisions, 0, "a field first learned is not a restatement");
}

#[tokio::test]
async fn a_restated_amount_updates_the_row_and_journals_one_revision() {
    let topic = common::fresh_topic("it.raw", 1).await;
    let dlq = common::fresh_topic("it.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(13, 1, 10);
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines).await;
    let mut restated = lines[4].clone();
    let old_amount = restated.royalty_amount;
    restated.royalty_amount = Decimal::new(12_345_678_901_234_567, 13);
    publish(&producer, &topic, 3, std::slice::from_ref(&restated)).await;

    run_until_idle(run_args(&topic, &dlq, &url, "it-restate")).await;

    let mut expected = lines.clone();
    expected[4] = restated.clone();
    assert_eq!(ledger_totals(&pool).await, expected_totals(&expected));
    let row = sqlx::query(
        "SELECT r.applied, r.changed_fields, r.old_royalty_amount, r.new_royalty_amount,
                l.royalty_amount, l.version
           FROM ledger_revisions r JOIN royalty_ledger l USING (line_key)",
    )
    .fetch_all(&pool)
    .await
    .expect("revisions");
    assert_eq!(row.len(), 1, "exactly one revision");
    let row = &row[0];
    assert!(row.get::<bool, _>("applied"));
    assert_eq!(
        row.get::<Vec<String>, _>("changed_fields"),
        vec!["royalty_amount"]
    );
    assert_eq!(row.get::<Decimal, _>("old_royalty_amount"), old_amount);
    assert_eq!(
        row.get::<Decimal, _>("new_royalty_amount"),
        restated.royalty_amount
    );
    assert_eq!(
        row.get::<Decimal, _>("royalty_amount"),
        restated.royalty_amount
    );
    assert_eq!(row.get::<i32, _>("version"), 2);
}

#[tokio::test]
async fn a_corrected_upc_restates_the_line_instead_of_booking_it_twice() {
    let topic = common::fresh_topic("it.raw", 1).await;
    let dlq = common::fresh_topic("it.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(14, 1, 3);
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines).await;
    run_until_idle(run_args(&topic, &dlq, &url, "it-upc")).await;

    let mut corrected = lines[1].clone();
    corrected.upc = Some(royalty_ingest::sample::upc_for(987_654));
    publish(&producer, &topic, 3, std::slice::from_ref(&corrected)).await;
    run_until_idle(run_args(&topic, &dlq, &url, "it-upc")).await;

    let mut expected = lines.clone();
    expected[1] = corrected.clone();
    assert_eq!(ledger_totals(&pool).await, expected_totals(&expected));
    let upc: Option<String> =
        sqlx::query_scalar("SELECT upc FROM royalty_ledger WHERE transaction_id = $1")
            .bind(&corrected.transaction_id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(upc, corrected.upc);
    let revisions =
        sqlx::query("SELECT changed_fields, old_values->>'upc' AS old_upc FROM ledger_revisions")
            .fetch_all(&pool)
            .await
            .expect("revisions");
    assert_eq!(revisions.len(), 1);
    assert_eq!(
        revisions[0].get::<Vec<String>, _>("changed_fields"),
        vec!["upc"]
    );
    assert_eq!(
        revisions[0].get::<Option<String>, _>("old_upc"),
        lines[1].upc
    );
}

#[tokio::test]
async fn invalid_records_are_dead_lettered_with_reasons_and_quarantined_once() {
    let topic = common::fresh_topic("it.raw", 1).await;
    let dlq = common::fresh_topic("it.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let good = distinct_lines(15, 1, 6);
    let base = distinct_lines(16, 100, 1).remove(0);
    let valid_v3 = encode(3, &base);

    let mut bad_isrc = base.clone();
    bad_isrc.transaction_id = "BAD-ISRC".into();
    bad_isrc.isrc = "aa-xyz-012-3456".into();
    let mut bad_upc = base.clone();
    bad_upc.transaction_id = "BAD-UPC".into();
    bad_upc.upc = Some("731453000000".into());
    let mut bad_currency = base.clone();
    bad_currency.transaction_id = "BAD-CUR".into();
    bad_currency.currency = "XYZ".into();
    let mut negative_count = base.clone();
    negative_count.transaction_id = "NEG-COUNT".into();
    negative_count.stream_count = -3;
    let mut unknown_fingerprint = valid_v3.clone();
    unknown_fingerprint[2..10].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());

    // (value, expected stage, expected class)
    let invalid: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"\xde\xad\xbe\xef not avro".to_vec(),
            "decode",
            "unknown_framing",
        ),
        (
            valid_v3[..valid_v3.len() - 3].to_vec(),
            "decode",
            "truncated",
        ),
        (unknown_fingerprint, "decode", "unknown_fingerprint"),
        (encode(3, &bad_isrc), "validate", "isrc_hyphens"),
        (encode(3, &bad_upc), "validate", "gs1_check_digit"),
        (encode(3, &bad_currency), "validate", "iso4217_code"),
        (encode(3, &negative_count), "validate", "negative_count"),
    ];
    let producer = common::producer();
    // Valid lines around and between the invalid ones.
    for (i, (value, _, _)) in invalid.iter().enumerate() {
        let line = &good[i % good.len()];
        common::send(
            &producer,
            &topic,
            record_key(line).as_bytes(),
            &encode(3, line),
        )
        .await;
        common::send(&producer, &topic, format!("bad-{i}").as_bytes(), value).await;
    }

    run_until_idle(run_args(&topic, &dlq, &url, "it-invalid")).await;

    assert_eq!(ledger_totals(&pool).await, expected_totals(&good));
    let quarantined = sqlx::query(
        "SELECT source_offset, error_stage, error_class, reason, record_value, dead_letter_id
           FROM quarantine ORDER BY source_offset",
    )
    .fetch_all(&pool)
    .await
    .expect("quarantine");
    assert_eq!(
        quarantined.len(),
        invalid.len(),
        "one quarantine row per refused record"
    );

    let letters = common::read_topic(&dlq, invalid.len(), Duration::from_secs(60));
    assert_eq!(
        letters.len(),
        invalid.len(),
        "every refused record is in the DLQ"
    );
    let by_key: HashMap<String, &common::ReadRecord> = letters
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                r,
            )
        })
        .collect();
    let mut ids = HashSet::new();
    for (i, (value, stage, class)) in invalid.iter().enumerate() {
        let letter = by_key
            .get(&format!("bad-{i}"))
            .expect("dead letter for each bad record");
        assert_eq!(
            letter.value.as_deref(),
            Some(value.as_slice()),
            "original bytes unchanged"
        );
        assert_eq!(
            letter.header(headers::STAGE).as_deref(),
            Some(*stage),
            "stage of bad-{i}"
        );
        assert_eq!(
            letter.header(headers::CLASS).as_deref(),
            Some(*class),
            "class of bad-{i}"
        );
        assert_eq!(
            letter.header(headers::TOPIC).as_deref(),
            Some(topic.as_str())
        );
        assert_eq!(letter.header(headers::PARTITION).as_deref(), Some("0"));
        let offset: i64 = letter
            .header(headers::OFFSET)
            .and_then(|o| o.parse().ok())
            .expect("offset header");
        assert_eq!(offset, 2 * i as i64 + 1, "offset names the refused record");
        let reason = letter.header(headers::REASON).unwrap_or_default();
        assert!(!reason.is_empty());
        assert!(letter.header(headers::TIME).is_some());
        assert!(letter.header(headers::GROUP).as_deref() == Some("it-invalid"));
        let id = letter.header(headers::ID).expect("stable id");
        let row = quarantined
            .iter()
            .find(|q| q.get::<i64, _>("source_offset") == offset)
            .expect("quarantine row for the offset");
        assert_eq!(row.get::<String, _>("dead_letter_id"), id);
        assert_eq!(row.get::<String, _>("error_class"), *class);
        assert!(ids.insert(id), "ids are distinct");
    }
    for class in [
        "isrc_hyphens",
        "gs1_check_digit",
        "iso4217_code",
        "negative_count",
    ] {
        let letter = letters
            .iter()
            .find(|l| l.header(headers::CLASS).as_deref() == Some(class))
            .expect("letter");
        assert!(
            letter.header(headers::SCHEMA).is_some(),
            "schema named for {class}"
        );
        let reason = letter.header(headers::REASON).unwrap_or_default();
        let field = match class {
            "isrc_hyphens" => "isrc",
            "gs1_check_digit" => "upc",
            "iso4217_code" => "currency",
            _ => "stream_count",
        };
        assert!(
            reason.contains(field),
            "reason {reason:?} names the field {field}"
        );
    }
}

#[tokio::test]
async fn one_line_on_two_partitions_in_two_lanes_is_booked_once() {
    // A DSP resend under another key lands on another partition: both copies fall in one
    // batch, in two lanes committing at once. The second lane meets the first's row (it
    // waits, then fails on the key and is retried); the line is booked once.
    let topic = common::fresh_topic("it.lanes.raw", 2).await;
    let dlq = common::fresh_topic("it.lanes.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let lines = distinct_lines(61, 1, 300);
    let producer = common::producer();
    let (topic_ref, producer_ref) = (&topic, &producer);
    for partition in 0..2 {
        for chunk in lines.chunks(100) {
            let sends = chunk.iter().map(|line| async move {
                let value = encode(3, line);
                let key = format!("{}-copy-{partition}", record_key(line));
                producer_ref
                    .send(
                        rdkafka::producer::FutureRecord::to(topic_ref)
                            .partition(partition)
                            .key(key.as_bytes())
                            .payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .expect("record acknowledged");
            });
            futures::future::join_all(sends).await;
        }
    }
    let mut args = run_args(&topic, &dlq, &url, "it-lanes");
    args.lanes = 2;
    args.batch_size = 1_000;
    args.linger_ms = 2_000;
    let totals = run_until_idle(args).await;
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(totals.stats.post.inserted, 300);
    assert_eq!(totals.stats.post.duplicates, 300);
    assert_eq!(totals.stats.dead_letters, 0, "no copy refused as poison");
    assert_eq!(count(&pool, "SELECT count(*) FROM quarantine").await, 0);
}

/// The log of a batch job says what its batches did (at INFO, not only in a trace span),
/// one line per batch at most once a second: the counts of the lines summed over the lines
/// are what the run did.
#[tokio::test]
async fn a_batch_job_logs_what_its_batches_did() {
    let topic = common::fresh_topic("it.log", 1).await;
    let dlq = common::fresh_topic("it.log.dlq", 1).await;
    let (url, _pool) = common::fresh_database().await;
    let lines = distinct_lines(17, 1, 12);
    let producer = common::producer();
    publish(&producer, &topic, 3, &lines).await;
    let mut restated = lines[2].clone();
    restated.royalty_amount += Decimal::new(1, 2);
    publish(&producer, &topic, 3, std::slice::from_ref(&restated)).await;

    let mut args = vec!["run"];
    args.extend(common::pipeline::run_flags(&topic, &dlq, "it-log"));
    args.extend(["--exit-when-idle-ms", "1500"]);
    let output =
        common::pipeline::royalty_ingest_with_env(&args, &url, &[("RUST_LOG", "info")]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "run failed: {stderr}");
    let told: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("batches committed"))
        .collect();
    assert!(!told.is_empty(), "no INFO line about batches: {stderr}");
    let sum = |field: &str| -> u64 {
        told.iter()
            .map(|line| {
                let value = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix(&format!("{field}=")))
                    .unwrap_or_else(|| panic!("{field} missing in {line}"));
                value.parse::<u64>().expect("a count")
            })
            .sum()
    };
    assert_eq!(sum("inserted"), 12, "{stderr}");
    assert_eq!(sum("restated"), 1, "{stderr}");
    assert_eq!(sum("records"), 13, "{stderr}");
}

/// A line carrying its report's time in the `royalty.report.time` header is versioned by
/// it, whatever the record's own timestamp (its producer's publication time): a correction
/// made later wins, an older version published after it is stale. A header that is not an
/// RFC 3339 time is refused with the reason, never read as a guess.
#[tokio::test]
async fn the_report_time_header_versions_a_line_and_a_malformed_one_is_refused() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;

    let topic = common::fresh_topic("it.reporttime.raw", 1).await;
    let dlq = common::fresh_topic("it.reporttime.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let line = distinct_lines(91, 1, 1).remove(0);
    let mut corrected = line.clone();
    corrected.royalty_amount = Decimal::new(75, 1);
    let mut malformed = distinct_lines(91, 2, 1).remove(0);
    malformed.report_id = Some("R-91".into());
    let producer = common::producer();
    // In publication order: the correction (made 2026-10-20), the original (made
    // 2026-10-05) published after it, and a line whose header says "last Tuesday".
    let sends = [
        (&corrected, "2026-10-20T08:00:00Z"),
        (&line, "2026-10-05T08:00:00Z"),
        (&malformed, "last Tuesday"),
    ];
    for (l, made) in sends {
        let value = encode(3, l);
        let key = record_key(l);
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(key.as_bytes())
                    .payload(&value)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "royalty.report.time",
                        value: Some(made),
                    })),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(err, _)| err)
            .expect("sent");
    }

    run_until_idle(run_args(&topic, &dlq, &url, "it-reporttime")).await;

    let (amount, stamped): (Decimal, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT royalty_amount, source_timestamp FROM royalty_ledger WHERE transaction_id = $1",
    )
    .bind(&line.transaction_id)
    .fetch_one(&pool)
    .await
    .expect("the line");
    assert_eq!(amount, Decimal::new(75, 1), "the later report wins");
    assert_eq!(stamped.to_rfc3339(), "2026-10-20T08:00:00+00:00");
    let stale = count(
        &pool,
        "SELECT count(*) FROM ledger_revisions WHERE NOT applied",
    )
    .await;
    assert_eq!(stale, 1, "the older version is journaled as stale");
    let refused: (String, String) = sqlx::query_as("SELECT error_class, reason FROM quarantine")
        .fetch_one(&pool)
        .await
        .expect("one dead letter");
    assert_eq!(refused.0, "invalid_header");
    assert!(
        refused
            .1
            .contains("royalty.report.time header \"last Tuesday\" is not an RFC 3339 time"),
        "{}",
        refused.1
    );
    assert_eq!(
        ledger_totals(&pool).await.0,
        1,
        "the malformed line is not booked"
    );
}
