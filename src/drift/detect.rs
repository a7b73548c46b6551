//! Drift detection, pure: a royalty line compared with the catalog version current at its
//! report period, and a catalog update compared with the version it replaces.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::domain::RoyaltyLine;

use super::catalog::{CatalogEntry, CatalogVersion};

/// What disagrees with the master catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftKind {
    /// The line's UPC is not among the catalog's UPCs for its ISRC.
    UpcMismatch,
    /// The line's label differs from the catalog's.
    LabelMismatch,
    /// The line's artist differs from the catalog's display artist.
    ArtistMismatch,
    /// The catalog has no entry for the line's ISRC (only once a catalog is loaded).
    UnknownIsrc,
    /// A catalog update changed an ISRC's UPCs.
    CatalogUpcChanged,
    /// A catalog update changed an ISRC's label.
    CatalogLabelChanged,
    /// A catalog update changed an ISRC's display artist.
    CatalogArtistChanged,
}

impl DriftKind {
    /// The stable name used in tables, headers and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::UpcMismatch => "upc_mismatch",
            DriftKind::LabelMismatch => "label_mismatch",
            DriftKind::ArtistMismatch => "artist_mismatch",
            DriftKind::UnknownIsrc => "unknown_isrc",
            DriftKind::CatalogUpcChanged => "catalog_upc_changed",
            DriftKind::CatalogLabelChanged => "catalog_label_changed",
            DriftKind::CatalogArtistChanged => "catalog_artist_changed",
        }
    }

    /// Position in [`ALL_KINDS`] (for per-kind counts).
    pub fn index(self) -> usize {
        ALL_KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<DriftKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == name)
    }
}

/// Every kind, for help texts and parsing.
pub const ALL_KINDS: [DriftKind; 7] = [
    DriftKind::UpcMismatch,
    DriftKind::LabelMismatch,
    DriftKind::ArtistMismatch,
    DriftKind::UnknownIsrc,
    DriftKind::CatalogUpcChanged,
    DriftKind::CatalogLabelChanged,
    DriftKind::CatalogArtistChanged,
];

/// The id of an unknown track's drift, before its ISRC (migration
/// `20261210000001_unknown_track_ids` gave the rows recorded before it these ids).
pub const UNKNOWN_TRACK_ID: &str = "drift-unknown-isrc-";

/// One observation of drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The track.
    pub isrc: String,
    /// What disagrees.
    pub kind: DriftKind,
    /// What the catalog says (None for an unknown ISRC).
    pub expected: Option<String>,
    /// What the line or update says.
    pub received: Option<String>,
    /// The catalog version compared against.
    pub catalog_version_id: Option<i64>,
    /// DSP of the line (`catalog` for catalog updates).
    pub dsp_name: String,
    /// Report the line came from.
    pub report_id: Option<String>,
    /// Report period of the line (valid-from date of a catalog update).
    pub period: Option<NaiveDate>,
    /// Transaction id of the line.
    pub transaction_id: Option<String>,
    /// Where it was seen: `topic[partition]@offset` or `file:line`.
    pub source: String,
    /// The stable id, computed once when the drift is detected ([`Drift::id`]).
    id: String,
}

impl Drift {
    /// The stable id of the distinct drift (ISRC, kind, expected, received, catalog
    /// version): every line showing the same disagreement maps to one alert. Computed once,
    /// at detection: a batch compares and counts its drift by id, and a SHA-256 per
    /// comparison once made that quadratic in the batch.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This drift with its id computed from the fields that identify it: the first 16 bytes
    /// of the SHA-256 of `drift1|isrc|kind|expected|received|catalog version`, in hex;
    /// for an ISRC unknown to the catalog, which its ISRC alone identifies,
    /// [`UNKNOWN_TRACK_ID`] and the ISRC. Those ids keep a track's `drift_events` rows in
    /// ISRC order: a label's unknown tracks are mostly its own releases, close together in
    /// ISRC order (one registrant, one year), so a batch of them touches a few pages of the
    /// primary key instead of one random page per track (BENCHMARKS.md, "Session 13").
    fn identified(mut self) -> Drift {
        if self.kind == DriftKind::UnknownIsrc {
            self.id = format!("{UNKNOWN_TRACK_ID}{}", self.isrc);
            return self;
        }
        let version = self.catalog_version_id.map(|v| v.to_string());
        let parts = [
            "drift1",
            &self.isrc,
            self.kind.as_str(),
            self.expected.as_deref().unwrap_or(""),
            self.received.as_deref().unwrap_or(""),
            version.as_deref().unwrap_or(""),
        ];
        let mut hasher = Sha256::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                hasher.update(b"|");
            }
            hasher.update(part.as_bytes());
        }
        self.id = format!("drift-{}", hex::encode(&hasher.finalize()[..16]));
        self
    }
}

