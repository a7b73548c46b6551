//! Writing to `outbox` inside the batch transaction: what the relay will publish once the
//! transaction commits (dead letters, drift alerts). The stable `message_id` absorbs a
//! second enqueue of the same message while it waits; the relay deletes a row once the
//! broker has its message, so callers enqueue only what they have not raised before (a
//! dead letter whose quarantine row is new, a drift alert never raised).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::copy::{CopyRows, copy_unless_taken};
use super::error::DbFailure;

/// A message to publish after commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Stable id, also sent as a header so subscribers can drop repeats.
    pub message_id: String,
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub payload: Option<Vec<u8>>,
    /// Record headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Record timestamp (a dead letter is stamped with the refusal time, so the DLQ topic's
    /// retention counts from then; its original timestamp travels in a header).
    pub timestamp: Option<DateTime<Utc>>,
}

/// Enqueues messages (one `COPY` for all of them). Returns the ids of those it added: a
/// message already in the outbox (enqueued by an earlier batch, or by a concurrent lane
/// whose transaction committed first) is left as it is and not returned, so callers count
/// what they raised, not what they tried to.
pub async fn enqueue(
    conn: &mut PgConnection,
    messages: &[OutboxMessage],
) -> Result<HashSet<String>, DbFailure> {
    if messages.is_empty() {
        return Ok(HashSet::new());
    }
    let mut rows = CopyRows::new(7);
    for m in messages {
        rows.row()
            .text(&m.message_id)
            .text(&m.topic)
            .opt_bytes(m.key.as_deref())
            .opt_bytes(m.payload.as_deref())
            .text_array(m.headers.iter().map(|(name, _)| name.as_str()))
            .bytea_array(m.headers.iter().map(|(_, value)| value.as_deref()))
            .opt_timestamptz(m.timestamp);
    }
    if copy_unless_taken(conn, COPY_SQL, rows).await? {
        return Ok(messages.iter().map(|m| m.message_id.clone()).collect());
    }
    insert_new(conn, messages).await
}

const COPY_SQL: &str = "COPY outbox (message_id, topic, message_key, payload, header_names,
                                      header_values, message_timestamp)
                        FROM STDIN (FORMAT binary)";

/// The same messages as one `INSERT … ON CONFLICT DO NOTHING`, for when some are in the
/// outbox already.
async fn insert_new(
    conn: &mut PgConnection,
    messages: &[OutboxMessage],
) -> Result<HashSet<String>, DbFailure> {
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    let keys: Vec<Option<&[u8]>> = messages.iter().map(|m| m.key.as_deref()).collect();
    let payloads: Vec<Option<&[u8]>> = messages.iter().map(|m| m.payload.as_deref()).collect();
    let headers: Vec<serde_json::Value> =
        messages.iter().map(|m| headers_json(&m.headers)).collect();
    let timestamps: Vec<Option<DateTime<Utc>>> = messages.iter().map(|m| m.timestamp).collect();
    let added: Vec<String> = sqlx::query_scalar(
        "INSERT INTO outbox (message_id, topic, message_key, payload, header_names,
                             header_values, message_timestamp)
         SELECT i.id, i.topic, i.k, i.v,
                ARRAY(SELECT h->>0 FROM jsonb_array_elements(i.headers) WITH ORDINALITY e(h, n) ORDER BY n),
                ARRAY(SELECT decode(h->>1, 'hex') FROM jsonb_array_elements(i.headers) WITH ORDINALITY e(h, n) ORDER BY n),
                i.ts
           FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::jsonb[], $6::timestamptz[])
                AS i(id, topic, k, v, headers, ts)
         ON CONFLICT (message_id) DO NOTHING
         RETURNING message_id",
    )
    .bind(&ids)
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .bind(&timestamps)
    .fetch_all(&mut *conn)
    .await?;
    Ok(added.into_iter().collect())
}

/// Headers as a JSON array of `[name, hex(value) or null]` pairs (PostgreSQL has no ragged
/// arrays).
pub fn headers_json(headers: &[(String, Option<Vec<u8>>)]) -> serde_json::Value {
    serde_json::Value::Array(
        headers
            .iter()
            .map(|(name, value)| serde_json::json!([name, value.as_ref().map(hex::encode)]))
            .collect(),
    )
}
