//! A Kafka record as the pipeline carries it, below every other module: where it came
//! from ([`SourceRecord`], [`TopicPartition`]) and its bytes ([`RecordBytes`]).

use std::sync::Arc;

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
    /// The Kafka record timestamp; decides which of two versions of a line is newer.
    pub timestamp: DateTime<Utc>,
}

/// A record's headers, in order: name and value (a header may have no value, which is not
/// an empty one).
pub type RecordHeaders = Vec<(String, Option<Vec<u8>>)>;

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
            NotRead::HeaderName => "invalid_header",
            NotRead::TooLarge { .. } => Self::TOO_LARGE_CLASS,
        }
    }

    /// Human-readable reason of the dead letter.
    pub fn reason(&self, source: &SourceRecord) -> String {
        match self {
            NotRead::HeaderName => "a header name is not valid UTF-8".to_string(),
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
