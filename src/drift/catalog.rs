//! The master catalog's entries: what a label says is true of an ISRC from a business date
//! on, read from a CSV file or a `catalog.updates` record and checked like royalty lines.

use std::io::Read;

use chrono::NaiveDate;

use crate::domain::gtin::validate_gtin;
use crate::domain::isrc::normalize_isrc;
use crate::domain::rules::parse_period;

/// What the catalog says of one ISRC from `valid_from` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Normalised ISRC.
    pub isrc: String,
    /// UPCs/EANs of the releases carrying the track, validated, sorted, distinct.
    pub upcs: Vec<String>,
    /// Track title.
    pub title: Option<String>,
    /// Display artist.
    pub display_artist: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// ISWC of the underlying work.
    pub iswc: Option<String>,
    /// Business date the entry takes effect.
    pub valid_from: NaiveDate,
}

impl CatalogEntry {
    /// This entry with every optional field it does not state (None) taken from `known`,
    /// the version in effect: as in the ledger, an absent value is unknown, never an
    /// erasure. UPCs are always stated (at least one is required).
    pub fn filled_from(&self, known: &CatalogEntry) -> CatalogEntry {
        let keep = |stated: &Option<String>, known: &Option<String>| {
            stated.clone().or_else(|| known.clone())
        };
        CatalogEntry {
            title: keep(&self.title, &known.title),
            display_artist: keep(&self.display_artist, &known.display_artist),
            label: keep(&self.label, &known.label),
            iswc: keep(&self.iswc, &known.iswc),
            ..self.clone()
        }
    }

    /// Whether two entries say the same thing (dates aside).
    pub fn same_content(&self, other: &CatalogEntry) -> bool {
        self.isrc == other.isrc
            && self.upcs == other.upcs
            && self.title == other.title
            && self.display_artist == other.display_artist
            && self.label == other.label
            && self.iswc == other.iswc
    }
}

/// A stored catalog version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogVersion {
    /// Row id (what ledger rows and drift events point to).
    pub version_id: i64,
    /// Content.
    pub entry: CatalogEntry,
    /// End of validity (exclusive), None while current.
    pub valid_to: Option<NaiveDate>,
}

/// The fields of an entry as received, before checking.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct RawCatalogEntry {
    /// ISRC as sent.
    pub isrc: String,
    /// One or more UPCs separated by `|`.
    #[serde(alias = "upcs")]
    pub upc: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Display artist.
    #[serde(default, alias = "artist")]
    pub display_artist: Option<String>,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// ISWC.
    #[serde(default)]
    pub iswc: Option<String>,
    /// ISO date the entry takes effect.
    pub valid_from: String,
}

/// Checks and normalises an entry; the error names the field and the rule.
pub fn check_entry(raw: &RawCatalogEntry) -> Result<CatalogEntry, String> {
    let isrc =
        normalize_isrc(&raw.isrc).map_err(|rule| format!("isrc: {rule} (got {:?})", raw.isrc))?;
    let mut upcs = Vec::new();
    for upc in raw.upc.split('|').map(str::trim).filter(|u| !u.is_empty()) {
        upcs.push(validate_gtin(upc).map_err(|rule| format!("upc: {rule} (got {upc:?})"))?);
    }
    if upcs.is_empty() {
        return Err("upc: required (at least one UPC/EAN)".to_string());
    }
    upcs.sort();
    upcs.dedup();
    let valid_from = parse_period(raw.valid_from.trim())
        .ok_or_else(|| format!("valid_from: iso_date (got {:?})", raw.valid_from))?;
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    for (field, value) in [
        ("title", &raw.title),
        ("display_artist", &raw.display_artist),
        ("label", &raw.label),
        ("iswc", &raw.iswc),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.contains('\0') || v.chars().count() > 512)
        {
            return Err(format!("{field}: text (NUL character or longer than 512)"));
        }
    }
    Ok(CatalogEntry {
        isrc,
        upcs,
        title: text(&raw.title),
        display_artist: text(&raw.display_artist),
        label: text(&raw.label),
        iswc: text(&raw.iswc),
        valid_from,
    })
}

