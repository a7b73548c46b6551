//! Which partitions this instance owns and, per partition, the offset stored in
//! PostgreSQL (the compare-and-set's expected value) and the next offset it expects to
//! read. Records below that are repeats (after a fence or a re-fetch) and are dropped:
//! the same offset always holds the same record, so nothing is lost by it.

use std::collections::HashMap;

use crate::ledger::OffsetAdvance;
use crate::record::TopicPartition;

use super::source::{Assignment, EndOfPartition, SourceMessage};

#[derive(Debug, Clone, Default)]
struct PartitionState {
    /// `next_offset` in `consumer_offsets` (None: no row yet).
    stored: Option<i64>,
    /// Lowest offset not yet taken into a batch (None: anything, no row and nothing read).
    next: Option<i64>,
    /// The broker said there is nothing more to read right now.
    caught_up: bool,
}

/// Owned partitions and their offsets.
#[derive(Debug, Default)]
pub struct Positions {
    partitions: HashMap<TopicPartition, PartitionState>,
}

impl Positions {
    /// Starts owning a partition whose stored offset is `stored`, read from `start`.
    pub fn assign(&mut self, assignment: &Assignment) {
        self.partitions.insert(
            assignment.partition.clone(),
            PartitionState {
                stored: assignment.stored,
                next: assignment.start,
                caught_up: false,
            },
        );
    }

    /// Stops owning a partition.
    pub fn revoke(&mut self, partition: &TopicPartition) {
        self.partitions.remove(partition);
    }

    /// Whether the partition is owned.
    pub fn owns(&self, partition: &TopicPartition) -> bool {
        self.partitions.contains_key(partition)
    }

    /// Takes a record into the next batch (true) or drops it as a repeat or as belonging to
    /// a partition no longer owned (false).
    pub fn accept(&mut self, message: &SourceMessage) -> bool {
        let tp = TopicPartition::new(message.source.topic.clone(), message.source.partition);
        let Some(state) = self.partitions.get_mut(&tp) else {
            return false;
        };
        if state.next.is_some_and(|next| message.source.offset < next) {
            return false;
        }
        state.next = Some(message.source.offset + 1);
        state.caught_up = false;
        true
    }

    /// Marks partitions whose records up to the broker's high watermark were all taken.
    pub fn caught_up(&mut self, ends: &[EndOfPartition]) {
        for end in ends {
            if let Some(state) = self.partitions.get_mut(&end.partition) {
                state.caught_up = match state.next {
                    Some(next) => next >= end.high,
                    None => end.low >= end.high,
                };
            }
        }
    }

    /// Whether every owned partition is caught up (false when nothing is owned).
    pub fn all_caught_up(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.values().all(|s| s.caught_up)
    }

    /// The offset moves a batch of these records makes: per partition from the stored
    /// offset to one past its last record.
    pub fn advances<'a>(
        &self,
        records: impl Iterator<Item = &'a SourceMessage>,
    ) -> Vec<OffsetAdvance> {
        let mut last: HashMap<TopicPartition, i64> = HashMap::new();
        for message in records {
            let tp = TopicPartition::new(message.source.topic.clone(), message.source.partition);
            let entry = last.entry(tp).or_insert(message.source.offset);
            *entry = (*entry).max(message.source.offset);
        }
        let mut advances: Vec<OffsetAdvance> = last
            .into_iter()
            .map(|(partition, last_offset)| OffsetAdvance {
                expected: self.partitions.get(&partition).and_then(|s| s.stored),
                partition,
                next: last_offset + 1,
            })
            .collect();
        // A stable order: concurrent transactions lock offset rows in the same order and
        // cannot deadlock.
        advances.sort_by(|a, b| a.partition.cmp(&b.partition));
        advances
    }

    /// Records that a batch's offset moves are durable.
    pub fn committed(&mut self, advances: &[OffsetAdvance]) {
        for advance in advances {
            if let Some(state) = self.partitions.get_mut(&advance.partition) {
                state.stored = Some(advance.next);
            }
        }
    }

    /// After a fence: the stored offset another instance wrote. Returns the offset below
    /// which buffered records of this partition are already handled.
    pub fn fenced(&mut self, partition: &TopicPartition, stored: Option<i64>) -> Option<i64> {
        let state = self.partitions.get_mut(partition)?;
        state.stored = stored;
        if let Some(stored) = stored {
            state.next = Some(state.next.map_or(stored, |next| next.max(stored)));
        }
        stored
    }
}
