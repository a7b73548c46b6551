//! Column-mapping profiles for delimited report files (CSV, TSV, semicolon): a small TOML
//! file that says which column holds what and what to use for what the file lacks.
//! Unknown keys are refused, so a typo fails at start naming the key.
//!
//! How a profile writes money: `decimal_separator` (`"."` or `","`) and `grouping` say how
//! amounts and quantities are read ([`super::amount`]: as written, or refused); the former
//! `decimal_comma = true` still means `decimal_separator = ","`. `return_amounts` says how
//! the file writes the amount of a return: `"negative"` (the default: `-0.99`, `(0.99)`)
//! or `"positive"` (`0.99` on a row typed as a return). A return is booked negative either
//! way, and a return written with the other sign is refused: a positive return booked as
//! it stands would add to earnings. Every profile reads the words of
//! [`DEFAULT_LINE_TYPES`]; its `[line_types]` adds words or overrides them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::amount::{DecimalSeparator, Notation};
use super::text::Encoding;

/// Line-type words every profile reads (case-insensitive), before its own `[line_types]`:
/// the ledger's three types and the common words for a return.
pub const DEFAULT_LINE_TYPES: &[(&str, &str)] = &[
    ("sale", "sale"),
    ("return", "return"),
    ("adjustment", "adjustment"),
    ("refund", "return"),
    ("void", "return"),
    ("chargeback", "return"),
];

/// How a file writes the amount of a return (it is booked negative either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnAmounts {
    /// `-0.99` or `(0.99)`; a row without a line type whose amount or quantity is negative
    /// is a return too.
    #[default]
    Negative,
    /// `0.99` on a row typed as a return (the type column is what says it is one).
    Positive,
}

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
    /// The decimal separator of amounts: `"."` (the default) or `","`.
    #[serde(default)]
    pub decimal_separator: Option<DecimalSeparator>,
    /// Whether digits may be grouped in threes (`1,234.56`; `1.234,56` or `1 234,56`
    /// under a decimal comma). Default true.
    #[serde(default = "yes")]
    pub grouping: bool,
    /// The former spelling of `decimal_separator = ","`, still read; a profile giving both
    /// must give them in agreement.
    #[serde(default)]
    pub decimal_comma: Option<bool>,
    /// How the file writes a return's amount: `"negative"` (default) or `"positive"`.
    #[serde(default)]
    pub return_amounts: ReturnAmounts,
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
    /// Columns whose values name the report when the file has no report id column (for
    /// example store and month): a copy, a rename or a re-save keeps the same report.
    #[serde(default)]
    pub report_key: Vec<String>,
    /// Columns that tell the lines of one report apart when the file has no transaction id
    /// column (for example ISRC, territory, usage type, sale type).
    #[serde(default)]
    pub line_key: Vec<String>,
}

fn auto() -> String {
    "auto".to_string()
}

