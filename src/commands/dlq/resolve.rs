//! `dlq resolve ID... --note TEXT`: closes dead letters by hand, for the ones no replay will
//! ever book (a line the DSP withdrew, a `record_too_large` letter, a duplicate a corrected
//! resend made obsolete). The quarantine row keeps who closed it, when and why; nothing is
//! deleted, and the ledger is not touched.

use anyhow::Context;
use clap::Args;

use super::store;
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
    let outcome = store::close_by_hand(&pool, &ids, note, &by).await?;
    let closed: Vec<&str> = outcome.closed.iter().map(String::as_str).collect();
    let already: Vec<&str> = outcome.already.iter().map(String::as_str).collect();
    let unknown: Vec<&str> = outcome.unknown.iter().map(String::as_str).collect();
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
