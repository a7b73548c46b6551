//! `consumer_offsets`: where each partition resumes, and the compare-and-set that fences
//! zombie writers. A partition's row only ever moves through [`compare_and_set`], inside the
//! batch transaction that wrote the data it covers.

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, PgPool, Row};

use crate::db::DbFailure;
use crate::record::TopicPartition;

/// One partition's move in a batch: from the stored `expected` (None: no row yet) to `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAdvance {
    /// The partition.
    pub partition: TopicPartition,
    /// The `next_offset` this instance believes is stored; None when it believes no row exists.
    pub expected: Option<i64>,
    /// The new `next_offset`: one past the last record handled.
    pub next: i64,
}

/// Reads the stored `next_offset` of the given partitions (absent: no row).
pub async fn load(
    pool: &PgPool,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<HashMap<TopicPartition, i64>, DbFailure> {
    let topics: Vec<&str> = partitions.iter().map(|tp| &*tp.topic).collect();
    let numbers: Vec<i32> = partitions.iter().map(|tp| tp.partition).collect();
    let rows = sqlx::query(
        "SELECT o.topic, o.partition, o.next_offset
           FROM consumer_offsets o
           JOIN unnest($2::text[], $3::int[]) AS i(topic, partition)
             ON o.topic = i.topic AND o.partition = i.partition
          WHERE o.consumer_group = $1",
    )
    .bind(group)
    .bind(&topics)
    .bind(&numbers)
    .fetch_all(pool)
    .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let topic: String = row.try_get("topic")?;
        stored.insert(
            TopicPartition::new(topic, row.try_get("partition")?),
            row.try_get("next_offset")?,
        );
    }
    Ok(stored)
}

/// Moves every partition from its expected offset to its next one, or reports the
/// partitions whose row moved (another instance owns them now). The caller rolls the
/// transaction back when the returned set is not empty.
pub async fn compare_and_set(
    conn: &mut PgConnection,
    group: &str,
    advances: &[OffsetAdvance],
) -> Result<Vec<TopicPartition>, DbFailure> {
    let (known, fresh): (Vec<&OffsetAdvance>, Vec<&OffsetAdvance>) =
        advances.iter().partition(|a| a.expected.is_some());
    let mut advanced: HashSet<(String, i32)> = HashSet::new();

    if !known.is_empty() {
        let topics: Vec<&str> = known.iter().map(|a| &*a.partition.topic).collect();
        let numbers: Vec<i32> = known.iter().map(|a| a.partition.partition).collect();
        let expected: Vec<i64> = known.iter().filter_map(|a| a.expected).collect();
        let next: Vec<i64> = known.iter().map(|a| a.next).collect();
        let rows = sqlx::query(
            "UPDATE consumer_offsets o
                SET next_offset = i.next_offset, updated_at = now()
               FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[])
                    AS i(topic, partition, expected, next_offset)
              WHERE o.consumer_group = $1 AND o.topic = i.topic
                AND o.partition = i.partition AND o.next_offset = i.expected
          RETURNING o.topic, o.partition",
        )
        .bind(group)
        .bind(&topics)
        .bind(&numbers)
        .bind(&expected)
        .bind(&next)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            advanced.insert((row.try_get("topic")?, row.try_get("partition")?));
        }
    }
    if !fresh.is_empty() {
        let topics: Vec<&str> = fresh.iter().map(|a| &*a.partition.topic).collect();
        let numbers: Vec<i32> = fresh.iter().map(|a| a.partition.partition).collect();
        let next: Vec<i64> = fresh.iter().map(|a| a.next).collect();
        let rows = sqlx::query(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
             SELECT $1, i.topic, i.partition, i.next_offset
               FROM unnest($2::text[], $3::int[], $4::bigint[]) AS i(topic, partition, next_offset)
             ON CONFLICT DO NOTHING
          RETURNING topic, partition",
        )
        .bind(group)
        .bind(&topics)
        .bind(&numbers)
        .bind(&next)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            advanced.insert((row.try_get("topic")?, row.try_get("partition")?));
        }
    }
    Ok(advances
        .iter()
        .filter(|a| !advanced.contains(&(a.partition.topic.to_string(), a.partition.partition)))
        .map(|a| a.partition.clone())
        .collect())
}
