//! Why a line was refused: [`Rejection`] lists every [`Violation`], each naming the
//! canonical field and the rule it breaks, plus a short detail. Details quote offending
//! values escaped and shortened, so a rejection can be logged, put in a Kafka header or
//! stored in a PostgreSQL text column whatever the line contained (even NUL bytes).

use std::fmt;

use serde::Serialize;

/// What [`Rejection::first_rule`] answers for a rejection without violations.
pub const UNSPECIFIED_RULE: &str = "unspecified";

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Canonical field name, e.g. `isrc`.
    pub field: &'static str,
    /// Rule name, e.g. `isrc_format`.
    pub rule: &'static str,
    /// What was found (offending values quoted, escaped and shortened; never holds NUL).
    pub detail: String,
}

/// Why a line was refused: every rule it breaks, in field order (never empty when built
/// by [`validate`](super::validate::validate)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The broken rules.
    pub violations: Vec<Violation>,
}

impl Rejection {
    /// One line for logs and dead-letter headers: `field: rule (detail); ...`.
    pub fn summary(&self) -> String {
        self.to_string()
    }

    /// Rule of the first violation (e.g. as a metrics label or dead-letter reason);
    /// [`UNSPECIFIED_RULE`] for a hand-built rejection without violations.
    pub fn first_rule(&self) -> &'static str {
        self.violations.first().map_or(UNSPECIFIED_RULE, |v| v.rule)
    }

    /// True when some violation has this rule name.
    pub fn has_rule(&self, rule: &str) -> bool {
        self.violations.iter().any(|v| v.rule == rule)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.rule, self.detail)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// How many characters of an offending value a detail quotes.
const QUOTE_CHARS: usize = 40;

/// `got "value"`, escaped (no raw control characters or NUL) and shortened.
pub(super) fn got(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    let more = if chars.next().is_some() { "..." } else { "" };
    format!("got {head:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(field: &'static str, rule: &'static str, detail: &str) -> Violation {
        Violation {
            field,
            rule,
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn summary_lists_every_violation() {
        let r = Rejection {
            violations: vec![
                v("isrc", "isrc_format", &got("XX-1")),
                v("upc", "gs1_check_digit", &got("731453000000")),
            ],
        };
        let expected =
            r#"isrc: isrc_format (got "XX-1"); upc: gs1_check_digit (got "731453000000")"#;
        assert_eq!(r.summary(), expected);
        assert_eq!(r.to_string(), expected);
        assert_eq!(r.first_rule(), "isrc_format");
        assert!(r.has_rule("gs1_check_digit"));
        assert!(!r.has_rule("required"));
        let empty = Rejection { violations: vec![] };
        assert_eq!(empty.first_rule(), UNSPECIFIED_RULE);
    }

    #[test]
    fn quotes_are_escaped_and_shortened() {
        assert_eq!(got("a\0b\n\"c\""), r#"got "a\0b\n\"c\"""#);
        let long = "é".repeat(100);
        let quoted = got(&long);
        assert_eq!(quoted, format!("got {:?}...", "é".repeat(QUOTE_CHARS)));
        assert_eq!(
            got(&"x".repeat(QUOTE_CHARS)),
            format!("got {:?}", "x".repeat(QUOTE_CHARS))
        );
    }

    #[test]
    fn serializes_for_dead_letters() {
        let r = Rejection {
            violations: vec![v("stream_count", "negative_count", "got -1")],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"violations":[{"field":"stream_count","rule":"negative_count","detail":"got -1"}]}"#
        );
    }
}