/// A CSV row that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Good rows with their line numbers, and the bad rows.
pub type CsvRows = (Vec<(u64, CatalogEntry)>, Vec<BadRow>);

/// Why a catalog file cannot be read at all (nothing of it is loaded).
#[derive(Debug, thiserror::Error)]
pub enum CatalogFileError {
    /// The header row names unknown columns or lacks required ones.
    #[error("the first line must be the header (columns {COLUMNS_HELP}; any order): {0}")]
    Header(String),
    /// The file is not readable CSV (I/O, encoding).
    #[error("{0}")]
    Csv(csv::Error),
}

/// The columns a catalog file may have: (canonical name, accepted spellings, required).
const CATALOG_COLUMNS: [(&str, &[&str], bool); 7] = [
    ("isrc", &["isrc"], true),
    ("upc", &["upc", "upcs"], true),
    ("title", &["title"], false),
    ("display_artist", &["display_artist", "artist"], false),
    ("label", &["label"], false),
    ("iswc", &["iswc"], false),
    ("valid_from", &["valid_from"], true),
];

/// The header as help text.
const COLUMNS_HELP: &str =
    "isrc, upc, valid_from required; title, display_artist, label, iswc optional";

/// Checks the header row once, up front, and returns it with canonical column names:
/// every unknown, repeated or missing required column is named in the error.
fn check_header(header: &csv::StringRecord) -> Result<csv::StringRecord, CatalogFileError> {
    let mut canonical = csv::StringRecord::new();
    let mut unknown = Vec::new();
    let mut repeated = Vec::new();
    for cell in header {
        let name = cell
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        match CATALOG_COLUMNS
            .iter()
            .find(|(_, spellings, _)| spellings.contains(&name.as_str()))
        {
            Some((column, _, _)) => {
                if canonical.iter().any(|c| c == *column) {
                    repeated.push(*column);
                }
                canonical.push_field(column);
            }
            None => {
                unknown.push(cell.to_string());
                canonical.push_field(cell);
            }
        }
    }
    let missing: Vec<&str> = CATALOG_COLUMNS
        .iter()
        .filter(|(column, _, required)| *required && !canonical.iter().any(|c| c == *column))
        .map(|(column, _, _)| *column)
        .collect();
    let mut problems = Vec::new();
    if !unknown.is_empty() {
        problems.push(format!("unknown column(s) {unknown:?}"));
    }
    if !repeated.is_empty() {
        problems.push(format!("column(s) {repeated:?} given twice"));
    }
    if !missing.is_empty() {
        problems.push(format!("missing required column(s) {missing:?}"));
    }
    if problems.is_empty() {
        Ok(canonical)
    } else {
        Err(CatalogFileError::Header(problems.join("; ")))
    }
}

/// Reads a catalog CSV with a header row (`isrc,upc,title,display_artist,label,iswc,
/// valid_from` in any order; `upc` may hold several codes separated by `|`). The header is
/// checked first: an unknown or missing required column fails the whole file. Good rows
/// are returned with their line numbers; bad rows are reported, never silently dropped. An
/// empty optional cell (or a missing optional column) means "not stated": the value in
/// effect is kept.
pub fn read_csv(mut input: impl Read) -> Result<CsvRows, CatalogFileError> {
    // Line numbers are counted here from byte offsets: the csv crate's own line counter is
    // off after blank lines.
    let mut text = Vec::new();
    input
        .read_to_end(&mut text)
        .map_err(|err| CatalogFileError::Csv(err.into()))?;
    let line_of = |byte: u64| {
        let mut at = (byte as usize).min(text.len());
        while at < text.len() && (text[at] == b'\n' || text[at] == b'\r') {
            at += 1;
        }
        1 + text[..at].iter().filter(|b| **b == b'\n').count() as u64
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_slice());
    let headers = check_header(reader.headers().map_err(CatalogFileError::Csv)?)?;
    let mut good: Vec<(u64, CatalogEntry)> = Vec::new();
    let mut bad = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = line_of(reader.position().byte());
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) if err.is_io_error() => return Err(CatalogFileError::Csv(err)),
            Err(err) => {
                bad.push(BadRow {
                    line: err.position().map_or(line, |p| line_of(p.byte())),
                    reason: format!("unreadable row: {err}"),
                });
                continue;
            }
        }
        // The record's own position: blank lines and quoted line breaks are counted.
        let line = record.position().map_or(line, |p| line_of(p.byte()));
        let checked = record
            .deserialize::<RawCatalogEntry>(Some(&headers))
            .map_err(|err| format!("unreadable row: {err}"))
            .and_then(|raw| check_entry(&raw));
        match checked {
            Ok(entry) => {
                // Two rows for one ISRC and date would supersede each other on every
                // import: the later row wins, the earlier is reported.
                if let Some(at) = good
                    .iter()
                    .position(|(_, e)| e.isrc == entry.isrc && e.valid_from == entry.valid_from)
                {
                    let (earlier, _) = good.remove(at);
                    bad.push(BadRow {
                        line: earlier,
                        reason: format!(
                            "isrc: duplicate (same ISRC and valid_from as line {line}, which is loaded instead)"
                        ),
                    });
                }
                good.push((line, entry));
            }
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    bad.sort_by_key(|b| b.line);
    Ok((good, bad))
}

