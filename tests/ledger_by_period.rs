//! The ledger keyed by (report period, line key): the migration of a ledger that already
//! holds lines, journal entries and reversals under the key alone keeps every row and
//! amount, gives the journal and the reversals their period, and the pipeline then goes on
//! booking into the migrated ledger exactly once.

mod common;

use common::pipeline::{
    distinct_lines, expected_totals, ledger_totals, publish, royalty_ingest, run_args,
    run_until_idle,
};
use rust_decimal::Decimal;

/// Every ledger row's key, period, amount and version, in key order.
async fn ledger_rows(pool: &sqlx::PgPool) -> Vec<(Vec<u8>, chrono::NaiveDate, Decimal, i32)> {
    sqlx::query_as(
        "SELECT line_key, report_period, royalty_amount, version FROM royalty_ledger ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("ledger rows")
}

#[tokio::test]
async fn a_ledger_with_rows_migrates_to_the_period_key_and_goes_on_booking_exactly_once() {
    let topic = common::fresh_topic("it.period", 2).await;
    let dlq = common::fresh_topic("it.period.dlq", 1).await;
    let (url, pool) = common::fresh_database().await;
    let producer = common::producer();

    // Lines of three periods, one of them restated (a journal entry), booked by `run`.
    let mut lines = distinct_lines(61, 1, 300);
    for (i, line) in lines.iter_mut().enumerate() {
        line.report_period = ["2025-11-01", "2025-12-01", "2026-01-01"][i % 3].to_string();
    }
    publish(&producer, &topic, 3, &lines).await;
    let mut restated = lines[7].clone();
    restated.royalty_amount += Decimal::new(125, 4);
    publish(&producer, &topic, 3, std::slice::from_ref(&restated)).await;
    run_until_idle(run_args(&topic, &dlq, &url, "it-period")).await;
    lines[7] = restated;

    // Back to the key-only schema, the rows kept, and a reversal recorded as it was then.
    common::undo_ledger_by_period(&pool).await;
    sqlx::query(
        "INSERT INTO ledger_reversals (line_key, report_id, version_at)
         SELECT line_key, 'R-OLD', source_timestamp FROM royalty_ledger
          ORDER BY line_key LIMIT 2",
    )
    .execute(&pool)
    .await
    .expect("reversals under the old schema");
    let before = ledger_rows(&pool).await;
    assert_eq!(before.len(), 300);
    let revisions: i64 =
        common::pipeline::count(&pool, "SELECT count(*) FROM ledger_revisions").await;
    assert_eq!(revisions, 1, "the restatement's journal entry");

    let output = royalty_ingest(&["migrate"], &url).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert_eq!(
        ledger_rows(&pool).await,
        before,
        "every row and amount kept"
    );
    let primary_key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text
           FROM pg_index i
           JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = 'royalty_ledger'::regclass AND i.indisprimary
          ORDER BY k.n",
    )
    .fetch_all(&pool)
    .await
    .expect("primary key");
    assert_eq!(primary_key, ["report_period", "line_key"]);
    for (table, periods) in [
        (
            "ledger_revisions",
            "SELECT count(*), count(*) FILTER (WHERE l.report_period = t.report_period)
               FROM ledger_revisions t LEFT JOIN royalty_ledger l USING (line_key)",
        ),
        (
            "ledger_reversals",
            "SELECT count(*), count(*) FILTER (WHERE l.report_period = t.report_period)
               FROM ledger_reversals t LEFT JOIN royalty_ledger l USING (line_key)",
        ),
    ] {
        let (rows, matching): (i64, i64) = sqlx::query_as(periods)
            .fetch_one(&pool)
            .await
            .expect("periods");
        assert!(rows > 0, "{table} has rows");
        // Every row names a booked line by its period and key (a LEFT JOIN: an orphan would
        // not match). The journal's foreign key itself was dropped by the next migration
        // (20261207000001); the reversals keep theirs.
        assert_eq!(rows, matching, "{table}: each row got its line's period");
    }
    let validated: bool = sqlx::query_scalar(
        "SELECT convalidated FROM pg_constraint
          WHERE conname = 'ledger_reversals_line_fkey'",
    )
    .fetch_one(&pool)
    .await
    .expect("foreign key");
    assert!(validated, "the reversals' foreign key holds for their rows");

    // The pipeline on the migrated ledger: redeliveries absorbed, a restatement of a line
    // booked before the migration updates that row and journals it, new lines added.
    let mut again = lines[..50].to_vec();
    let mut corrected = lines[100].clone();
    corrected.royalty_amount += Decimal::new(1, 2);
    again.push(corrected.clone());
    let new_lines = distinct_lines(62, 10_001, 40);
    again.extend(new_lines.iter().cloned());
    publish(&producer, &topic, 3, &again).await;
    let totals = run_until_idle(run_args(&topic, &dlq, &url, "it-period")).await;
    assert_eq!(totals.stats.post.restated, 1);
    assert_eq!(totals.stats.post.inserted, 40);
    lines[100] = corrected;
    lines.extend(new_lines);
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    let journaled: i64 = common::pipeline::count(
        &pool,
        "SELECT count(*) FROM ledger_revisions r
           JOIN royalty_ledger l USING (report_period, line_key)
          WHERE l.version = 2",
    )
    .await;
    assert_eq!(
        journaled, 2,
        "both restatements journaled against their rows"
    );
}

