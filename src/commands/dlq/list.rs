//! `dlq list`: what was refused, why, and what is still open, grouped by stage, class,
//! source topic and day of refusal (or one row per dead letter with `--each`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use clap::Args;
use clap::builder::BoolishValueParser;
use serde::Serialize;

use super::letter::Place;
use super::{DlqSource, Filters, select};

/// Settings of `royalty-ingest dlq list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: DlqSource,

    #[command(flatten)]
    pub filters: Filters,

    /// One row per dead letter (id, time, class, source, status, reason) instead of groups.
    #[arg(long, env = "ROYALTY_DLQ_EACH", value_parser = BoolishValueParser::new())]
    pub each: bool,

    /// JSON for machines: one object with the groups (or, with --each, the dead letters).
    #[arg(long, env = "ROYALTY_DLQ_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
}

/// One line of the summary.
#[derive(Debug, Default, Serialize)]
struct Group {
    day: String,
    stage: String,
    class: String,
    source_topic: String,
    count: u64,
    open: u64,
    resolved: u64,
    replayed: u64,
    superseded: u64,
    unpublished: u64,
    first_refused_at: Option<DateTime<Utc>>,
    last_refused_at: Option<DateTime<Utc>>,
}

/// Prints the summary (or the dead letters) of the selection.
pub async fn list(args: &ListArgs) -> anyhow::Result<()> {
    let selected = select(&args.source, &args.filters, &[], false).await?;
    if args.each {
        let rows: Vec<serde_json::Value> = selected
            .letters
            .iter()
            .map(|letter| {
                let mut row = serde_json::to_value(letter).unwrap_or_default();
                if let Some(object) = row.as_object_mut() {
                    let status = selected.status(&letter.id);
                    object.insert("status".into(), status.word().into());
                    object.insert("replays".into(), status.replays.into());
                    object.insert("resolved_by".into(), status.resolved_by.into());
                    object.insert("superseded_by".into(), status.superseded_by.into());
                }
                row
            })
            .collect();
        if args.json {
            let out = serde_json::json!({
                "dlq_topic": args.source.dlq_topic,
                "count": rows.len(),
                "letters": rows,
            });
            println!("{out}");
            return Ok(());
        }
        println!(
            "{:<35}  {:<20}  {:<24}  {:<30}  {:<8}  REASON",
            "ID", "REFUSED (UTC)", "CLASS", "SOURCE", "STATUS"
        );
        for letter in &selected.letters {
            let status = selected.status(&letter.id);
            let mut word = status.word().to_string();
            if let Place::Unpublished { .. } = letter.place {
                word.push_str(",unpublished");
            }
            let reason = match &letter.replay_of {
                Some(of) => format!("[replay of {of}] {}", letter.reason),
                None => letter.reason.clone(),
            };
            println!(
                "{:<35}  {:<20}  {:<24}  {:<30}  {:<8}  {}",
                letter.id,
                letter
                    .refused_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                letter.class,
                letter.source(),
                word,
                reason
            );
        }
        println!("{} dead letter(s)", selected.letters.len());
        return Ok(());
    }

    let mut groups: BTreeMap<(String, String, String, String), Group> = BTreeMap::new();
    for letter in &selected.letters {
        let day = letter
            .refused_at
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "unknown".into());
        let topic = letter.source_topic.clone().unwrap_or_default();
        let group = groups
            .entry((
                day.clone(),
                letter.stage.clone(),
                letter.class.clone(),
                topic.clone(),
            ))
            .or_insert_with(|| Group {
                day,
                stage: letter.stage.clone(),
                class: letter.class.clone(),
                source_topic: topic,
                ..Group::default()
            });
        let status = selected.status(&letter.id);
        group.count += 1;
        group.open += u64::from(status.is_open());
        group.resolved += u64::from(status.is_resolved());
        group.replayed += u64::from(status.replays > 0);
        group.superseded += u64::from(status.superseded_by.is_some());
        group.unpublished += u64::from(matches!(letter.place, Place::Unpublished { .. }));
        if let Some(at) = letter.refused_at {
            group.first_refused_at = Some(group.first_refused_at.map_or(at, |f| f.min(at)));
            group.last_refused_at = Some(group.last_refused_at.map_or(at, |l| l.max(at)));
        }
    }
    let groups: Vec<Group> = groups.into_values().collect();
    let total: u64 = groups.iter().map(|g| g.count).sum();
    let open: u64 = groups.iter().map(|g| g.open).sum();
    if args.json {
        let out = serde_json::json!({
            "dlq_topic": args.source.dlq_topic,
            "total": total,
            "open": open,
            "groups": groups,
        });
        println!("{out}");
        return Ok(());
    }
    if groups.is_empty() {
        println!("no dead letters match");
        return Ok(());
    }
    println!(
        "{:<10}  {:<8}  {:<24}  {:<24}  {:>7}  {:>7}  {:>8}  {:>11}  {:<8}  {:<8}",
        "DAY",
        "STAGE",
        "CLASS",
        "SOURCE TOPIC",
        "COUNT",
        "OPEN",
        "REPLAYED",
        "UNPUBLISHED",
        "FIRST",
        "LAST"
    );
    for g in &groups {
        let time = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default()
        };
        println!(
            "{:<10}  {:<8}  {:<24}  {:<24}  {:>7}  {:>7}  {:>8}  {:>11}  {:<8}  {:<8}",
            g.day,
            g.stage,
            g.class,
            g.source_topic,
            g.count,
            g.open,
            g.replayed,
            g.unpublished,
            time(g.first_refused_at),
            time(g.last_refused_at)
        );
    }
    println!("{total} dead letter(s), {open} open (times UTC; `dlq list --each` shows ids)");
    Ok(())
}
