//! The outbox relay: publishes rows of `outbox` (dead letters, drift alerts) with an
//! idempotent producer and deletes each row once the broker has its message: the outbox is
//! a queue, holding only what is still to publish (quarantine keeps every dead letter). No
//! transaction is open while it talks to the broker: a claim is one short statement that
//! leases rows (`claimed_until`, taken with `FOR UPDATE SKIP LOCKED` for the statement's
//! milliseconds only), the sends happen outside any transaction, and one more short
//! statement deletes the delivered rows, or records each failed one's error and gives it
//! back. So several instances can relay side by side (a row under a valid lease is sent by
//! its holder only), a broker that does not answer leaves neither a transaction open nor a
//! row locked, and the rows of a relay that crashed are claimed again once its lease runs
//! out. A crash between the send and the delete, or a lease that runs out while its holder
//! still sends, repeats a publication (subscribers drop it by its stable id header);
//! nothing is ever lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
/// How often the relay looks for rows when nobody woke it (other instances' rows, leases
/// that ran out).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often the backlog gauges are refreshed (Prometheus scrapes every 15 s or so).
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long a send waits for room in the producer's local queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Kept on top of the longest a claim's sends can take before its lease runs out: the
/// claim's own statements, a slow database.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// The lease when the producer's delivery timeout is 0 (librdkafka: no timeout), so no
/// bound on a claim's sends exists: another relay repeats the rows an hour later.
const UNBOUNDED_LEASE: Duration = Duration::from_secs(3600);

/// The relay's producer and database.
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    /// Names this relay's claims (`outbox.claimed_by`): which instance holds a row.
    owner: String,
    /// The longest one send can take: a wait for queue room and the delivery timeout.
    send_bound: Duration,
    /// How long a claim holds its rows.
    lease: Duration,
}

impl Relay {
    /// An idempotent producer (`acks=all`) over the given database.
    pub fn new(kafka: &KafkaArgs, pool: PgPool, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        refuse_unsafe_properties(kafka, &[Client::Producer])?;
        let config = idempotent_producer_config(kafka);
        let producer = config
            .create()
            .context("failed to create the outbox producer")?;
        let (send_bound, lease) = lease_for(&config);
        Ok(Self {
            pool,
            producer,
            metrics,
            owner: format!("relay-{}-{:08x}", std::process::id(), random_u32()),
            send_bound,
            lease,
        })
    }

