//! PostgreSQL plumbing below the ledger and the drift tables: connecting, migrations, what
//! a database error means ([`DbFailure`]), and the outbox both write their messages to.

pub mod copy;
pub mod error;
pub mod outbox;

pub use error::{DbFailure, classify, describe};

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a connection pool to the ledger database. sqlx (0.9.1 and later) sets
/// `TCP_NODELAY` on each of its TCP connections, which over TLS doubled ingestion
/// (BENCHMARKS.md): Nagle's algorithm otherwise holds back the records of a message.
///
/// Sequential scans are priced out (`enable_seqscan = off`, a planner cost, not a ban):
/// every statement of the pipeline reads by key, and on a ledger that is new or grew fast
/// since the last autoanalyze (which runs at most once a minute), the planner believed the
/// table tiny and scanned it whole for each batch's key lookup: 173 scans reading 55 M rows
/// while ingesting 1 M records, lookups of 5,000 keys taking up to 18 s (BENCHMARKS.md).
pub async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(database_url)
        .with_context(|| format!("invalid database URL {}", redact(database_url)))?
        .options([("enable_seqscan", "off")]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| {
            format!(
                "failed to connect to PostgreSQL at {} (is it up? scripts/services up)",
                redact(database_url)
            )
        })
}

/// Applies every pending migration. When all are applied already it only reads which
/// are, so a least-privilege role (no DDL, see deploy/postgres/runtime-role.sql) can start;
/// a pending migration then needs the owner.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Result<Vec<(i64, Vec<u8>)>, _> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await;
    if let Ok(applied) = applied {
        let all_applied = MIGRATOR.iter().all(|m| {
            applied
                .iter()
                .any(|(version, checksum)| *version == m.version && *checksum == *m.checksum)
        });
        if all_applied {
            return Ok(());
        }
    }
    MIGRATOR.run(pool).await.context(
        "failed to apply the ledger migrations (a role without DDL rights cannot: run \
         `royalty-ingest migrate --database-url <the owner's URL>` first)",
    )
}

/// Says which booked lines kept an identity rule that the report-identity migration could
/// not map onto the current one (`legacy_line_identities`), and why; nothing when none.
pub async fn print_legacy_identities(pool: &PgPool) -> anyhow::Result<()> {
    let rows: Vec<(
        String,
        chrono::NaiveDate,
        String,
        i64,
        rust_decimal::Decimal,
        String,
    )> = sqlx::query_as(
        "SELECT dsp_name, report_period, report_id, lines, amount, why
               FROM legacy_line_identities ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .context("cannot read legacy_line_identities")?;
    if rows.is_empty() {
        return Ok(());
    }
    println!(
        "{} report(s) keep lines booked under an earlier identity rule; they were left as \
         booked (nothing moved). Re-publishing one of these reports books it under the new \
         identity, and `reconcile` then flags the pair as a probable double booking:",
        rows.len()
    );
    for (dsp, period, report, lines, amount, why) in rows {
        println!(
            "  {dsp} {period} report {report}: {lines} line(s), amount {}: {why}",
            amount.normalize()
        );
    }
    Ok(())
}

/// Text PostgreSQL can store: a NUL (which `text` cannot hold, and which would make it
/// refuse the whole batch) becomes U+FFFD. For free text from outside that is kept as
/// provenance (a sender's `source`, a refusal reason), never for values the rules check.
pub fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A database URL with its password replaced, safe to print.
pub fn redact(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => database_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_text_replaces_only_nul() {
        assert_eq!(storable_text("label\0ops"), "label\u{fffd}ops");
        assert!(matches!(
            storable_text("plain é"),
            std::borrow::Cow::Borrowed("plain é")
        ));
    }
}
