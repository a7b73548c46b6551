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

/// The bytes of a source record, kept so a refused record is dead-lettered unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBytes {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Option<Vec<u8>>,
    /// Record headers, in order (a header may have no value, which is not an empty one).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Why the record could not be read as Kafka delivered it (a header name that is not
    /// UTF-8): it is dead-lettered without its headers.
    pub unreadable: Option<String>,
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
