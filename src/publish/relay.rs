//! The outbox relay: publishes rows of `outbox` (dead letters, drift alerts) with an
//! idempotent producer and stamps them published. Rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so several instances can relay side by side. A crash between
//! the send and the stamp repeats a publication (subscribers drop it by its stable id
//! header); nothing is ever lost.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaArgs;
use crate::kafka::{Client, idempotent_producer_config, refuse_unsafe_properties};
use crate::observe::Metrics;
use crate::retry::Backoff;

/// Most rows published per claim.
const CLAIM_SIZE: i64 = 500;
/// Most bytes of keys and payloads loaded per claim (the first row is always taken).
const CLAIM_BYTES: i64 = 16 * 1024 * 1024;
/// How often the relay looks for rows when nobody woke it (other instances' rows).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often the backlog gauges are refreshed.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(1);

/// The relay's producer and database.
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
}

impl Relay {
    /// An idempotent producer (`acks=all`) over the given database.
    pub fn new(kafka: &KafkaArgs, pool: PgPool, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        refuse_unsafe_properties(kafka, &[Client::Producer])?;
        let producer = idempotent_producer_config(kafka)
            .create()
            .context("failed to create the outbox producer")?;
        Ok(Self {
            pool,
            producer,
            metrics,
        })
    }

    /// Publishes until `shutdown`, woken by `wake` after commits that wrote outbox rows.
    pub async fn run(&self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        let mut measured: Option<std::time::Instant> = None;
        loop {
            if measured.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
                measured = Some(std::time::Instant::now());
                self.measure_backlog().await;
            }
            match self.publish_claim().await {
                Ok(0) => {
                    backoff.reset();
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Ok(_) => backoff.reset(),
                Err(err) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %format!("{err:#}"), retry_in = ?wait, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Publishes everything pending now (used before a batch job exits).
    pub async fn drain(&self) -> anyhow::Result<u64> {
        self.drain_claims(None).await
    }

    /// Publishes only the given messages (by `message_id`), e.g. the alerts one catalog
    /// import raised; other pending rows are left to `run`.
    pub async fn drain_messages(&self, message_ids: &[String]) -> anyhow::Result<u64> {
        if message_ids.is_empty() {
            return Ok(0);
        }
        self.drain_claims(Some(message_ids)).await
    }

    /// Counts the unpublished rows and the age of the oldest into the metrics (a failure
    /// leaves the last figures: the relay's own errors say why).
    async fn measure_backlog(&self) {
        let backlog: Result<(i64, f64), _> = sqlx::query_as(
            "SELECT count(*),
                    coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
               FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await;
        if let Ok((count, age)) = backlog {
            self.metrics
                .record_outbox_backlog(count, Duration::from_secs_f64(age.max(0.0)));
        }
    }

    /// How many outbox rows are still unpublished.
    pub async fn unpublished(&self) -> anyhow::Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .context("outbox: cannot count unpublished rows")
    }

    async fn drain_claims(&self, only: Option<&[String]>) -> anyhow::Result<u64> {
        let mut total = 0;
        // A claim with a failed message ends the drain with its error; the row keeps it in
        // `last_error` and `attempts` orders it behind the others next time.
        loop {
            let n = self.claim_and_publish(only).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Claims up to [`CLAIM_SIZE`] unpublished rows, publishes them and marks them, in one
    /// transaction. Returns how many were published.
    pub async fn publish_claim(&self) -> anyhow::Result<u64> {
        self.claim_and_publish(None).await
    }

    async fn claim_and_publish(&self, only: Option<&[String]>) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await.context("outbox: cannot begin")?;
        // Claim by id and size first, then load only as many rows as fit CLAIM_BYTES (at
        // least one): a claim of 500 near-1 MB dead letters must not sit in memory at once.
        // The rows claimed but not loaded stay locked until this transaction ends and are
        // taken by the next claim.
        let claimed: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT outbox_id,
                    (coalesce(octet_length(payload), 0)
                     + coalesce(octet_length(message_key), 0))::bigint
               FROM outbox WHERE published_at IS NULL
                AND ($2::text[] IS NULL OR message_id = ANY($2))
              ORDER BY attempts, outbox_id LIMIT $1
                FOR UPDATE SKIP LOCKED",
        )
        .bind(CLAIM_SIZE)
        .bind(only)
        .fetch_all(&mut *tx)
        .await
        .context("outbox: cannot claim rows")?;
        let mut budget = CLAIM_BYTES;
        let ids: Vec<i64> = claimed
            .iter()
            .enumerate()
            .take_while(|(i, (_, size))| {
                let fits = *i == 0 || *size <= budget;
                budget = budget.saturating_sub(*size);
                fits
            })
            .map(|(_, (id, _))| *id)
            .collect();
        let rows = sqlx::query(
            "SELECT outbox_id, message_id, topic, message_key, payload, header_names,
                    header_values, message_timestamp
               FROM outbox WHERE outbox_id = ANY($1) ORDER BY attempts, outbox_id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .context("outbox: cannot read the claimed rows")?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            messages.push(OutboxMessage {
                id: row.try_get("outbox_id")?,
                message_id: row.try_get("message_id")?,
                topic: row.try_get("topic")?,
                key: row.try_get("message_key")?,
                payload: row.try_get("payload")?,
                header_names: row.try_get("header_names")?,
                header_values: row.try_get("header_values")?,
                timestamp: row.try_get("message_timestamp")?,
            });
        }
        let sends = messages.iter().map(|m| self.send(m));
        let mut results = join_all(sends).await;
        // The broker refuses a produce batch whole when it is over the topic's
        // max.message.bytes, so one oversized message fails its neighbours too: each failed
        // message gets a second try alone in its batch.
        if messages.len() > 1 && results.iter().any(Result::is_err) {
            for (message, result) in messages.iter().zip(results.iter_mut()) {
                if result.is_err() {
                    *result = self.send(message).await;
                }
            }
        }
        // Mark what was delivered; a message the broker keeps refusing (too large, topic
        // gone) stays unpublished and is retried without holding back the others.
        let mut delivered: Vec<i64> = Vec::with_capacity(messages.len());
        let mut failed: Vec<i64> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut failures = Vec::new();
        for (message, result) in messages.iter().zip(results) {
            match result {
                Ok(()) => delivered.push(message.id),
                Err(err) => {
                    failed.push(message.id);
                    errors.push(format!("{err:#}"));
                    failures.push(format!(
                        "{} to {}: {err:#}",
                        message.message_id, message.topic
                    ));
                }
            }
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE outbox_id = ANY($1)")
            .bind(&delivered)
            .execute(&mut *tx)
            .await
            .context("outbox: cannot mark rows published")?;
        if !failed.is_empty() {
            // Each row keeps its own error, not the whole claim's.
            sqlx::query(
                "UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.error
                   FROM unnest($1::bigint[], $2::text[]) AS f(id, error)
                  WHERE o.outbox_id = f.id",
            )
            .bind(&failed)
            .bind(&errors)
            .execute(&mut *tx)
            .await
            .context("outbox: cannot record failed attempts")?;
        }
        tx.commit().await.context("outbox: cannot commit")?;
        let topics: Vec<&str> = messages
            .iter()
            .filter(|m| delivered.contains(&m.id))
            .map(|m| m.topic.as_str())
            .collect();
        self.metrics.record_outbox_published(&topics);
        let refused: Vec<&str> = messages
            .iter()
            .filter(|m| failed.contains(&m.id))
            .map(|m| m.topic.as_str())
            .collect();
        self.metrics.record_publish_errors(&refused);
        if let Some(first) = failures.first() {
            anyhow::bail!(
                "outbox: {} of {} messages not published (first: {first})",
                failures.len(),
                messages.len(),
            );
        }
        Ok(delivered.len() as u64)
    }

    async fn send(&self, message: &OutboxMessage) -> anyhow::Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(message.header_names.len());
        for (name, value) in message.header_names.iter().zip(&message.header_values) {
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&message.topic).headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &message.payload {
            record = record.payload(payload.as_slice());
        }
        if let Some(ts) = message.timestamp {
            record = record.timestamp(ts.timestamp_millis());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(err, _)| anyhow::Error::new(err))
    }
}

/// One claimed row.
struct OutboxMessage {
    id: i64,
    message_id: String,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    header_names: Vec<String>,
    header_values: Vec<Option<Vec<u8>>>,
    timestamp: Option<DateTime<Utc>>,
}
