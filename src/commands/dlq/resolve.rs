//! `dlq resolve ID... --note TEXT`: closes dead letters by hand, for the ones no replay will
//! ever book (a line the DSP withdrew, a `record_too_large` letter, a duplicate a corrected
//! resend made obsolete). The quarantine row keeps who closed it, when and why; nothing is
//! deleted, and the ledger is not touched.

use anyhow::Context;
use clap::Args;

use crate::config::DatabaseArgs;
use crate::db;

/// Settings of `royalty-ingest dlq resolve`.
#[derive(Debug, Clone, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The dead letters' ids (`royalty.dlq.id`, as `dlq list --each` prints them).
    #[arg(required = true)]
    pub ids: Vec<String>,

    /// Why they are closed (required: an auditor reads it).
    #[arg(long, env = "ROYALTY_DLQ_NOTE")]
    pub note: String,

    /// Who closes them (default: the USER of the environment).
    #[arg(long = "by", env = "ROYALTY_DLQ_BY")]
    pub by: Option<String>,
}

/// Closes the open ones among `ids`; fails naming the ids no quarantine row has.
pub async fn resolve(args: &ResolveArgs) -> anyhow::Result<()> {
    let note = args.note.trim();
    anyhow::ensure!(
        !note.is_empty(),
        "--note is empty: say why these dead letters are closed"
    );
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .context("say who closes them: --by NAME (USER is not set)")?;
    let ids: Vec<String> = args.ids.iter().map(|id| id.trim().to_string()).collect();
    let pool = db::connect(&args.database.url()?, 1).await?;
    db::migrate(&pool).await?;
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "WITH wanted AS (SELECT DISTINCT unnest($1::text[]) AS id),
              closed AS (
                UPDATE quarantine q
                   SET resolved_at = now(), resolved_note = $2, resolved_by_user = $3
                  FROM wanted w
                 WHERE q.dead_letter_id = w.id AND q.resolved_at IS NULL
                RETURNING q.dead_letter_id)
         SELECT w.id, EXISTS (SELECT 1 FROM closed c WHERE c.dead_letter_id = w.id)
           FROM wanted w
          WHERE EXISTS (SELECT 1 FROM quarantine q WHERE q.dead_letter_id = w.id)",
    )
    .bind(&ids)
    .bind(note)
    .bind(&by)
    .fetch_all(&pool)
    .await
    .context("cannot close the dead letters in quarantine")?;
    let closed: Vec<&str> = rows
        .iter()
        .filter(|(_, closed)| *closed)
        .map(|(id, _)| id.as_str())
        .collect();
    let already: Vec<&str> = rows
        .iter()
        .filter(|(_, closed)| !*closed)
        .map(|(id, _)| id.as_str())
        .collect();
    let unknown: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !rows.iter().any(|(known, _)| known == id))
        .collect();
    println!("closed {} dead letter(s) by {by}: {note}", closed.len());
    if !already.is_empty() {
        println!(
            "already resolved, left as they were: {}",
            already.join(", ")
        );
    }
    anyhow::ensure!(
        unknown.is_empty(),
        "no dead letter with id {} in quarantine; `royalty-ingest dlq list --each` lists the ids",
        unknown.join(", ")
    );
    Ok(())
}
