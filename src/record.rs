//! A Kafka record as the pipeline carries it, below every other module: where it came
//! from ([`SourceRecord`], [`TopicPartition`]) and its bytes ([`RecordBytes`]).

use std::sync::Arc;

#[cfg(test)]
use chrono::TimeZone;
use chrono::{DateTime, Utc};

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// Where a record came from: the coordinates written beside every row it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Topic the record was read from.
    pub topic: Arc<str>,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// When the report was made: the record's [`REPORT_TIME_HEADER`], or without one its
    /// Kafka timestamp; decides which of two versions of a line is newer.
    pub timestamp: DateTime<Utc>,
}

/// A record's headers, in order: name and value (a header may have no value, which is not
/// an empty one).
pub type RecordHeaders = Vec<(String, Option<Vec<u8>>)>;

/// The header carrying the time the report was made (RFC 3339), which versions the line
/// instead of the record timestamp. A producer that puts it there publishes with the
/// current time, so the topic's retention counts from publication: a monthly report is
/// weeks old when it is delivered, and a broker deletes records older than its retention
/// (7 days by default) within minutes, before `run` may have read them.
pub const REPORT_TIME_HEADER: &str = "royalty.report.time";

/// The report time of a record's [`REPORT_TIME_HEADER`]: None without one, the header's
/// text when it is not an RFC 3339 time (the record is refused, never versioned by a guess).
pub fn report_time(headers: &RecordHeaders) -> Option<Result<DateTime<Utc>, String>> {
    let (_, value) = headers.iter().find(|(n, _)| n == REPORT_TIME_HEADER)?;
    let text = String::from_utf8_lossy(value.as_deref().unwrap_or_default());
    Some(
        DateTime::parse_from_rfc3339(text.trim())
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| text.into_owned()),
    )
}

/// The bytes of a source record, kept so a refused record is dead-lettered unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBytes {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Option<Vec<u8>>,
    /// Record headers, in order (a header may have no value, which is not an empty one).
    pub headers: RecordHeaders,
    /// Why the record was not read whole as Kafka delivered it: it is dead-lettered
    /// without the parts left unread.
    pub not_read: Option<NotRead>,
}

/// Why a record was not read whole; each makes it a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRead {
    /// A header name is not UTF-8: the headers are left out.
    HeaderName,
    /// The [`REPORT_TIME_HEADER`] is not a time (its text).
    ReportTime(String),
    /// The record is larger than the configured limit (`--max-record-kib`): its value and
    /// headers are not copied out of the client's buffer, and its key only when short.
    TooLarge {
        /// Bytes of key, value and headers.
        bytes: usize,
        /// The limit it broke, in bytes.
        limit: usize,
        /// SHA-256 of the value, hex, to find the original again.
        value_sha256: String,
    },
}

impl NotRead {
    /// The class of a [`NotRead::TooLarge`] dead letter.
    pub const TOO_LARGE_CLASS: &'static str = "record_too_large";

    /// Machine-readable class of the dead letter.
    pub fn class(&self) -> &'static str {
        match self {
            NotRead::HeaderName | NotRead::ReportTime(_) => "invalid_header",
            NotRead::TooLarge { .. } => Self::TOO_LARGE_CLASS,
        }
    }

    /// Human-readable reason of the dead letter.
    pub fn reason(&self, source: &SourceRecord) -> String {
        match self {
            NotRead::HeaderName => "a header name is not valid UTF-8".to_string(),
            NotRead::ReportTime(text) => format!(
                "the {REPORT_TIME_HEADER} header {text:?} is not an RFC 3339 time (when the \
                 report was made, e.g. 2026-10-01T09:00:00Z): the line's version is not guessed"
            ),
            NotRead::TooLarge {
                bytes,
                limit,
                value_sha256,
            } => format!(
                "the record is {bytes} bytes, above the limit of {limit} (--max-record-kib): \
                 not read, not stored; the original stays at {source} (value SHA-256 \
                 {value_sha256}) while the topic's retention keeps it"
            ),
        }
    }
}

impl RecordBytes {
    /// The value of the first header named `name` that has one.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, v)| n == name && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }
}

impl SourceRecord {
    /// The record's topic-partition.
    pub fn partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

impl std::fmt::Display for SourceRecord {
    /// `topic[partition]@offset`, the spelling of logs, dead-letter headers and drift
    /// sources.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: Option<&str>) -> RecordHeaders {
        vec![
            ("other".into(), Some(b"x".to_vec())),
            (
                REPORT_TIME_HEADER.into(),
                value.map(|v| v.as_bytes().to_vec()),
            ),
        ]
    }

    #[test]
    fn the_report_time_header_is_an_rfc_3339_time_or_a_refusal() {
        assert_eq!(report_time(&Vec::new()), None);
        let at = report_time(&with(Some("2026-10-01T09:30:00.250+02:00")));
        let expected = Utc.with_ymd_and_hms(2026, 10, 1, 7, 30, 0).single();
        let expected = expected.map(|t| t + chrono::Duration::milliseconds(250));
        assert_eq!(at.and_then(Result::ok), expected);
        for bad in ["1759311000000", "2026-10-01", "yesterday", ""] {
            assert_eq!(
                report_time(&with(Some(bad))),
                Some(Err(bad.to_string())),
                "{bad:?} is refused, not guessed"
            );
        }
        assert_eq!(report_time(&with(None)), Some(Err(String::new())));
    }
}