/// Whether two GTINs name the same product (compared as 14 digits, zero-padded).
fn same_gtin(a: &str, b: &str) -> bool {
    a.trim_start_matches('0') == b.trim_start_matches('0')
}

/// Text compared the way a person would: case and runs of whitespace do not matter.
fn same_text(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

/// Compares a posted line with the catalog version current at its period. `catalog_loaded`
/// says whether any catalog exists at all (before that, every ISRC would be "unknown").
/// `source` is written out only for a drift found: most lines show none.
pub fn detect_line<S: std::fmt::Display + ?Sized>(
    line: &RoyaltyLine,
    version: Option<&CatalogVersion>,
    catalog_loaded: bool,
    alert_unknown_isrc: bool,
    source: &S,
) -> Vec<Drift> {
    let drift = |kind, expected: Option<String>, received: Option<String>| {
        Drift {
            isrc: line.isrc.clone(),
            kind,
            expected,
            received,
            catalog_version_id: version.map(|v| v.version_id),
            dsp_name: line.dsp_name.clone(),
            report_id: line.report_id.clone(),
            period: Some(line.report_period),
            transaction_id: Some(line.transaction_id.clone()),
            source: source.to_string(),
            id: String::new(),
        }
        .identified()
    };
    let Some(version) = version else {
        return if catalog_loaded && alert_unknown_isrc {
            vec![drift(DriftKind::UnknownIsrc, None, None)]
        } else {
            Vec::new()
        };
    };
    let mut found = Vec::new();
    let entry = &version.entry;
    // The same product may be written with or without leading zeros (UPC-A vs EAN-13).
    // A line without a UPC says nothing about the release: unknown, not a mismatch.
    if let Some(upc) = &line.upc
        && !entry.upcs.iter().any(|u| same_gtin(u, upc))
    {
        found.push(drift(
            DriftKind::UpcMismatch,
            Some(entry.upcs.join("|")),
            Some(upc.clone()),
        ));
    }
    if let (Some(expected), Some(received)) = (&entry.label, &line.label)
        && !same_text(expected, received)
    {
        found.push(drift(
            DriftKind::LabelMismatch,
            Some(expected.clone()),
            Some(received.clone()),
        ));
    }
    if let (Some(expected), Some(received)) = (&entry.display_artist, &line.artist)
        && !same_text(expected, received)
    {
        found.push(drift(
            DriftKind::ArtistMismatch,
            Some(expected.clone()),
            Some(received.clone()),
        ));
    }
    found
}

/// Compares a catalog update with the version it supersedes: a changed UPC set, label or
/// display artist is itself drift (royalties already paid were attributed to the old one).
pub fn detect_update(old: &CatalogVersion, new: &CatalogEntry, source: &str) -> Vec<Drift> {
    let drift = |kind, expected: String, received: String| {
        Drift {
            isrc: new.isrc.clone(),
            kind,
            expected: Some(expected),
            received: Some(received),
            catalog_version_id: Some(old.version_id),
            dsp_name: "catalog".to_string(),
            report_id: None,
            period: Some(new.valid_from),
            transaction_id: None,
            source: source.to_string(),
            id: String::new(),
        }
        .identified()
    };
    let mut found = Vec::new();
    if old.entry.upcs != new.upcs {
        found.push(drift(
            DriftKind::CatalogUpcChanged,
            old.entry.upcs.join("|"),
            new.upcs.join("|"),
        ));
    }
    let changed = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => !same_text(a, b),
        (None, None) => false,
        _ => true,
    };
    if changed(&old.entry.label, &new.label) {
        found.push(drift(
            DriftKind::CatalogLabelChanged,
            old.entry.label.clone().unwrap_or_default(),
            new.label.clone().unwrap_or_default(),
        ));
    }
    if changed(&old.entry.display_artist, &new.display_artist) {
        found.push(drift(
            DriftKind::CatalogArtistChanged,
            old.entry.display_artist.clone().unwrap_or_default(),
            new.display_artist.clone().unwrap_or_default(),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate::validate;
    use crate::sample::{SampleRng, valid_line};
    use chrono::NaiveDate;

    fn line() -> RoyaltyLine {
        let mut line = validate(&valid_line(&mut SampleRng::new(9), 1)).expect("valid line");
        line.upc = Some("036000291452".into());
        line.label = Some("Harbor Records".into());
        line.artist = Some("Mira Kade".into());
        line
    }

    fn version(upcs: &[&str], label: &str, artist: &str) -> CatalogVersion {
        CatalogVersion {
            version_id: 7,
            entry: CatalogEntry {
                isrc: line().isrc,
                upcs: upcs.iter().map(|u| u.to_string()).collect(),
                title: None,
                display_artist: Some(artist.into()),
                label: Some(label.into()),
                iswc: None,
                valid_from: NaiveDate::from_ymd_opt(2020, 1, 1).expect("date"),
            },
            valid_to: None,
        }
    }

    fn kinds(found: &[Drift]) -> Vec<DriftKind> {
        found.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn a_line_matching_its_catalog_version_shows_no_drift_whatever_the_spelling() {
        // The same GTIN with a leading zero, the same names in other case and spacing.
        let catalog = version(&["0036000291452"], "harbor  RECORDS", "mira kade");
        assert!(detect_line(&line(), Some(&catalog), true, true, "raw[0]@1").is_empty());
    }

    #[test]
    fn each_differing_field_is_its_own_drift_naming_both_values() {
        let catalog = version(&["6291041500213"], "Quiet Current", "Someone Else");
        let found = detect_line(&line(), Some(&catalog), true, true, "raw[0]@1");
        assert_eq!(
            kinds(&found),
            vec![
                DriftKind::UpcMismatch,
                DriftKind::LabelMismatch,
                DriftKind::ArtistMismatch
            ]
        );
        assert_eq!(found[0].expected.as_deref(), Some("6291041500213"));
        assert_eq!(found[0].received.as_deref(), Some("036000291452"));
        assert_eq!(found[0].catalog_version_id, Some(7));
    }

    #[test]
    fn a_field_the_line_does_not_carry_is_not_compared() {
        let mut bare = line();
        bare.upc = None;
        bare.label = None;
        bare.artist = None;
        let catalog = version(&["036000291452"], "Other", "Other");
        assert!(detect_line(&bare, Some(&catalog), true, true, "raw[0]@1").is_empty());
    }

    #[test]
    fn an_unknown_isrc_is_drift_only_once_a_catalog_exists_and_alerts_are_wanted() {
        assert_eq!(
            kinds(&detect_line(&line(), None, true, true, "raw[0]@1")),
            vec![DriftKind::UnknownIsrc]
        );
        assert!(detect_line(&line(), None, false, true, "raw[0]@1").is_empty());
        assert!(detect_line(&line(), None, true, false, "raw[0]@1").is_empty());
    }

    #[test]
    fn the_same_drift_has_the_same_id_wherever_it_is_seen() {
        let catalog = version(&["6291041500213"], "Harbor Records", "Mira Kade");
        let a = detect_line(&line(), Some(&catalog), true, true, "raw[0]@1");
        let mut elsewhere = line();
        elsewhere.dsp_name = "Apple Music".into();
        let b = detect_line(&elsewhere, Some(&catalog), true, true, "raw[3]@99");
        assert_eq!(a[0].id(), b[0].id());
    }

    #[test]
    fn a_drift_id_is_what_it_always_was() {
        // Stored in drift_events: a new spelling of the id would raise every drift again
        // (the rows of unknown tracks recorded before their ids changed were migrated).
        let found = detect_line(&line(), None, true, true, "raw[0]@1");
        assert_eq!(found[0].isrc, "GBQZA2400018");
        assert_eq!(found[0].id(), "drift-unknown-isrc-GBQZA2400018");
        // sha256("drift1|GBQZA2400018|upc_mismatch|6291041500213|036000291452|7"), its
        // first 16 bytes in hex.
        let catalog = version(&["6291041500213"], "Harbor Records", "Mira Kade");
        let mut other = line();
        other.upc = Some("036000291452".into());
        let found = detect_line(&other, Some(&catalog), true, true, "raw[0]@1");
        assert_eq!(found[0].kind, DriftKind::UpcMismatch);
        assert_eq!(found[0].id(), "drift-d014c0352c989ca5834e09c65e5db569");
    }

    #[test]
    fn a_catalog_update_reports_what_it_changes() {
        let old = version(&["036000291452"], "Harbor Records", "Mira Kade");
        let mut new = old.entry.clone();
        new.upcs = vec!["6291041500213".into()];
        new.label = Some("HARBOR records".into());
        let found = detect_update(&old, &new, "import:catalog.csv:2");
        assert_eq!(kinds(&found), vec![DriftKind::CatalogUpcChanged]);
        new.display_artist = None;
        let found = detect_update(&old, &new, "import:catalog.csv:2");
        assert_eq!(
            kinds(&found),
            vec![
                DriftKind::CatalogUpcChanged,
                DriftKind::CatalogArtistChanged
            ]
        );
    }
}
