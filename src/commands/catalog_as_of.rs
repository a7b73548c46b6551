//! `royalty-ingest catalog as-of ISRC --period DATE [--known-at TIME]`: the catalog version
//! that was in effect for a report period as the catalog knew it at a given time (default:
//! now). Answers "what did we believe on the day we paid?" even after backdated updates:
//! versions learned later are left out, and every valid_to is taken as it stood then
//! (from `catalog_version_closures`).

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use clap::builder::BoolishValueParser;
use sqlx::{PgPool, Row};

use crate::config::DatabaseArgs;
use crate::db;
use crate::domain::isrc::normalize_isrc;

/// Settings of `royalty-ingest catalog as-of`.
#[derive(Debug, Clone, Args)]
pub struct AsOfArgs {
    /// The ISRC (any spelling the ledger accepts).
    pub isrc: String,

    /// The business date (report period) the version must cover, YYYY-MM-DD.
    #[arg(long)]
    pub period: NaiveDate,

    /// As the catalog knew it at this time (RFC 3339; default: now).
    #[arg(long, value_parser = crate::commands::parse_utc_time)]
    pub known_at: Option<DateTime<Utc>>,

    /// One JSON object (one line) instead of the table.
    #[arg(long, value_parser = BoolishValueParser::new())]
    pub json: bool,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Prints the version; an ISRC with no version in effect then is an error (exit 1).
pub async fn as_of(args: &AsOfArgs) -> anyhow::Result<()> {
    let isrc = normalize_isrc(&args.isrc)
        .map_err(|rule| anyhow::anyhow!("{:?} is not an ISRC ({rule})", args.isrc))?;
    let known_at = args.known_at.unwrap_or_else(Utc::now);
    let pool = db::connect(&args.database.url()?, 1).await?;
    db::migrate(&pool).await?;
    let Some(out) = version_as_of(&pool, &isrc, args.period, known_at).await? else {
        anyhow::bail!(
            "no catalog version of {isrc} was in effect for {} as known at {}",
            args.period,
            known_at.to_rfc3339()
        );
    };
    if args.json {
        println!("{out}");
    } else {
        print!("{}", table(&out));
    }
    Ok(())
}

/// The catalog version of `isrc` (normalised) in effect for `period` as known at
/// `known_at`, as the JSON object `--json` prints; `None` when none was. The console's
/// track page asks the same.
pub async fn version_as_of(
    pool: &PgPool,
    isrc: &str,
    period: NaiveDate,
    known_at: DateTime<Utc>,
) -> anyhow::Result<Option<serde_json::Value>> {
    // valid_to as known then: after the last closure up to then, else before the first
    // closure, else the current one.
    let row = sqlx::query(
        "SELECT v.version_id, v.upcs, v.title, v.display_artist, v.label, v.iswc,
                v.valid_from, v.source, v.loaded_at,
                CASE WHEN c_then.version_id IS NOT NULL THEN c_then.new_valid_to
                     WHEN c_first.version_id IS NOT NULL THEN c_first.old_valid_to
                     ELSE v.valid_to END AS valid_to_then,
                v.valid_to AS valid_to_now, v.closed_at, v.superseded_by
           FROM catalog_versions v
           LEFT JOIN LATERAL (
                SELECT c.version_id, c.new_valid_to FROM catalog_version_closures c
                 WHERE c.version_id = v.version_id AND c.closed_at <= $3
                 ORDER BY c.closed_at DESC, c.closure_id DESC LIMIT 1) c_then ON true
           LEFT JOIN LATERAL (
                SELECT c.version_id, c.old_valid_to FROM catalog_version_closures c
                 WHERE c.version_id = v.version_id
                 ORDER BY c.closed_at, c.closure_id LIMIT 1) c_first ON true
          WHERE v.isrc = $1 AND v.loaded_at <= $3 AND v.valid_from <= $2",
    )
    .bind(isrc)
    .bind(period)
    .bind(known_at)
    .fetch_all(pool)
    .await
    .context("cannot read catalog_versions")?;
    let mut best: Option<&sqlx::postgres::PgRow> = None;
    for candidate in &row {
        let valid_to: Option<NaiveDate> = candidate.try_get("valid_to_then")?;
        if valid_to.is_some_and(|to| to <= period) {
            continue;
        }
        let from: NaiveDate = candidate.try_get("valid_from")?;
        let id: i64 = candidate.try_get("version_id")?;
        let better = match best {
            None => true,
            Some(b) => {
                let b_from: NaiveDate = b.try_get("valid_from")?;
                let b_id: i64 = b.try_get("version_id")?;
                (from, id) > (b_from, b_id)
            }
        };
        if better {
            best = Some(candidate);
        }
    }
    let Some(v) = best else { return Ok(None) };
    let out = serde_json::json!({
        "isrc": isrc,
        "period": period,
        "known_at": known_at,
        "version_id": v.try_get::<i64, _>("version_id")?,
        "upcs": v.try_get::<Vec<String>, _>("upcs")?,
        "title": v.try_get::<Option<String>, _>("title")?,
        "display_artist": v.try_get::<Option<String>, _>("display_artist")?,
        "label": v.try_get::<Option<String>, _>("label")?,
        "iswc": v.try_get::<Option<String>, _>("iswc")?,
        "valid_from": v.try_get::<NaiveDate, _>("valid_from")?,
        "valid_to_then": v.try_get::<Option<NaiveDate>, _>("valid_to_then")?,
        "valid_to_now": v.try_get::<Option<NaiveDate>, _>("valid_to_now")?,
        "loaded_at": v.try_get::<DateTime<Utc>, _>("loaded_at")?,
        "closed_at": v.try_get::<Option<DateTime<Utc>>, _>("closed_at")?,
        "superseded_by": v.try_get::<Option<i64>, _>("superseded_by")?,
        "source": v.try_get::<String, _>("source")?,
    });
    Ok(Some(out))
}

/// The version as `name  value` lines for a reader; absent values as `-`. Built from the
/// JSON object so both outputs always say the same.
fn table(out: &serde_json::Value) -> String {
    let field = |name: &str| match &out[name] {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let valid_to = |name: &str| match &out[name] {
        serde_json::Value::Null => "open".to_string(),
        _ => field(name),
    };
    let rows = [
        ("isrc", field("isrc")),
        ("period", field("period")),
        ("known at", field("known_at")),
        ("version", field("version_id")),
        ("upcs", field("upcs")),
        ("title", field("title")),
        ("display artist", field("display_artist")),
        ("label", field("label")),
        ("iswc", field("iswc")),
        (
            "valid",
            format!(
                "from {} to {} as known then (to {} now)",
                field("valid_from"),
                valid_to("valid_to_then"),
                valid_to("valid_to_now")
            ),
        ),
        ("loaded at", field("loaded_at")),
        ("closed at", field("closed_at")),
        ("superseded by", field("superseded_by")),
        ("source", field("source")),
    ];
    rows.iter()
        .map(|(name, value)| format!("{name:<15}{value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_each_field_once_with_absent_values_as_a_dash() {
        let out = serde_json::json!({
            "isrc": "GBQZA2400042", "period": "2026-04-01", "known_at": "2026-05-01T00:00:00Z",
            "version_id": 7, "upcs": ["036000291452", "5012345678900"], "title": null,
            "display_artist": "Mira Kade", "label": "Harbor", "iswc": null,
            "valid_from": "2026-03-01", "valid_to_then": null, "valid_to_now": "2026-06-01",
            "loaded_at": "2026-04-02T10:00:00Z", "closed_at": null, "superseded_by": null,
            "source": "import:catalog.csv:2",
        });
        let text = table(&out);
        assert!(
            text.contains("upcs           036000291452 5012345678900\n"),
            "{text}"
        );
        assert!(text.contains("title          -\n"), "{text}");
        assert!(
            text.contains(
                "valid          from 2026-03-01 to open as known then (to 2026-06-01 now)\n"
            ),
            "{text}"
        );
        assert!(!text.contains('{'), "{text}");
    }
}
