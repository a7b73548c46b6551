//! Column-mapping profiles for delimited report files (CSV, TSV, semicolon): a small TOML
//! file that says which column holds what and what to use for what the file lacks.
//! Unknown keys are refused, so a typo fails at start naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::text::Encoding;

/// A profile as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile is for (shown in `produce --help` listings and errors).
    #[serde(default)]
    pub description: String,
    /// One character, or `tab` / `\t`; `auto` guesses from the header line (`,` `;` tab).
    #[serde(default = "auto")]
    pub delimiter: String,
    /// `utf-8` (default; a BOM is dropped) or `latin1`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Amounts written `1.234,56`.
    #[serde(default)]
    pub decimal_comma: bool,
    /// chrono format of the period column when it is not one of the common spellings.
    #[serde(default)]
    pub period_format: Option<String>,
    /// Lines before the header line (banners some exports put on top).
    #[serde(default)]
    pub skip_lines: usize,
    /// Which column holds each field (header names, case-insensitive).
    #[serde(default)]
    pub columns: Columns,
    /// Values for fields the file has no column for.
    #[serde(default)]
    pub constants: Constants,
    /// The file's words for line types (`Void` = `return`, ...), case-insensitive.
    #[serde(default)]
    pub line_types: BTreeMap<String, String>,
}

fn auto() -> String {
    "auto".to_string()
}

/// Column names in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// ISRC (required).
    pub isrc: Option<String>,
    /// UPC / EAN / ICPN (optional: ISRC-only lines are real).
    pub upc: Option<String>,
    /// Quantity: streams, units, plays (required).
    pub quantity: Option<String>,
    /// Amount (required).
    pub amount: Option<String>,
    /// ISO 4217 currency (column or constant).
    pub currency: Option<String>,
    /// Report period (column or constant).
    pub period: Option<String>,
    /// The DSP's transaction id (derived when absent: report id or file hash + line).
    pub transaction_id: Option<String>,
    /// The DSP / store (column or constant).
    pub dsp: Option<String>,
    /// Territory.
    pub territory: Option<String>,
    /// Usage type (stream, download, ...).
    pub usage_type: Option<String>,
    /// Line type (sale / return / adjustment, or the file's words via `line_types`).
    pub line_type: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Display artist.
    pub artist: Option<String>,
    /// The DSP's report / statement id.
    pub report_id: Option<String>,
}

/// Constant values for what the file lacks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constants {
    /// Currency of every line.
    pub currency: Option<String>,
    /// Report period of every line.
    pub period: Option<String>,
    /// DSP of every line.
    pub dsp: Option<String>,
    /// Territory of every line.
    pub territory: Option<String>,
    /// Usage type of every line.
    pub usage_type: Option<String>,
    /// Line type of every line.
    pub line_type: Option<String>,
    /// Label of every line.
    pub label: Option<String>,
    /// Report id of every line.
    pub report_id: Option<String>,
}

/// The profiles shipped with the binary, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("generic", include_str!("../../profiles/generic.toml")),
    ("distrokid", include_str!("../../profiles/distrokid.toml")),
    ("cdbaby", include_str!("../../profiles/cdbaby.toml")),
    ("believe-eu", include_str!("../../profiles/believe-eu.toml")),
];

impl Profile {
    /// A built-in profile by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Profile> {
        if let Some((_, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
            return Profile::parse(text)
                .with_context(|| format!("built-in profile {name_or_path}"));
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).with_context(|| {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            format!(
                "--profile {name_or_path:?} is neither a built-in profile ({}) nor a readable file",
                names.join(", ")
            )
        })?;
        Profile::parse(&text).with_context(|| format!("profile {}", path.display()))
    }

    /// Parses and checks a profile.
    pub fn parse(text: &str) -> anyhow::Result<Profile> {
        let profile: Profile = toml::from_str(text).context("not a valid profile")?;
        let need = |field: &str, column: &Option<String>, constant: Option<&Option<String>>| {
            let has_constant = constant.is_some_and(Option::is_some);
            anyhow::ensure!(
                column.is_some() || has_constant,
                "the profile maps no column to {field}{}",
                if constant.is_some() {
                    " and sets no constant for it"
                } else {
                    ""
                }
            );
            Ok(())
        };
        let (c, k) = (&profile.columns, &profile.constants);
        need("isrc", &c.isrc, None)?;
        need("quantity", &c.quantity, None)?;
        need("amount", &c.amount, None)?;
        need("currency", &c.currency, Some(&k.currency))?;
        need("period", &c.period, Some(&k.period))?;
        need("dsp", &c.dsp, Some(&k.dsp))?;
        profile.delimiter_byte(None)?;
        for (word, kind) in &profile.line_types {
            anyhow::ensure!(
                matches!(kind.as_str(), "sale" | "return" | "adjustment"),
                "line_types: {word:?} = {kind:?}; the line types are sale, return and adjustment"
            );
        }
        Ok(profile)
    }

    /// The delimiter; `auto` picks the most frequent of tab, `;` and `,` in `header`.
    pub fn delimiter_byte(&self, header: Option<&[u8]>) -> anyhow::Result<u8> {
        match self.delimiter.as_str() {
            "auto" => Ok(header
                .map(|h| {
                    [b'\t', b';', b',']
                        .into_iter()
                        .max_by_key(|d| h.iter().filter(|b| *b == d).count())
                        .unwrap_or(b',')
                })
                .unwrap_or(b',')),
            "tab" | "\\t" | "\t" => Ok(b'\t'),
            one if one.len() == 1 => Ok(one.as_bytes()[0]),
            other => anyhow::bail!("delimiter {other:?}: one character, `tab` or `auto`"),
        }
    }

    /// The line type for a cell of the line-type column.
    pub fn line_type(&self, raw: &str) -> String {
        let raw = raw.trim();
        self.line_types
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(raw))
            .map(|(_, kind)| kind.clone())
            .unwrap_or_else(|| raw.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_loads() {
        for (name, _) in BUILTIN {
            Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn a_typo_or_a_missing_field_is_named() {
        let err = Profile::parse("[columns]\nisrc = \"ISRC\"\nqantity = \"Units\"\n")
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("qantity"), "{err:#}");
        let err =
            Profile::parse("[columns]\nisrc = \"ISRC\"\nquantity = \"Units\"\namount = \"A\"\n")
                .map(|_| ())
                .unwrap_err();
        assert!(format!("{err:#}").contains("currency"), "{err:#}");
    }

    #[test]
    fn the_delimiter_is_guessed_from_the_header() {
        let p = Profile::load("generic").expect("generic");
        assert_eq!(p.delimiter_byte(Some(b"isrc;upc;qty")).ok(), Some(b';'));
        assert_eq!(p.delimiter_byte(Some(b"isrc\tupc,x\tq")).ok(), Some(b'\t'));
    }
}
