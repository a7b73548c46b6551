//! The foundation against the real services: records round-trip through the Kafka broker
//! with keys, values, headers and per-partition order intact; the migrations apply to a
//! fresh database and a 13-decimal amount survives the ledger exactly.

mod common;

use std::str::FromStr;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rust_decimal::Decimal;
use sqlx::Row;

#[tokio::test]
async fn kafka_round_trip_keeps_keys_values_headers_and_order() {
    let topic = common::fresh_topic("it.roundtrip", 1).await;
    let producer = common::producer();
    for i in 0..3u8 {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "seq",
                value: Some(&[i][..]),
            })
            .insert(Header {
                key: "source",
                value: Some("foundation-test"),
            });
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value)
                    .headers(headers),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("record acknowledged");
    }

    let records = common::read_topic(&topic, 3, Duration::from_secs(30));

    assert_eq!(records.len(), 3, "all three records come back");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.partition, 0);
        assert_eq!(
            record.offset, i as i64,
            "order within the partition is kept"
        );
        assert_eq!(record.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(
            record.value.as_deref(),
            Some(format!("value-{i}").as_bytes())
        );
        assert_eq!(
            record.headers,
            vec![
                ("seq".to_string(), vec![i as u8]),
                ("source".to_string(), b"foundation-test".to_vec())
            ]
        );
    }
}

#[tokio::test]
async fn ledger_keeps_a_13_decimal_amount_exactly() {
    let (_, pool) = common::fresh_database().await;
    let amount = Decimal::from_str("0.0034567890123").expect("decimal");
    let big = Decimal::from_str("123456789012.1234567890123").expect("decimal");

    for (key_byte, value) in [(1u8, amount), (2u8, big)] {
        sqlx::query(
            "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc,
                    upc, stream_count, royalty_amount, currency, source_topic, source_partition,
                    source_offset, source_timestamp)
             VALUES ($1, 'Spotify', '2026-09-01', $2, 'USRC17607839', '036000291452', 12, $3,
                     'EUR', 't', 0, 0, now())",
        )
        .bind(vec![key_byte; 32])
        .bind(format!("T-{key_byte}"))
        .bind(value)
        .execute(&pool)
        .await
        .expect("insert ledger row");
    }

    let rows = sqlx::query("SELECT royalty_amount, royalty_amount::text AS amount_text FROM royalty_ledger ORDER BY line_key")
        .fetch_all(&pool)
        .await
        .expect("read back");
    let read: Vec<Decimal> = rows.iter().map(|r| r.get("royalty_amount")).collect();
    let text: Vec<String> = rows.iter().map(|r| r.get("amount_text")).collect();
    assert_eq!(read, vec![amount, big]);
    assert_eq!(text, vec!["0.0034567890123", "123456789012.1234567890123"]);
    let sum: Decimal = sqlx::query_scalar("SELECT sum(royalty_amount) FROM royalty_ledger")
        .fetch_one(&pool)
        .await
        .expect("sum");
    assert_eq!(sum, amount + big, "sums are exact");
}

#[tokio::test]
async fn ledger_columns_are_exact_numeric_and_refuse_a_raw_isrc() {
    let (_, pool) = common::fresh_database().await;
    let bad_isrc = sqlx::query(
        "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc, upc,
                stream_count, royalty_amount, currency, source_topic, source_partition,
                source_offset, source_timestamp)
         VALUES ($1, 'Spotify', '2026-09-01', 'T', 'us-rc1-76-07839', '036000291452', 1, 1,
                 'EUR', 't', 0, 0, now())",
    )
    .bind(vec![9u8; 32])
    .execute(&pool)
    .await;
    assert!(
        bad_isrc.is_err(),
        "the ledger's own constraint refuses a non-normalised ISRC"
    );

    let column_type: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = 'royalty_ledger'::regclass AND attname = 'royalty_amount'",
    )
    .fetch_one(&pool)
    .await
    .expect("column type");
    assert_eq!(column_type, "numeric(38,13)");
}
