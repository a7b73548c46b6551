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

    /// How many partitions are owned.
    pub fn owned(&self) -> usize {
        self.partitions.len()
    }

    /// Records not yet ingested per owned partition whose high watermark is known: the
    /// high watermark minus the stored next offset (or the next one to read, with no row).
    pub fn lag<'a>(
        &'a self,
        highs: &'a HashMap<TopicPartition, i64>,
    ) -> impl Iterator<Item = (&'a TopicPartition, i64)> + 'a {
        self.partitions.iter().filter_map(|(tp, state)| {
            let high = *highs.get(tp)?;
            let done = state.stored.or(state.next).unwrap_or(high);
            Some((tp, (high - done).max(0)))
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SourceRecord;
    use chrono::Utc;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("raw", partition)
    }

    fn record(partition: i32, offset: i64) -> SourceMessage {
        SourceMessage {
            source: SourceRecord {
                topic: "raw".into(),
                partition,
                offset,
                timestamp: Utc::now(),
            },
            record: Default::default(),
            held: None,
        }
    }

    fn owning(partition: i32, stored: Option<i64>) -> Positions {
        let mut positions = Positions::default();
        positions.assign(&Assignment {
            partition: tp(partition),
            stored,
            start: stored,
        });
        positions
    }

    #[test]
    fn records_below_the_next_offset_or_of_unowned_partitions_are_dropped() {
        let mut positions = owning(0, Some(5));
        assert!(!positions.accept(&record(0, 4)), "already handled");
        assert!(positions.accept(&record(0, 5)));
        assert!(!positions.accept(&record(0, 5)), "a repeat");
        assert!(
            positions.accept(&record(0, 7)),
            "a gap (compaction) is fine"
        );
        assert!(!positions.accept(&record(1, 0)), "not owned");
    }

    #[test]
    fn a_batch_advances_each_partition_from_its_stored_offset_in_a_stable_order() {
        let mut positions = owning(1, Some(10));
        positions.assign(&Assignment {
            partition: tp(0),
            stored: None,
            start: None,
        });
        let batch = [record(1, 10), record(0, 0), record(1, 11), record(0, 1)];
        let advances = positions.advances(batch.iter());
        assert_eq!(
            advances,
            vec![
                OffsetAdvance {
                    partition: tp(0),
                    expected: None,
                    next: 2
                },
                OffsetAdvance {
                    partition: tp(1),
                    expected: Some(10),
                    next: 12
                },
            ]
        );
        positions.committed(&advances);
        let next = positions.advances([record(1, 12)].iter());
        assert_eq!(next[0].expected, Some(12));
    }

    #[test]
    fn after_a_fence_records_below_the_other_instances_offset_are_handled() {
        let mut positions = owning(0, Some(0));
        assert!(positions.accept(&record(0, 0)));
        assert_eq!(positions.fenced(&tp(0), Some(40)), Some(40));
        assert!(!positions.accept(&record(0, 39)));
        assert!(positions.accept(&record(0, 40)));
        assert_eq!(
            positions.advances([record(0, 40)].iter())[0].expected,
            Some(40)
        );
    }

    #[test]
    fn caught_up_means_every_owned_partition_read_to_its_high_watermark() {
        let mut positions = owning(0, Some(3));
        assert!(!positions.all_caught_up());
        positions.caught_up(&[EndOfPartition {
            partition: tp(0),
            low: 0,
            high: 5,
        }]);
        assert!(!positions.all_caught_up(), "offsets 3 and 4 not read yet");
        assert!(positions.accept(&record(0, 3)));
        assert!(positions.accept(&record(0, 4)));
        positions.caught_up(&[EndOfPartition {
            partition: tp(0),
            low: 0,
            high: 5,
        }]);
        assert!(positions.all_caught_up());
        assert!(positions.accept(&record(0, 5)));
        assert!(!positions.all_caught_up(), "a new record resets it");
        assert!(
            !Positions::default().all_caught_up(),
            "nothing owned is not caught up"
        );
    }
}
