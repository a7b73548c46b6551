//! The ledger: the PostgreSQL transaction that makes ingestion exactly-once — one per lane
//! of a batch (`run` splits a batch by partition into up to `--lanes` of them; a
//! partition's records are always in one).
//!
//! Contract: [`commit_batch`] writes, in ONE transaction, the compare-and-set of every
//! touched partition's `next_offset` (first, so a zombie is fenced before it writes
//! anything), the new and restated ledger rows with their revisions, one quarantine row
//! and one outbox row per refused record. Either all of it is durable or none of it is.
//! A line, catalog entry or report summary PostgreSQL itself rejects is isolated with
//! savepoints (bisecting, [`isolate`]) and dead-lettered; a dead letter it rejects is
//! stored without its bytes; the rest of the batch commits.

pub mod batch;
pub mod columns;
pub mod dead_letter;
pub mod isolate;
pub mod offsets;
pub mod post;

use crate::domain::{LineKey, RoyaltyLine};
use chrono::NaiveDate;
use std::sync::Arc;

use crate::record::{RecordBytes, SourceRecord};

pub use batch::{
    Batch, BatchStats, BatchTarget, CommitOutcome, Sourced, commit_batch, touched_reports,
};
pub use dead_letter::DeadLetter;
pub use offsets::OffsetAdvance;

/// A validated line and the record that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineToPost {
    /// The line.
    pub line: RoyaltyLine,
    /// Its source record.
    pub source: SourceRecord,
    /// The record's bytes, in case PostgreSQL refuses the line.
    pub record: Arc<RecordBytes>,
}

/// Lines by the ledger's primary key (period, key) as the two arrays a statement binds to
/// `unnest($n::date[], $m::bytea[])`.
pub(crate) fn primary_key_arrays(lines: &[(NaiveDate, LineKey)]) -> (Vec<NaiveDate>, Vec<&[u8]>) {
    lines
        .iter()
        .map(|(period, key)| (*period, &key.0[..]))
        .unzip()
}