/// Full name of the catalog update record.
pub const CATALOG_UPDATE: &str = "io.royaltyingest.CatalogUpdate";

/// Decodes a `catalog.updates` record value (Avro single-object, `CatalogUpdate` schema).
/// Returns the entry as received and its `source` field, or the error class and reason.
pub fn decode_update(
    store: &crate::avro::SchemaStore,
    payload: &[u8],
) -> Result<(RawCatalogEntry, Option<String>), (String, String)> {
    use crate::avro::record::{decode_record, text};
    use apache_avro::types::Value;

    let fields = decode_record(store, payload, CATALOG_UPDATE)?;
    let mut raw = RawCatalogEntry::default();
    let mut source = None;
    for (name, value) in fields {
        let text = text(&value);
        match name.as_str() {
            "isrc" => raw.isrc = text.unwrap_or_default(),
            "upcs" => {
                if let Value::Array(items) = value {
                    raw.upc = items
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::String(s) => Some(s),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join("|");
                }
            }
            "title" => raw.title = text,
            "display_artist" => raw.display_artist = text,
            "label" => raw.label = text,
            "iswc" => raw.iswc = text,
            "valid_from" => raw.valid_from = text.unwrap_or_default(),
            // Provenance only: kept, made storable (a NUL would fail the whole batch).
            "source" => source = text.map(|s| crate::db::storable_text(&s).into_owned()),
            _ => {}
        }
    }
    Ok((raw, source))
}

