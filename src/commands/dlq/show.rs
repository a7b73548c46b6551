//! `dlq show ID`: everything about one dead letter — why, where from, the original
//! record (payload decoded when its writer schema is known), its quarantine row and the
//! replays that sent it back.

use clap::Args;
use clap::builder::BoolishValueParser;

use super::letter::{Place, payload_json, printable};
use super::{DlqSource, Filters, select, store};

/// Settings of `royalty-ingest dlq show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub source: DlqSource,

    /// The dead letter's id (`royalty.dlq.id`, as `dlq list --each` prints it).
    pub id: String,

    /// One JSON object instead of readable text.
    #[arg(long, env = "ROYALTY_DLQ_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
}

/// Prints one dead letter; an unknown id is an error.
pub async fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let id = args.id.trim().to_string();
    let selected = select(
        &args.source,
        &Filters::default(),
        std::slice::from_ref(&id),
        true,
    )
    .await?;
    let Some(letter) = selected.letters.first() else {
        anyhow::bail!(
            "no dead letter {id:?} on {} or in quarantine; `royalty-ingest dlq list --each` lists the ids",
            args.source.dlq_topic
        );
    };
    let quarantine = store::quarantine_row(&selected.pool, &letter.id).await?;
    let replays = store::replays_of(&selected.pool, &letter.id).await?;
    let payload = match letter.value.as_deref() {
        Some(bytes) => match payload_json(&selected.decoder, bytes).await {
            Ok(json) => serde_json::json!({ "decoded": json }),
            Err(why) => serde_json::json!({ "hex": hex::encode(bytes), "not_decoded": why }),
        },
        None => serde_json::Value::Null,
    };
    let headers: Vec<serde_json::Value> = letter
        .original_headers
        .iter()
        .map(|(name, value)| serde_json::json!([name, value.as_deref().map(printable)]))
        .collect();

    if args.json {
        let mut out = serde_json::to_value(letter)?;
        if let Some(object) = out.as_object_mut() {
            object.insert("key".into(), letter.key.as_deref().map(printable).into());
            object.insert("headers".into(), headers.into());
            object.insert("payload".into(), payload);
            object.insert("quarantine".into(), quarantine.unwrap_or_default());
            object.insert("replays".into(), replays.into());
        }
        println!("{out}");
        return Ok(());
    }

    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("dead letter   {}", letter.id);
    let status = selected.status(&letter.id);
    match (&status.resolved_by, &status.superseded_by) {
        (Some(by), _) if status.is_resolved() => {
            println!("status        {} ({by})", status.word())
        }
        (_, Some(by)) => println!("status        {} ({by})", status.word()),
        _ => println!("status        {}", status.word()),
    }
    let place = match &letter.place {
        Place::Topic { partition, offset } => {
            format!("{}[{partition}]@{offset}", args.source.dlq_topic)
        }
        Place::Unpublished { error } => format!(
            "NOT on {} (the broker refused it: {}); quarantine holds it",
            args.source.dlq_topic,
            error.as_deref().unwrap_or("no error recorded yet")
        ),
        Place::Expired => format!(
            "no longer on {} (retention); quarantine holds it",
            args.source.dlq_topic
        ),
    };
    println!("copy          {place}");
    println!("stage/class   {} / {}", letter.stage, letter.class);
    println!("reason        {}", letter.reason);
    println!("source        {}", letter.source());
    println!(
        "timestamp     {} (the record's own; a replay restores it)",
        or_dash(letter.original_timestamp.map(|t| t.to_rfc3339()))
    );
    println!(
        "refused at    {}",
        or_dash(letter.refused_at.map(|t| t.to_rfc3339()))
    );
    println!("group         {}", or_dash(letter.group.clone()));
    println!("schema        {}", or_dash(letter.schema.clone()));
    if let Some(of) = &letter.replay_of {
        println!("replay of     {of}");
    }
    println!(
        "key           {}",
        or_dash(letter.key.as_deref().map(printable))
    );
    println!("headers       {}", serde_json::Value::from(headers));
    match &payload {
        serde_json::Value::Null => println!("payload       none"),
        other => println!("payload       {}", serde_json::to_string_pretty(other)?),
    }
    match quarantine {
        Some(row) => println!("quarantine    {}", serde_json::to_string_pretty(&row)?),
        None => println!("quarantine    no row in this database"),
    }
    if replays.is_empty() {
        println!("replays       none");
    }
    for replay in &replays {
        println!("replayed      {replay}");
    }
    Ok(())
}
