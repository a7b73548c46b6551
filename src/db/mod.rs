//! PostgreSQL plumbing below the ledger and the drift tables: connecting, migrations, what
//! a database error means ([`DbFailure`]), and the outbox both write their messages to.

pub mod error;
pub mod outbox;

pub use error::{DbFailure, classify, describe};

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a connection pool to the ledger database.
pub async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .with_context(|| {
            format!(
                "failed to connect to PostgreSQL at {} (is it up? scripts/services up)",
                redact(database_url)
            )
        })
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("failed to apply the ledger migrations")
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