/// Encodes a catalog entry as a `catalog.updates` record value (for producers and tests).
pub fn encode_update(
    schema: &crate::avro::WriterSchema,
    raw: &RawCatalogEntry,
    source: Option<&str>,
) -> Result<Vec<u8>, String> {
    use apache_avro::types::Value;
    let optional = |v: &Option<String>| match v {
        Some(v) => Value::Union(1, Box::new(Value::String(v.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let upcs = raw
        .upc
        .split('|')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| Value::String(u.to_string()))
        .collect();
    let value = Value::Record(vec![
        ("isrc".into(), Value::String(raw.isrc.clone())),
        ("upcs".into(), Value::Array(upcs)),
        ("title".into(), optional(&raw.title)),
        ("display_artist".into(), optional(&raw.display_artist)),
        ("label".into(), optional(&raw.label)),
        ("iswc".into(), optional(&raw.iswc)),
        ("valid_from".into(), Value::String(raw.valid_from.clone())),
        ("source".into(), optional(&source.map(str::to_string))),
    ]);
    crate::avro::encode_record_single_object(schema, value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_checked_and_bad_ones_reported_with_line_numbers() {
        let csv = "isrc,upc,title,display_artist,label,iswc,valid_from\n\
                   us-rc1-76-07839,036000291452|6291041500213,Song,Mira Kade,Harbor,,2026-01-01\n\
                   XX1,036000291452,Bad,Someone,Label,,2026-01-01\n\
                   GBQZA2400001,731453000000,Bad UPC,Someone,Label,,2026-01-01\n\
                   GBQZA2400002,036000291452,Bad date,Someone,Label,,2026-13-01\n";
        let (good, bad) = read_csv(csv.as_bytes()).expect("readable");
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].0, 2);
        assert_eq!(good[0].1.isrc, "USRC17607839");
        assert_eq!(good[0].1.upcs, vec!["036000291452", "6291041500213"]);
        assert_eq!(good[0].1.iswc, None);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(bad[0].reason.starts_with("isrc:"));
        assert!(bad[1].reason.contains("gs1_check_digit"));
        assert!(bad[2].reason.starts_with("valid_from:"));
    }

    #[test]
    fn line_numbers_count_blank_lines_and_duplicates_keep_the_later_row() {
        let csv = "isrc,upc,title,display_artist,label,iswc,valid_from\n\
                   \n\
                   GBQZA2400001,036000291452,\"Two\nlines\",A,L,,2026-01-01\n\
                   XX,036000291452,Bad,A,L,,2026-01-01\n\
                   GBQZA2400001,6291041500213,Later,A,L,,2026-01-01\n";
        let (good, bad) = read_csv(csv.as_bytes()).expect("readable");
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].0, 6);
        assert_eq!(good[0].1.upcs, vec!["6291041500213"]);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5]);
        assert!(bad[0].reason.contains("duplicate"));
        assert!(bad[1].reason.starts_with("isrc:"));
    }

    fn header_error(csv: &str) -> String {
        match read_csv(csv.as_bytes()) {
            Err(CatalogFileError::Header(problem)) => problem,
            other => panic!("expected a header error, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_column_fails_the_file_naming_it() {
        let problem = header_error(
            "isrc,upc,title,performer,label,iswc,valid_from\n\
             USRC17607839,036000291452,Song,Mira Kade,Harbor,,2026-01-01\n",
        );
        assert!(
            problem.contains("unknown column(s) [\"performer\"]"),
            "{problem}"
        );
        assert!(!problem.contains("missing"), "{problem}");
    }

    #[test]
    fn a_file_without_header_or_with_other_names_is_refused_once() {
        let problem = header_error("USRC17607839,036000291452,Song,Mira Kade,Harbor,,2026-01-01\n");
        assert!(
            problem.contains("missing required column(s) [\"isrc\", \"upc\", \"valid_from\"]"),
            "{problem}"
        );
        let problem =
            header_error("code,ean,title,valid_from\nUSRC17607839,036000291452,S,2026-01-01\n");
        assert!(
            problem.contains("unknown column(s) [\"code\", \"ean\"]"),
            "{problem}"
        );
        assert!(
            problem.contains("missing required column(s) [\"isrc\", \"upc\"]"),
            "{problem}"
        );
        let problem = header_error("isrc,upc,artist,display_artist,valid_from\n");
        assert!(problem.contains("given twice"), "{problem}");
    }

    #[test]
    fn the_header_may_be_reordered_capitalised_and_lack_optional_columns() {
        let csv = "\u{feff}Valid_From,ISRC,UPCs\n2026-01-01,USRC17607839,036000291452\n";
        let (good, bad) = read_csv(csv.as_bytes()).expect("readable");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good[0].1.isrc, "USRC17607839");
        assert_eq!(good[0].1.display_artist, None);
    }

    #[test]
    fn an_unstated_optional_field_keeps_the_known_value() {
        let known = CatalogEntry {
            isrc: "USRC17607839".into(),
            upcs: vec!["036000291452".into()],
            title: Some("Song".into()),
            display_artist: Some("Mira Kade".into()),
            label: Some("Harbor".into()),
            iswc: None,
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
        };
        let update = CatalogEntry {
            upcs: vec!["6291041500213".into()],
            display_artist: None,
            label: Some("Other".into()),
            ..known.clone()
        };
        let filled = update.filled_from(&known);
        assert_eq!(filled.display_artist.as_deref(), Some("Mira Kade"));
        assert_eq!(filled.label.as_deref(), Some("Other"));
        assert_eq!(filled.upcs, vec!["6291041500213"]);
    }
}