fn yes() -> bool {
    true
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
    /// The DSP's transaction id (when absent, the profile's `line_key` columns tell lines
    /// apart).
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
    /// When the report was made (RFC 3339 or a date): its version. A later version of
    /// the same report replaces an earlier one.
    pub report_time: Option<String>,
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
        if let (Some(separator), Some(comma)) = (profile.decimal_separator, profile.decimal_comma) {
            anyhow::ensure!(
                comma == (separator == DecimalSeparator::Comma),
                "decimal_comma = {comma} contradicts decimal_separator = {:?}; keep decimal_separator only",
                if separator == DecimalSeparator::Comma {
                    ","
                } else {
                    "."
                }
            );
        }
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

    /// How the file writes amounts and quantities.
    pub fn notation(&self) -> Notation {
        let decimal = match (self.decimal_separator, self.decimal_comma) {
            (Some(separator), _) => separator,
            (None, Some(true)) => DecimalSeparator::Comma,
            (None, _) => DecimalSeparator::Point,
        };
        Notation {
            decimal,
            grouping: self.grouping,
        }
    }

    /// The line type for a cell of the line-type column: the profile's own words, then
    /// [`DEFAULT_LINE_TYPES`], else the cell in lower case (which validation refuses).
    pub fn line_type(&self, raw: &str) -> String {
        let raw = raw.trim();
        self.line_types
            .iter()
            .map(|(word, kind)| (word.as_str(), kind.as_str()))
            .chain(DEFAULT_LINE_TYPES.iter().copied())
            .find(|(word, _)| word.eq_ignore_ascii_case(raw))
            .map_or_else(|| raw.to_lowercase(), |(_, kind)| kind.to_string())
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

    const MINIMAL: &str = "[columns]\nisrc = \"I\"\nquantity = \"Q\"\namount = \"A\"\n\
        [constants]\ncurrency = \"EUR\"\nperiod = \"2026-09\"\ndsp = \"D\"\n";

    fn with(keys: &str) -> anyhow::Result<Profile> {
        Profile::parse(&format!("{keys}\n{MINIMAL}"))
    }

    #[test]
    fn the_notation_comes_from_the_new_keys_or_the_old_one() {
        let notation = |keys: &str| {
            with(keys)
                .map(|p| p.notation())
                .map_err(|e| format!("{e:#}"))
        };
        let point = Notation {
            decimal: DecimalSeparator::Point,
            grouping: true,
        };
        let comma = Notation {
            decimal: DecimalSeparator::Comma,
            ..point
        };
        assert_eq!(notation(""), Ok(point));
        assert_eq!(notation("decimal_separator = \",\""), Ok(comma));
        assert_eq!(notation("decimal_comma = true"), Ok(comma));
        assert_eq!(notation("decimal_comma = false"), Ok(point));
        assert_eq!(
            notation("decimal_separator = \",\"\ndecimal_comma = true"),
            Ok(comma)
        );
        assert_eq!(
            notation("decimal_separator = \".\"\ngrouping = false"),
            Ok(Notation {
                grouping: false,
                ..point
            })
        );
        for contradiction in [
            "decimal_separator = \".\"\ndecimal_comma = true",
            "decimal_separator = \",\"\ndecimal_comma = false",
        ] {
            let err = notation(contradiction).expect_err(contradiction);
            assert!(err.contains("contradicts"), "{err}");
        }
        for bad in [
            "decimal_separator = \";\"",
            "decimal_separator = \"\"",
            "grouping = \"yes\"",
        ] {
            assert!(notation(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn returns_are_written_as_the_profile_says() {
        assert_eq!(
            with("").map(|p| p.return_amounts).ok(),
            Some(ReturnAmounts::Negative)
        );
        assert_eq!(
            with("return_amounts = \"positive\"")
                .map(|p| p.return_amounts)
                .ok(),
            Some(ReturnAmounts::Positive)
        );
        assert!(with("return_amounts = \"signed\"").is_err());
        let cdbaby = Profile::load("cdbaby").expect("cdbaby");
        assert_eq!(cdbaby.return_amounts, ReturnAmounts::Positive);
    }

    #[test]
    fn every_profile_reads_the_shared_words_and_may_override_them() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).expect("built-in");
            for word in ["Refund", "VOID", "chargeback", "Return", "sale"] {
                let kind = p.line_type(word);
                assert!(
                    kind == "return" || kind == "sale" && word == "sale",
                    "{name}: {word} -> {kind}"
                );
            }
        }
        assert_eq!(
            Profile::load("generic").expect("generic").line_type("Fee"),
            "adjustment"
        );
        let p = with("[line_types]\nvoid = \"adjustment\"\nGift = \"sale\"").expect("parses");
        assert_eq!(p.line_type(" Void "), "adjustment");
        assert_eq!(p.line_type("gift"), "sale");
        assert_eq!(p.line_type("Refund"), "return");
        assert_eq!(p.line_type("Bonus"), "bonus");
    }

    #[test]
    fn the_delimiter_is_guessed_from_the_header() {
        let p = Profile::load("generic").expect("generic");
        assert_eq!(p.delimiter_byte(Some(b"isrc;upc;qty")).ok(), Some(b';'));
        assert_eq!(p.delimiter_byte(Some(b"isrc\tupc,x\tq")).ok(), Some(b'\t'));
    }
}