    /// Publishes until `shutdown`, woken by `wake` after commits that wrote outbox rows.
    pub async fn run(&self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        let mut measured: Option<Instant> = None;
        loop {
            if measured.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
                measured = Some(Instant::now());
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

    /// Publishes everything pending now (used before a batch job exits). Rows under
    /// another relay's valid lease are left to it.
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

    /// Gives back the rows this relay still holds (a drain cut short by its deadline), so
    /// the next relay need not wait for the lease to run out. A send still in flight may
    /// then be repeated by that relay, which subscribers absorb by the id header.
    pub async fn release_claims(&self) -> anyhow::Result<u64> {
        let released = sqlx::query(
            "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL
              WHERE starts_with(claimed_by, $1 || '@')",
        )
        .bind(&self.owner)
        .execute(&self.pool)
        .await
        .context("outbox: cannot give back the claimed rows")?;
        Ok(released.rows_affected())
    }

    /// Counts the unpublished rows and the age of the oldest into the metrics (a failure
    /// leaves the last figures: the relay's own errors say why).
    async fn measure_backlog(&self) {
        if let Ok((count, age)) = self.backlog().await {
            self.metrics
                .record_outbox_backlog(count, Duration::from_secs_f64(age.max(0.0)));
        }
    }

    /// The unpublished rows and the age of the oldest, in seconds. One statement, no
    /// transaction of its own (a relay is never idle in a transaction). Until vacuum comes by
    /// (a minute or more) the outbox's heap is mostly rows the relay deleted, and this scan
    /// reads them all (up to 125 ms with 200k refused records a minute), which is why the
    /// gauges are refreshed every [`BACKLOG_INTERVAL`], not every second.
    async fn backlog(&self) -> Result<(i64, f64), sqlx::Error> {
        sqlx::query_as(
            "SELECT count(*),
                    coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
               FROM outbox",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// How many outbox rows are still unpublished.
    pub async fn unpublished(&self) -> anyhow::Result<i64> {
        let (count, _) = self
            .backlog()
            .await
            .context("outbox: cannot count unpublished rows")?;
        Ok(count)
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

    /// Claims up to [`CLAIM_SIZE`] unpublished rows, publishes them and deletes those the
    /// broker took, with no transaction open while it sends. Returns how many were published.
    pub async fn publish_claim(&self) -> anyhow::Result<u64> {
        self.claim_and_publish(None).await
    }

    async fn claim_and_publish(&self, only: Option<&[String]>) -> anyhow::Result<u64> {
        let claimed_at = Instant::now();
        let messages = self.claim(only).await?;
        if messages.is_empty() {
            return Ok(0);
        }
        let sends = messages.iter().map(|m| self.send(m));
        let mut results = join_all(sends).await;
        // The broker refuses a produce batch whole when it is over the topic's
        // max.message.bytes, so one oversized message fails its neighbours too: each failed
        // message gets a second try alone in its batch. Not after a timeout (the broker did
        // not answer: alone it would not either, and one at a time would take hours), and
        // none starts later than one send's bound after the claim, so every send ends
        // well inside the lease.
        if messages.len() > 1 && results.iter().any(Result::is_err) {
            for (message, result) in messages.iter().zip(results.iter_mut()) {
                let retry = match result {
                    Err(err) => worth_a_try_alone(err),
                    Ok(()) => false,
                };
                if retry && claimed_at.elapsed() < self.send_bound {
                    *result = self.send(message).await;
                }
            }
        }
        // Delete what was delivered; a message the broker keeps refusing (too large, topic
        // gone) stays unpublished, keeps its own error and is retried without holding back
        // the others.
        let mut outcome = Outcome::default();
        let mut failures = Vec::new();
        let (mut delivered, mut refused) = (Vec::new(), Vec::new());
        for (message, result) in messages.iter().zip(&results) {
            match result {
                Ok(()) => {
                    outcome.delivered.push(message.id);
                    outcome.delivered_tids.push(message.tid.clone());
                    delivered.push(message.topic.as_str());
                }
                Err(err) => {
                    let error = anyhow::Error::new(err.clone());
                    outcome.failed.push(message.id);
                    outcome.failed_tids.push(message.tid.clone());
                    outcome.errors.push(format!("{error:#}"));
                    refused.push(message.topic.as_str());
                    failures.push(format!(
                        "{} to {}: {error:#}",
                        message.message_id, message.topic
                    ));
                }
            }
        }
        self.settle(&outcome).await?;
        self.metrics.record_outbox_published(&delivered);
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

    /// Leases up to [`CLAIM_SIZE`] unpublished rows no valid lease holds (least-tried
    /// first), as many as fit [`CLAIM_BYTES`] and at least one, and loads them: one
    /// statement, its own short transaction. Rows another statement is claiming right now
    /// are skipped, not waited for. A claim names this relay and the database session that
    /// made it (`owner@pid`); a lease whose session no longer exists is over at once — a
    /// relay killed mid-publish loses its connections with it, and a batch job draining
    /// the outbox after it must not wait out the lease (or leave the rows unpublished).
    /// The claiming connection stays in this process's pool while it sends; should the
    /// pool close it meanwhile, another relay may repeat a publication, which subscribers
    /// absorb by the id header.
    ///
    /// The outbox is a queue, and its statistics are right only for moments: it swings from
    /// empty to a backlog and back, and until vacuum comes by its heap is mostly rows the
    /// relay deleted. So the statement takes the candidates by the claim index in its order,
    /// locks them, and leases them by their address (`ctid`, a TID scan whatever the
    /// statistics): planned as a join, or by `outbox_id = ANY`, a claim read the whole
    /// outbox (or all of the claim index) when the statistics said it was empty, 285 µs per
    /// message at a million records with a fifth refused.
    async fn claim(&self, only: Option<&[String]>) -> anyhow::Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(
            "WITH candidate AS (
                SELECT ctid AS tid, outbox_id, attempts,
                       coalesce(octet_length(payload), 0)
                       + coalesce(octet_length(message_key), 0) AS size
                  FROM outbox
                 WHERE (claimed_until IS NULL OR claimed_until <= now()
                        OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                                        WHERE a.pid = substring(outbox.claimed_by
                                                                FROM '@([0-9]+)$')::int))
                   AND ($2::text[] IS NULL OR message_id = ANY($2))
                 ORDER BY attempts, outbox_id LIMIT $1
                   FOR UPDATE SKIP LOCKED
             ), fitting AS (
                SELECT tid FROM (
                    SELECT tid, row_number() OVER w AS n, sum(size) OVER w AS total
                      FROM candidate WINDOW w AS (ORDER BY attempts, outbox_id)
                ) c
                 WHERE n = 1 OR total <= $3
             )
             UPDATE outbox o
                SET claimed_until = now() + make_interval(secs => $4),
                    claimed_by = $5 || '@' || pg_backend_pid()
              WHERE o.ctid = ANY(ARRAY(SELECT tid FROM fitting))
             RETURNING o.ctid::text AS tid, o.outbox_id, o.attempts, o.message_id, o.topic, o.message_key,
                       o.payload, o.header_names, o.header_values, o.message_timestamp",
        )
        .bind(CLAIM_SIZE)
        .bind(only)
        .bind(CLAIM_BYTES)
        .bind(self.lease.as_secs_f64())
        .bind(&self.owner)
        .fetch_all(&self.pool)
        .await
        .context("outbox: cannot claim rows")?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            messages.push(OutboxMessage {
                tid: row.try_get("tid")?,
                id: row.try_get("outbox_id")?,
                attempts: row.try_get("attempts")?,
                message_id: row.try_get("message_id")?,
                topic: row.try_get("topic")?,
                key: row.try_get("message_key")?,
                payload: row.try_get("payload")?,
                header_names: row.try_get("header_names")?,
                header_values: row.try_get("header_values")?,
                timestamp: row.try_get("message_timestamp")?,
            });
        }
        messages.sort_by_key(|m| (m.attempts, m.id));
        Ok(messages)
    }

    /// Records a claim's outcome in one statement: a delivered row is deleted (whoever holds
    /// it now: it is on the topic), a failed one keeps its error and counts one more attempt,
    /// given back only while this relay still holds it (after its lease ran out another
    /// relay may be sending it). Rows are fetched by the address the claim returned, checked
    /// by id, as the claim does (a row another relay has claimed since has moved: it is left
    /// to that relay, which publishes it again).
    async fn settle(&self, outcome: &Outcome) -> anyhow::Result<()> {
        sqlx::query(
            "WITH delivered AS (
                DELETE FROM outbox
                 WHERE ctid = ANY($1::text[]::tid[]) AND outbox_id = ANY($2)
             )
             UPDATE outbox o
                SET attempts = o.attempts + 1, last_error = r.error,
                    claimed_until = NULL, claimed_by = NULL
               FROM unnest($4::bigint[], $5::text[]) AS r(id, error)
              WHERE o.ctid = ANY($3::text[]::tid[]) AND o.outbox_id = r.id
                AND starts_with(o.claimed_by, $6 || '@')",
        )
        .bind(&outcome.delivered_tids)
        .bind(&outcome.delivered)
        .bind(&outcome.failed_tids)
        .bind(&outcome.failed)
        .bind(&outcome.errors)
        .bind(&self.owner)
        .execute(&self.pool)
        .await
        .context("outbox: cannot record what the broker took")?;
        Ok(())
    }

    async fn send(&self, message: &OutboxMessage) -> Result<(), KafkaError> {
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
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(err, _)| err)
    }
}

