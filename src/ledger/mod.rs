//! The ledger: the one PostgreSQL transaction per batch that makes ingestion exactly-once.
//!
//! Contract: [`commit_batch`] writes, in ONE transaction, the compare-and-set of every
//! touched partition's `next_offset` (first, so a zombie is fenced before it writes
//! anything), the new and restated ledger rows with their revisions, one quarantine row
//! and one outbox row per refused record. Either all of it is durable or none of it is.
//! A record PostgreSQL itself rejects is isolated with savepoints (bisecting) and
//! dead-lettered; the rest of the batch commits.

pub mod batch;
pub mod copy;
pub mod db;
pub mod dead_letter;
pub mod error;
pub mod offsets;
pub mod outbox;
pub mod post;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::RoyaltyLine;

pub use batch::{Batch, BatchStats, BatchTarget, CommitOutcome, commit_batch};
pub use dead_letter::DeadLetter;
pub use error::{DbFailure, classify};
pub use offsets::{OffsetAdvance, TopicPartition};

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

/// A validated line and the record that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineToPost {
    /// The line.
    pub line: RoyaltyLine,
    /// Its source record.
    pub source: SourceRecord,
    /// The record's bytes, in case PostgreSQL refuses the line.
    pub record: RecordBytes,
}
