//! The record of every action taken through the console: who, when, what, on which
//! objects, the note, and how it ended. Written after the action, by the same request.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Records one action.
pub async fn record(
    pool: &PgPool,
    user: &str,
    action: &str,
    subjects: &[String],
    note: Option<&str>,
    outcome: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO console_audit (user_name, action, subjects, note, outcome)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user)
    .bind(action)
    .bind(subjects)
    .bind(note)
    .bind(outcome)
    .execute(pool)
    .await
    .context("cannot record the action in console_audit")?;
    Ok(())
}

/// One recorded action.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub user_name: String,
    /// What (`replay`, `resolve`, `acknowledge`).
    pub action: String,
    /// On what (dead-letter or drift ids).
    pub subjects: Vec<String>,
    /// Why.
    pub note: Option<String>,
    /// How it ended.
    pub outcome: String,
}

/// The actions on `subject`, newest first.
pub async fn about(pool: &PgPool, subject: &str) -> anyhow::Result<Vec<Entry>> {
    sqlx::query_as(
        "SELECT at, user_name, action, subjects, note, outcome FROM console_audit
          WHERE $1 = ANY(subjects) ORDER BY at DESC, audit_id DESC LIMIT 50",
    )
    .bind(subject)
    .fetch_all(pool)
    .await
    .context("cannot read console_audit")
}

/// The latest actions, newest first.
pub async fn latest(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<Entry>> {
    sqlx::query_as(
        "SELECT at, user_name, action, subjects, note, outcome FROM console_audit
          ORDER BY at DESC, audit_id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("cannot read console_audit")
}
