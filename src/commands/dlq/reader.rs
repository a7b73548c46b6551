//! Reads the dead-letter topic from its beginning to its end as of the start, without a
//! consumer group position (nothing is committed: this is a report, not a subscriber).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::letter::{Letter, Place};
use crate::config::KafkaArgs;
use crate::kafka::{BROKER_PROBE_TIMEOUT, client_config, topic_partitions};

/// How long the reader waits for the next record of a partition it knows is not done.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A reader positioned at the start of every non-empty partition of the topic.
pub struct TopicReader {
    consumer: StreamConsumer,
    topic: String,
    /// Partition → offset one past the last record present when the read started.
    ends: HashMap<i32, i64>,
    /// Records read so far (records of other tools, without an id, included).
    pub records_read: u64,
    /// Records on the topic when the read started.
    pub records_total: u64,
}

impl TopicReader {
    /// Opens the topic; it must exist.
    pub async fn open(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<TopicReader> {
        let mut config = client_config(kafka);
        config
            .set(
                "group.id",
                format!("royalty-dlq-reader-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer = config
            .create()
            .context("failed to create the dead-letter reader")?;
        let partitions = tokio::task::block_in_place(|| {
            topic_partitions(&consumer, topic, BROKER_PROBE_TIMEOUT)
        })?
        .with_context(|| {
            format!("the dead-letter topic {topic} does not exist (nothing was refused yet, or check --dlq-topic)")
        })?;
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        let mut records_total = 0;
        for partition in partitions {
            let (low, high) = tokio::task::block_in_place(|| {
                consumer.fetch_watermarks(topic, partition, BROKER_PROBE_TIMEOUT)
            })
            .with_context(|| format!("cannot read the end offsets of {topic}[{partition}]"))?;
            if high > low {
                assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
                ends.insert(partition, high);
                records_total += (high - low) as u64;
            }
        }
        if assignment.count() > 0 {
            consumer.assign(&assignment)?;
        }
        Ok(TopicReader {
            consumer,
            topic: topic.to_string(),
            ends,
            records_read: 0,
            records_total,
        })
    }

    /// The next dead letter, `None` once every partition is read to its starting end.
    /// Records without a `royalty.dlq.id` are skipped.
    pub async fn next(&mut self) -> anyhow::Result<Option<Letter>> {
        while !self.ends.is_empty() {
            let message = tokio::time::timeout(STALL_TIMEOUT, self.consumer.recv())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no record of {} arrived for {} s although partitions {:?} are not read to their end; is the broker up?",
                        self.topic,
                        STALL_TIMEOUT.as_secs(),
                        self.ends.keys().collect::<Vec<_>>()
                    )
                })?
                .with_context(|| format!("cannot read {}", self.topic))?;
            let partition = message.partition();
            let offset = message.offset();
            let Some(&end) = self.ends.get(&partition) else {
                continue;
            };
            if offset + 1 >= end {
                self.ends.remove(&partition);
            }
            if offset >= end {
                continue;
            }
            self.records_read += 1;
            let headers = message
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            let letter = Letter::from_topic_record(
                message.key().map(<[u8]>::to_vec),
                message.payload().map(<[u8]>::to_vec),
                headers,
                Place::Topic { partition, offset },
            );
            if letter.is_some() {
                return Ok(letter);
            }
        }
        Ok(None)
    }
}