/// Whether a failed send may succeed alone: not when the broker did not answer in time or
/// the local queue was full.
fn worth_a_try_alone(err: &KafkaError) -> bool {
    !matches!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::QueueFull)
    )
}

/// The longest one send can take (queue room, then the delivery timeout the producer is
/// configured with, `message.timeout.ms` or its alias) and the lease that outlasts a
/// claim's sends: a first round at once, then retries alone started within one send's
/// bound, each within one more.
fn lease_for(config: &ClientConfig) -> (Duration, Duration) {
    let timeout_ms = ["message.timeout.ms", "delivery.timeout.ms"]
        .iter()
        .filter_map(|key| config.get(key)?.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(300_000);
    if timeout_ms == 0 {
        return (UNBOUNDED_LEASE, UNBOUNDED_LEASE);
    }
    let send_bound = QUEUE_TIMEOUT + Duration::from_millis(timeout_ms);
    (send_bound, send_bound * 2 + LEASE_MARGIN)
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}

/// What the broker did with a claim's messages, by outbox row (id and address).
#[derive(Debug, Default)]
struct Outcome {
    /// Rows whose message the broker acknowledged.
    delivered: Vec<i64>,
    delivered_tids: Vec<String>,
    /// Rows whose message it refused, and why (same order).
    failed: Vec<i64>,
    failed_tids: Vec<String>,
    errors: Vec<String>,
}

/// One claimed row.
struct OutboxMessage {
    /// Its address (`ctid`) once claimed.
    tid: String,
    id: i64,
    attempts: i32,
    message_id: String,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    header_names: Vec<String>,
    header_values: Vec<Option<Vec<u8>>>,
    timestamp: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_outlasts_a_claims_sends_under_the_configured_delivery_timeout() {
        let mut config = ClientConfig::new();
        config.set("message.timeout.ms", "30000");
        let (send, lease) = lease_for(&config);
        assert_eq!(send, Duration::from_secs(35));
        assert_eq!(lease, Duration::from_secs(100));
        config.set("delivery.timeout.ms", "120000");
        assert_eq!(lease_for(&config).0, Duration::from_secs(125));
        config
            .set("message.timeout.ms", "0")
            .remove("delivery.timeout.ms");
        assert_eq!(lease_for(&config).1, UNBOUNDED_LEASE);
    }

    #[test]
    fn only_a_refusal_is_tried_again_alone() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(!worth_a_try_alone(&timed_out));
        assert!(worth_a_try_alone(&too_large));
    }
}