/// The batch's lookup of stored rows is one index probe per key whatever the planner
/// believes about the table: with a plain join, statistics taken while the table was
/// small made PostgreSQL join every batch against the whole ledger (steady 5,000 lines/s:
/// 20 s per batch). Here joins other than nested loops are made the cheapest choice and
/// the plan must still probe.
#[tokio::test]
async fn the_batch_lookup_probes_the_primary_key_whatever_the_statistics() {
    let (_url, pool) = common::fresh_database().await;
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::raw_sql(
        "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc,
                stream_count, royalty_amount, currency, source_topic, source_partition,
                source_offset, source_timestamp)
         SELECT sha256(int8send(n)), 'StreamCo', date '2026-07-01' + (n % 3) * interval '1 month',
                'T-' || n, 'GBQZA2400001', 1, 1, 'GBP', 'raw', 0, n, now()
           FROM generate_series(1, 20000) AS n;
         ANALYZE royalty_ledger;
         SET enable_nestloop = off;",
    )
    .execute(&mut *conn)
    .await
    .expect("a filled ledger");
    let periods: Vec<chrono::NaiveDate> = sqlx::query_scalar(
        "SELECT report_period FROM royalty_ledger ORDER BY transaction_id LIMIT 500",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("periods");
    let keys: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT line_key FROM royalty_ledger ORDER BY transaction_id LIMIT 500")
            .fetch_all(&mut *conn)
            .await
            .expect("keys");
    let explain = format!(
        "EXPLAIN (FORMAT TEXT) {}",
        royalty_ingest::ledger::columns::LOAD_SQL.as_str()
    );
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .bind(&periods)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await
        .expect("plan");
    let plan = plan.join("\n");
    assert!(
        plan.contains(
            "Index Cond: ((report_period = k.report_period) AND (line_key = k.line_key))"
        ),
        "{plan}"
    );
    for whole_table in ["Seq Scan on royalty_ledger", "Hash Join", "Merge Join"] {
        assert!(!plan.contains(whole_table), "{plan}");
    }
}

/// The batch's UPDATE goes straight to where the loader found each row (its `ctid`, kept
/// there by the loader's lock) instead of probing the primary key again, and overwrites
/// nothing that is not there: a location whose row moved, or that holds another line,
/// updates nothing (the batch counts the rows it updated and plans again when one is
/// missing).
#[tokio::test]
async fn the_batch_update_finds_rows_where_the_loader_locked_them_and_nowhere_else() {
    use royalty_ingest::ledger::columns::{LOAD_SQL, STORED_AT, UPDATE_SQL, bind_update, load_row};
    use sqlx::Row;

    let (_url, pool) = common::fresh_database().await;
    let mut tx = pool.begin().await.expect("transaction");
    sqlx::raw_sql(
        "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc,
                stream_count, royalty_amount, currency, source_topic, source_partition,
                source_offset, source_timestamp)
         SELECT sha256(int8send(n)), 'StreamCo', date '2026-07-01', 'T-' || n, 'GBQZA2400001',
                1, 1, 'GBP', 'raw', 0, n, now()
           FROM generate_series(1, 5000) AS n;
         ANALYZE royalty_ledger;",
    )
    .execute(&mut *tx)
    .await
    .expect("a filled ledger");
    let keys: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT sha256(int8send(n)) FROM generate_series(1, 3) AS n")
            .fetch_all(&mut *tx)
            .await
            .expect("keys");
    let periods = vec![chrono::NaiveDate::from_ymd_opt(2026, 7, 1).expect("date"); keys.len()];
    let loaded = sqlx::query(LOAD_SQL.as_str())
        .bind(&periods)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await
        .expect("loaded rows");
    let mut rows: Vec<(String, royalty_ingest::ledger::post::LedgerRow)> = loaded
        .iter()
        .map(|r| {
            let at: String = r.try_get(STORED_AT).expect("location");
            (at, load_row(r).expect("a ledger row"))
        })
        .collect();
    assert_eq!(rows.len(), 3);
    for (_, row) in &mut rows {
        row.line.royalty_amount = Decimal::new(2, 0);
        row.version = 2;
    }
    let update = |rows: &[(&str, &royalty_ingest::ledger::post::LedgerRow)]| {
        bind_update(sqlx::query(UPDATE_SQL.as_str()), rows)
    };

    let explain = format!("EXPLAIN (FORMAT TEXT) {}", UPDATE_SQL.as_str());
    let plan: Vec<String> = bind_update(
        sqlx::query(sqlx::AssertSqlSafe(explain)),
        &rows
            .iter()
            .map(|(at, r)| (at.as_str(), r))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await
    .expect("plan")
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Tid Scan on royalty_ledger"), "{plan}");
    assert!(!plan.contains("Seq Scan on royalty_ledger"), "{plan}");

    // The first two where they were read: both updated.
    let first_two: Vec<(&str, &_)> = rows[..2].iter().map(|(at, r)| (at.as_str(), r)).collect();
    let done = update(&first_two).execute(&mut *tx).await.expect("update");
    assert_eq!(done.rows_affected(), 2);
    // Their old locations now hold dead versions: nothing there to update again.
    let again = update(&first_two).execute(&mut *tx).await.expect("update");
    assert_eq!(again.rows_affected(), 0);
    // The third row's line at the first row's old location: not overwritten.
    let misplaced = [(rows[0].0.as_str(), &rows[2].1)];
    let none = update(&misplaced).execute(&mut *tx).await.expect("update");
    assert_eq!(none.rows_affected(), 0);

    let amounts: Vec<(i32, Decimal)> = sqlx::query_as(
        "SELECT version, royalty_amount FROM royalty_ledger
          WHERE line_key = ANY($1) ORDER BY source_offset",
    )
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await
    .expect("amounts");
    assert_eq!(
        amounts,
        vec![
            (2, Decimal::new(2, 0)),
            (2, Decimal::new(2, 0)),
            (1, Decimal::new(1, 0))
        ]
    );
}
