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

/// `TCP_NODELAY` on the pool's connections: over TLS (the default `sslmode=prefer` with a
/// server that offers it) Nagle's algorithm halved ingestion without it (BENCHMARKS.md).
/// sqlx sets it since 0.9.1; this says so if a sqlx upgrade stops doing it.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn pool_connections_to_postgres_have_tcp_nodelay() {
    let (url, _pool) = common::fresh_database().await;
    let port = url::Url::parse(&url)
        .expect("database URL")
        .port()
        .unwrap_or(5432);
    let pool = royalty_ingest::db::connect(&url, 1).await.expect("connect");
    let _held = pool.acquire().await.expect("a connection");
    // Every TCP socket of this process to the database's port is a sqlx connection (this
    // test's, or another test's in this binary): all must have the option.
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if tcp_peer_port(fd) != Some(port) {
            continue;
        }
        let mut on: libc::c_int = 0;
        let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `on` and `length` outlive the call and `length` is `on`'s size. A socket
        // closed since it was listed makes the call fail, and is skipped.
        let status = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut length,
            )
        };
        if status == 0 {
            seen += 1;
            assert_ne!(on, 0, "a connection to port {port} without TCP_NODELAY");
        }
    }
    assert!(seen > 0, "no TCP connection to port {port} found ({url})");
}

/// The remote port of a connected IPv4/IPv6 socket, None for anything else.
#[cfg(target_os = "linux")]
fn tcp_peer_port(fd: i32) -> Option<u16> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the pointers point to `address` and `length`, which outlive the call;
    // `length` tells the kernel how much it may write. A bad fd makes the call fail.
    let status = unsafe {
        libc::getpeername(
            fd,
            (&mut address as *mut libc::sockaddr_storage).cast(),
            &mut length,
        )
    };
    if status != 0 {
        return None;
    }
    match i32::from(address.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it can.
            let v4 = unsafe {
                &*(&address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it can.
            let v6 = unsafe {
                &*(&address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}
