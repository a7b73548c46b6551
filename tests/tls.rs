//! TLS end to end: `run` talks to a broker over SSL (a CA made with the JDK's keytool) and
//! over SASL_SSL with SCRAM-SHA-512, and to a PostgreSQL server that accepts TLS only, with
//! `sslmode=verify-full` against a test CA. The ledger stays exact; a wrong trust anchor or a
//! wrong password is refused with a reason, and no secret reaches the logs.
//!
//! `scripts/services tls-up DIR` makes the certificates in this test's temporary directory
//! and starts the TLS broker and PostgreSQL cluster; they are stopped when the test ends.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::pipeline::{
    expected_totals, ledger_totals, mixed_stream, publish_records, royalty_ingest,
    royalty_ingest_with_env,
};

/// The TLS services of one test run; stopped on drop, whatever the test's outcome.
struct TlsServices {
    /// Holds the certificates and the broker's data until the test ends.
    _dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl TlsServices {
    fn up() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services"))
            .args(["tls-up", &dir.path().to_string_lossy()])
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/services tls-up");
        let services = Self {
            env: String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        assert!(output.status.success(), "scripts/services tls-up failed");
        services
    }

    fn get(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("tls-up printed no {name}"))
    }
}

impl Drop for TlsServices {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services"))
            .arg("tls-down")
            .stdout(Stdio::null())
            .status();
    }
}

/// The topics of the test, made on the TLS broker.
struct Topics {
    raw: String,
    dlq: String,
    alerts: String,
}

/// `run`'s flags for the test's topics on the TLS broker at `brokers`, until idle.
fn run_flags<'a>(topics: &'a Topics, group: &'a str, brokers: &'a str) -> Vec<&'a str> {
    let mut flags = vec![
        "run",
        "--brokers",
        brokers,
        "--alerts-topic",
        &topics.alerts,
    ];
    flags.extend(common::pipeline::run_flags(&topics.raw, &topics.dlq, group));
    flags.extend(["--exit-when-idle-ms", "1500"]);
    flags
}

#[tokio::test]
async fn run_over_tls_to_kafka_and_postgres_with_verification() {
    let tls = TlsServices::up();
    let plaintext = tls.get("TLS_KAFKA_PLAINTEXT").to_string();
    let kafka_ca = tls.get("TLS_KAFKA_CA").to_string();
    let other_ca = tls.get("TLS_OTHER_CA").to_string();
    let pg_ca = tls.get("TLS_PG_CA").to_string();

    // The PostgreSQL cluster refuses anything but TLS: the gate the test relies on.
    let plain_pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}?sslmode=disable", tls.get("TLS_PG_URL")))
        .await;
    assert!(plain_pg.is_err(), "a plaintext connection must be refused");
    let admin = format!(
        "{}?sslmode=verify-full&sslrootcert={pg_ca}",
        tls.get("TLS_PG_URL")
    );
    let (database_url, pool) = common::fresh_database_on(&admin).await;
    assert!(
        database_url.contains("sslmode=verify-full"),
        "{database_url}"
    );
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("pg_stat_ssl");
    assert!(encrypted);

    // Setup goes through the broker's plaintext listener; `run` never does.
    let topics = Topics {
        raw: common::fresh_topic_on(&plaintext, "it.tls.raw", 2).await,
        dlq: common::fresh_topic_on(&plaintext, "it.tls.dlq", 1).await,
        alerts: common::fresh_topic_on(&plaintext, "it.tls.alerts", 1).await,
    };
    let (records, lines) = mixed_stream(211, 400, 40, 5);
    publish_records(&common::producer_on(&plaintext), &topics.raw, &records).await;

    // SSL with the broker's CA, verify-full to PostgreSQL: everything booked exactly once.
    let ssl = tls.get("TLS_KAFKA_SSL").to_string();
    let ca_property = format!("ssl.ca.location={kafka_ca}");
    let mut args = run_flags(&topics, "it-tls-ssl", &ssl);
    args.extend([
        "--kafka-property",
        "security.protocol=SSL",
        "--kafka-property",
        &ca_property,
    ]);
    let output = royalty_ingest(&args, &database_url).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "run over SSL failed: {stderr}");
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    assert_eq!(
        common::topic_size_on(&plaintext, &topics.dlq),
        5,
        "the dead letters went out over SSL"
    );

    // SASL_SSL with SCRAM-SHA-512, the password in the environment: a second group reads
    // the same topic into the same ledger and changes nothing (every line already booked).
    let sasl = tls.get("TLS_KAFKA_SASL_SSL").to_string();
    let password = tls.get("TLS_SCRAM_PASSWORD").to_string();
    let scram = |password: &str| {
        format!(
            "security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512,sasl.username={},\
             sasl.password={password},ssl.ca.location={kafka_ca}",
            tls.get("TLS_SCRAM_USER")
        )
    };
    let group_offsets = |group: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_offsets \
                 WHERE consumer_group = $1",
            )
            .bind(group)
            .fetch_one(&pool)
            .await
            .expect("offsets")
        }
    };
    let output = royalty_ingest_with_env(
        &run_flags(&topics, "it-tls-sasl", &sasl),
        &database_url,
        &[("KAFKA_PROPERTIES", &scram(&password))],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "run over SASL_SSL failed: {stderr}"
    );
    assert!(!stderr.contains(&password), "the SCRAM password leaked");
    assert_eq!(
        group_offsets("it-tls-sasl").await,
        records.len() as i64,
        "the SASL_SSL run consumed every record"
    );
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));

    // Refusals, each with its reason and a non-zero exit; nothing is consumed.
    let wrong_password = "not-the-scram-password";
    let output = royalty_ingest_with_env(
        &run_flags(&topics, "it-tls-badpw", &sasl),
        &database_url,
        &[("KAFKA_PROPERTIES", &scram(wrong_password))],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a wrong SCRAM password must fail");
    assert!(
        stderr.to_lowercase().contains("authentication"),
        "the reason names authentication: {stderr}"
    );
    assert!(!stderr.contains(wrong_password), "the password leaked");
    assert_eq!(group_offsets("it-tls-badpw").await, 0);

    let other_ca_property = format!("ssl.ca.location={other_ca}");
    let mut args = run_flags(&topics, "it-tls-badca", &ssl);
    args.extend([
        "--kafka-property",
        "security.protocol=SSL",
        "--kafka-property",
        &other_ca_property,
    ]);
    let output = royalty_ingest(&args, &database_url).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "an untrusted broker must fail");
    assert!(
        stderr.contains("certificate verify failed"),
        "the reason names the certificate: {stderr}"
    );
    assert_eq!(group_offsets("it-tls-badca").await, 0);

    let untrusted_pg = database_url.replace(&pg_ca, &other_ca);
    assert_ne!(untrusted_pg, database_url);
    let mut args = run_flags(&topics, "it-tls-badpg", &ssl);
    args.extend([
        "--kafka-property",
        "security.protocol=SSL",
        "--kafka-property",
        &ca_property,
    ]);
    let output = royalty_ingest(&args, &untrusted_pg).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "an untrusted PostgreSQL must fail"
    );
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "the reason names the certificate: {stderr}"
    );
    assert!(!stderr.contains("royalty:royalty@"), "the password leaked");
    assert_eq!(group_offsets("it-tls-badpg").await, 0);
    assert_eq!(ledger_totals(&pool).await, expected_totals(&lines));
    pool.close().await;
}
