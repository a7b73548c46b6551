//! The Kafka side of the pipeline: a `BaseConsumer` polled on a dedicated thread, whose
//! rebalance callback takes start offsets from `consumer_offsets` (never from Kafka) and
//! hands every event to the async side over one bounded channel, in order.
//!
//! Why a thread: librdkafka runs the rebalance callback synchronously inside `poll`. On its
//! own thread the callback may block on PostgreSQL (through the runtime handle; this thread
//! is not a tokio worker) and on the async side's acknowledgement of a revocation.
//! Why one channel: a partition's `Assigned` event, its records and its `Revoked` event
//! reach the batcher in the order they happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{RunArgs, StartPolicy};
use crate::kafka::client_config;
use crate::ledger::offsets;
use crate::record::{
    NotRead, RecordBytes, RecordHeaders, SourceRecord, TopicPartition, report_time,
};

/// Most often the stored offsets are mirrored into the Kafka group (for lag tools only).
const MIRROR_INTERVAL: Duration = Duration::from_secs(1);
/// How often the owned partitions' cached watermarks are handed to the batcher (lag).
const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a revocation waits for the batch in flight to commit before it lets the
/// partitions go anyway (the offsets compare-and-set keeps an abandoned batch harmless).
const REVOKE_DEADLINE: Duration = Duration::from_secs(20);

/// What the consumer thread tells the batcher.
#[derive(Debug)]
pub enum SourceEvent {
    /// Partitions now owned.
    Assigned(Vec<Assignment>),
    /// A record.
    Record(SourceMessage),
    /// The broker reached the end of a partition: the owned partitions with its number and
    /// their watermarks (for `--exit-when-idle-ms`); also the batcher's cue that the stream
    /// is trickling and a partial batch need not linger.
    CaughtUp(Vec<EndOfPartition>),
    /// The owned partitions' watermarks as librdkafka cached them from fetch responses
    /// (sent about once a second, for the lag metric).
    Watermarks(Vec<EndOfPartition>),
    /// Partitions taken away: commit what is buffered for them, forget them, then
    /// acknowledge.
    Revoked {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// Acknowledgement the callback waits for.
        done: std_mpsc::SyncSender<()>,
    },
    /// The consumer cannot go on (out-of-range offset without permission to skip, ...).
    Fatal(String),
}

/// One newly owned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The partition.
    pub partition: TopicPartition,
    /// Its `next_offset` in `consumer_offsets` (None: no row): the compare-and-set's
    /// expected value.
    pub stored: Option<i64>,
    /// Where fetching starts when known: the stored offset, or the oldest available one
    /// after an allowed skip (None: per the start policy).
    pub start: Option<i64>,
}

/// A partition's watermarks when the broker said there was nothing more to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndOfPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// Oldest offset held.
    pub low: i64,
    /// One past the newest offset held.
    pub high: i64,
}

/// A record, owned.
#[derive(Debug)]
pub struct SourceMessage {
    /// Coordinates and timestamp.
    pub source: SourceRecord,
    /// Key, value and headers.
    pub record: Arc<RecordBytes>,
    /// Its share of the read-ahead budget ([`ReadBudget`]), given back when the message is
    /// dropped (after its batch is settled).
    pub held: Option<OwnedSemaphorePermit>,
}

impl SourceMessage {
    /// Bytes of key, value and headers.
    pub fn size(&self) -> usize {
        let r = &self.record;
        r.key.as_ref().map_or(0, Vec::len)
            + r.value.as_ref().map_or(0, Vec::len)
            + r.headers
                .iter()
                .map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}

/// Bounds the bytes of records read from Kafka but not yet settled (in the channel and in
/// the batch being built): the poll thread waits for room before handing a record over,
/// so memory stays flat under any backlog, whatever the record sizes.
#[derive(Debug, Clone)]
pub struct ReadBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl ReadBudget {
    /// A budget of `mib` MiB.
    pub fn new(mib: u32) -> ReadBudget {
        let total_kib = mib.max(1).saturating_mul(1024);
        ReadBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits (blocking the poll thread) until `bytes` fit; a record larger than the whole
    /// budget takes all of it.
    fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes / 1024 + 1)
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        futures::executor::block_on(self.kib.clone().acquire_many_owned(kib)).ok()
    }
}

/// The rebalance context: loads start offsets from PostgreSQL and forwards events.
struct RebalanceContext {
    pool: PgPool,
    group: String,
    runtime: tokio::runtime::Handle,
    events: mpsc::Sender<SourceEvent>,
    start: StartPolicy,
    shutdown: CancellationToken,
    /// Whether a stored offset the broker no longer holds may be skipped over.
    allow_skip: bool,
    /// The client error logged last (repeats are not logged again).
    last_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for RebalanceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // End of partition is reported through poll as well; it is not an error here.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        // librdkafka repeats a connection failure on every retry: log each distinct error
        // once until another one replaces it.
        let text = format!("{error}: {reason}");
        let Ok(mut last) = self.last_error.lock() else {
            return;
        };
        if last.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %error, reason, "kafka client error (repeats not logged)");
            *last = Some(text);
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, tpl, cooperative)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl, cooperative)
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

impl RebalanceContext {
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        cooperative: bool,
    ) {
        let partitions = partitions_of(tpl);
        let stored = self.load_offsets(&partitions);
        let mut assigned = Vec::with_capacity(partitions.len());
        let mut with_offsets = TopicPartitionList::new();
        let mut lost_ranges = Vec::new();
        for tp in &partitions {
            let next = stored.get(tp).copied();
            let start = match next {
                Some(n) => match self.check_in_range(consumer, tp, n) {
                    Ok(start) => Some(start),
                    Err(problem) => {
                        lost_ranges.push(problem);
                        continue;
                    }
                },
                // Latest: pin "now" as an offset, so the batcher knows where reading
                // starts (and when it has caught up).
                None if self.start == StartPolicy::Latest => consumer
                    .fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(10))
                    .ok()
                    .map(|(_, high)| high),
                None => None,
            };
            let offset = match (start, self.start) {
                (Some(start), _) => Offset::Offset(start),
                (None, StartPolicy::Earliest) => Offset::Beginning,
                (None, StartPolicy::Latest) => Offset::End,
            };
            if let Err(err) = with_offsets.add_partition_offset(&tp.topic, tp.partition, offset) {
                tracing::error!(partition = %tp, error = %err, "cannot set start offset");
            }
            assigned.push(Assignment {
                partition: tp.clone(),
                stored: next,
                start,
            });
        }
        if !lost_ranges.is_empty() {
            let _ = self
                .events
                .blocking_send(SourceEvent::Fatal(lost_data_message(&lost_ranges)));
        }
        tracing::info!(partitions = %describe_assignments(&assigned, self.start), cooperative, "partitions assigned; starting from stored offsets");
        // Before assigning: the batcher must know the expected offsets before any record
        // of these partitions can reach it.
        if self
            .events
            .blocking_send(SourceEvent::Assigned(assigned))
            .is_err()
        {
            return;
        }
        let result = if cooperative {
            consumer.incremental_assign(&with_offsets)
        } else {
            consumer.assign(&with_offsets)
        };
        if let Err(err) = result {
            let _ = self.events.blocking_send(SourceEvent::Fatal(format!(
                "assigning partitions failed: {err}"
            )));
        }
    }

    fn revoke(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        cooperative: bool,
    ) {
        let partitions = partitions_of(tpl);
        tracing::info!(partitions = %describe_partitions(&partitions), "partitions revoked; settling the batch in flight");
        let (done, acked) = std_mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + REVOKE_DEADLINE;
        let event = SourceEvent::Revoked {
            partitions: partitions.clone(),
            done,
        };
        // Bounded waits on both sides: a batcher stuck retrying an unreachable database must
        // not hold the group's rebalance hostage (the offsets compare-and-set keeps a late
        // commit harmless).
        let (sent, undelivered) = match send_before(&self.runtime, &self.events, event, deadline) {
            Ok(sent) => (sent, None),
            Err(event) => (false, Some(event)),
        };
        let settled = sent
            && acked
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .is_ok();
        // A closed channel means the run is stopping: nothing to settle.
        if !settled && !self.events.is_closed() {
            tracing::warn!(
                "batch in flight not settled within the revoke deadline; letting partitions go"
            );
        }
        let result = if cooperative {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(err) = result {
            tracing::error!(error = %err, "unassign failed");
        }
        // The batcher must learn of the revocation even when it was too busy to take it in
        // time: wait for room now, after the partitions are gone.
        if let Some(event) = undelivered {
            let _ = self.events.blocking_send(*event);
        }
    }

    /// The offset to start a partition at: its stored `next_offset` when the broker still
    /// holds it; otherwise (retention deleted records never ingested, or the topic was
    /// recreated) the oldest available offset if the operator allowed the skip, or an error
    /// naming the partition and both offsets.
    fn check_in_range(
        &self,
        consumer: &BaseConsumer<Self>,
        tp: &TopicPartition,
        stored: i64,
    ) -> Result<i64, String> {
        let (low, high) =
            match consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(10)) {
                Ok(marks) => marks,
                // Unknown now; librdkafka reports an out-of-range fetch later (see poll_loop).
                Err(_) => return Ok(stored),
            };
        if (low..=high).contains(&stored) {
            return Ok(stored);
        }
        let problem = format!(
            "{tp}: stored next_offset {stored} is outside the broker's range {low}..{high}"
        );
        if self.allow_skip {
            tracing::warn!(partition = %tp, stored, low, high, "skipping to the oldest available record (--allow-offset-skip)");
            return Ok(low);
        }
        Err(problem)
    }

    /// Stored offsets, retried until PostgreSQL answers (the group waits meanwhile) or the
    /// run stops.
    fn load_offsets(&self, partitions: &[TopicPartition]) -> HashMap<TopicPartition, i64> {
        let mut backoff = crate::retry::Backoff::default();
        loop {
            match self
                .runtime
                .block_on(offsets::load(&self.pool, &self.group, partitions))
            {
                Ok(stored) => return stored,
                Err(err) => {
                    if self.shutdown.is_cancelled() {
                        return HashMap::new();
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?wait, "cannot read stored offsets; retrying");
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

/// The partitions of a librdkafka list.
/// `topic[0]@120,topic[1]@earliest`: each partition and where it starts, in the spelling
/// of the other logs and dead letters (not Rust's debug structures).
fn describe_assignments(assigned: &[Assignment], policy: StartPolicy) -> String {
    let text: Vec<String> = assigned
        .iter()
        .map(|a| match (a.start, policy) {
            (Some(offset), _) => format!("{}@{offset}", a.partition),
            (None, StartPolicy::Earliest) => format!("{}@earliest", a.partition),
            (None, StartPolicy::Latest) => format!("{}@latest", a.partition),
        })
        .collect();
    if text.is_empty() {
        "none".to_string()
    } else {
        text.join(",")
    }
}

/// `topic[0],topic[1]`.
fn describe_partitions(partitions: &[TopicPartition]) -> String {
    let text: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    if text.is_empty() {
        "none".to_string()
    } else {
        text.join(",")
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

/// Sends an event before `deadline`: `Ok(true)` sent, `Ok(false)` the batcher is gone,
/// `Err(event)` the channel stayed full (the event comes back to be sent later). Waits for
/// room on `runtime` (a slot is reserved first, so a timeout keeps the event).
fn send_before(
    runtime: &tokio::runtime::Handle,
    events: &mpsc::Sender<SourceEvent>,
    event: SourceEvent,
    deadline: std::time::Instant,
) -> Result<bool, Box<SourceEvent>> {
    // The timer is made inside block_on: it needs the runtime's context.
    let room = runtime
        .block_on(async { tokio::time::timeout_at(deadline.into(), events.reserve()).await });
    match room {
        Ok(Ok(permit)) => {
            permit.send(event);
            Ok(true)
        }
        Ok(Err(_closed)) => Ok(false),
        Err(_elapsed) => Err(Box::new(event)),
    }
}

/// The running consumer thread.
pub struct Source {
    thread: Option<std::thread::JoinHandle<()>>,
    /// Says when the poll thread has closed the consumer.
    closed: Option<std_mpsc::Receiver<()>>,
    stop: CancellationToken,
    /// Offsets to mirror into Kafka's group offsets after they are durable in PostgreSQL.
    mirror: std_mpsc::Sender<Vec<(TopicPartition, i64)>>,
}

impl Source {
    /// Subscribes and starts polling on a dedicated thread; events arrive on the returned
    /// receiver.
    pub fn start(
        args: &RunArgs,
        pool: PgPool,
        channel_capacity: usize,
        budget: ReadBudget,
    ) -> anyhow::Result<(Source, mpsc::Receiver<SourceEvent>)> {
        let (events, receiver) = mpsc::channel(channel_capacity);
        let stop = CancellationToken::new();
        let context = RebalanceContext {
            pool,
            group: args.group.clone(),
            runtime: tokio::runtime::Handle::current(),
            events: events.clone(),
            start: args.start,
            shutdown: stop.clone(),
            allow_skip: args.allow_offset_skip,
            last_error: std::sync::Mutex::new(None),
        };
        let mut config = client_config(&args.kafka);
        config
            .set("group.id", &args.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A stored offset the broker no longer has must never be silently replaced.
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "true")
            // librdkafka's own prefetch is bounded too (its default is 64 MiB).
            .set(
                "queued.max.messages.kbytes",
                (u64::from(args.read_ahead_mib) * 512)
                    .clamp(1024, 65536)
                    .to_string(),
            )
            // Small per-partition fetches interleave the partitions in the queue, so a
            // batch holds several of them and its lanes commit at once (with librdkafka's
            // 1 MiB a 5,000-record batch was mostly one partition, one lane). Measured on
            // 300,000 records, 2 lanes: 21.0k records/s with 1 MiB, 28.7k with 64 KiB.
            .set(
                "max.partition.fetch.bytes",
                if args.lanes > 1 { "65536" } else { "1048576" },
            )
            .set("session.timeout.ms", args.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (args.session_timeout_ms / 4).max(100).to_string(),
            )
            .set("partition.assignment.strategy", &args.assignor);
        if let Some(id) = &args.instance_id {
            config.set("group.instance.id", id);
        }
        for (key, value) in &args.kafka.properties {
            config.set(key, value);
        }
        let consumer: BaseConsumer<RebalanceContext> = config
            .create_with_context(context)
            .context("failed to create Kafka consumer")?;
        let topics = args.subscribed_topics();
        consumer
            .subscribe(&topics)
            .with_context(|| format!("failed to subscribe to {topics:?}"))?;
        let thread_stop = stop.clone();
        let max_record_bytes = (args.max_record_kib as usize).saturating_mul(1024);
        let (mirror, mirrored) = std_mpsc::channel();
        let (closed_tx, closed) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || {
                poll_loop(
                    consumer,
                    events,
                    mirrored,
                    thread_stop,
                    budget,
                    max_record_bytes,
                );
                let _ = closed_tx.send(());
            })
            .context("failed to start the consumer thread")?;
        Ok((
            Source {
                thread: Some(thread),
                closed: Some(closed),
                stop,
                mirror,
            },
            receiver,
        ))
    }

    /// A handle that mirrors committed offsets into Kafka.
    pub fn offset_mirror(&self) -> OffsetMirror {
        OffsetMirror(self.mirror.clone())
    }

    /// Stops polling and closes the consumer (leaving the group), waiting at most
    /// `deadline` (blocking: call it off the async workers). Past it the consumer thread is
    /// left behind and the process may exit without the polite group leave: that is safe,
    /// because every record acknowledged was written first (the group reassigns the
    /// partitions after the session timeout). True when the consumer closed in time.
    pub fn stop_within(mut self, deadline: Duration) -> bool {
        self.stop.cancel();
        let closed = self
            .closed
            .take()
            .is_some_and(|closed| closed.recv_timeout(deadline).is_ok());
        match self.thread.take() {
            Some(thread) if closed => {
                let _ = thread.join();
            }
            // Detached: it ends with the process.
            Some(_) | None => {}
        }
        closed
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Mirrors offsets already durable in PostgreSQL into the group's Kafka offsets, only so
/// that standard lag tools (kafka-consumer-groups, Burrow, ...) see progress. Nothing reads
/// them back: start positions always come from `consumer_offsets`.
#[derive(Debug, Clone)]
pub struct OffsetMirror(std_mpsc::Sender<Vec<(TopicPartition, i64)>>);

impl OffsetMirror {
    /// Queues `next_offset` per partition for an asynchronous commit by the consumer thread.
    pub fn mirror(&self, offsets: Vec<(TopicPartition, i64)>) {
        let _ = self.0.send(offsets);
    }
}

/// Commits mirrored offsets of partitions still assigned (a failure only delays lag
/// reporting: nothing depends on these offsets).
fn commit_mirrored(consumer: &BaseConsumer<RebalanceContext>, offsets: Vec<(TopicPartition, i64)>) {
    let Ok(assigned) = consumer.assignment() else {
        return;
    };
    let owned = partitions_of(&assigned);
    let mut list = TopicPartitionList::new();
    for (tp, next) in offsets.into_iter().filter(|(tp, _)| owned.contains(tp)) {
        let _ = list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(next));
    }
    if list.count() > 0
        && let Err(err) = consumer.commit(&list, rdkafka::consumer::CommitMode::Async)
    {
        tracing::debug!(error = %err, "mirroring offsets to Kafka failed");
    }
}

fn poll_loop(
    consumer: BaseConsumer<RebalanceContext>,
    events: mpsc::Sender<SourceEvent>,
    mirrored: std_mpsc::Receiver<Vec<(TopicPartition, i64)>>,
    stop: CancellationToken,
    budget: ReadBudget,
    max_record_bytes: usize,
) {
    let mut last_warning: Option<String> = None;
    // Mirrored offsets are coalesced and committed at most once per MIRROR_INTERVAL: lag
    // tools need no more, and a commit after every small batch of a trickling stream made
    // the broker busier than the ingestion itself.
    let mut to_mirror: HashMap<TopicPartition, i64> = HashMap::new();
    let mut last_mirror = std::time::Instant::now();
    let mut last_watermarks = std::time::Instant::now();
    while !stop.is_cancelled() {
        if last_watermarks.elapsed() >= WATERMARK_INTERVAL {
            last_watermarks = std::time::Instant::now();
            let marks = owned_watermarks(&consumer);
            if !marks.is_empty()
                && events
                    .blocking_send(SourceEvent::Watermarks(marks))
                    .is_err()
            {
                break;
            }
        }
        while let Ok(offsets) = mirrored.try_recv() {
            to_mirror.extend(offsets);
        }
        if !to_mirror.is_empty() && last_mirror.elapsed() >= MIRROR_INTERVAL {
            commit_mirrored(&consumer, to_mirror.drain().collect());
            last_mirror = std::time::Instant::now();
        }
        let event = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Ok(message)) => {
                let mut record = owned(&message, max_record_bytes);
                record.held = budget.reserve(record.size());
                SourceEvent::Record(record)
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                SourceEvent::CaughtUp(at_end_with_number(&consumer, partition))
            }
            Some(Err(err)) if is_offset_out_of_range(&err) => {
                SourceEvent::Fatal(out_of_range(&consumer))
            }
            Some(Err(err)) => {
                // Transport errors are retried by librdkafka itself: say each once, not
                // per retry (a missing topic or a down broker repeats every few ms).
                let text = err.to_string();
                if last_warning.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "kafka consumer error (repeats not logged)");
                    last_warning = Some(text);
                }
                continue;
            }
        };
        if events.blocking_send(event).is_err() {
            break;
        }
    }
    // Dropping the consumer closes it: it leaves the group (the revoke callback runs and
    // finds the batcher gone, which is fine: nothing uncommitted is acknowledged).
    drop(consumer);
}

/// librdkafka names only the partition number of an end-of-partition event: the owned
/// partitions with that number (one per topic) and their watermarks as last seen in fetch
/// responses, for the batcher to compare with what it has read. Never a broker round trip:
/// this runs on the poll thread for every end of partition, which a trickling stream
/// reaches after nearly every fetch.
fn at_end_with_number(
    consumer: &BaseConsumer<RebalanceContext>,
    partition: i32,
) -> Vec<EndOfPartition> {
    let Ok(assignment) = consumer.assignment() else {
        return Vec::new();
    };
    assignment
        .elements()
        .iter()
        .filter(|e| e.partition() == partition)
        .filter_map(|e| {
            let (low, high) = cached_watermarks(consumer, e.topic(), e.partition())?;
            Some(EndOfPartition {
                partition: TopicPartition::new(e.topic(), e.partition()),
                // Not reported yet by any fetch: nothing below the high mark is known gone.
                low: low.max(0),
                high,
            })
        })
        .collect()
}

/// The cached watermarks of every assigned partition librdkafka has fetched from.
fn owned_watermarks(consumer: &BaseConsumer<RebalanceContext>) -> Vec<EndOfPartition> {
    let Ok(assigned) = consumer.assignment() else {
        return Vec::new();
    };
    partitions_of(&assigned)
        .into_iter()
        .filter_map(|tp| {
            let (low, high) = cached_watermarks(consumer, &tp.topic, tp.partition)?;
            Some(EndOfPartition {
                partition: tp,
                low,
                high,
            })
        })
        .collect()
}

/// The low and high watermarks librdkafka cached from the last fetch response of a
/// partition (`rd_kafka_get_watermark_offsets`, which the rdkafka crate does not wrap);
/// None while no fetch has reported them.
fn cached_watermarks(
    consumer: &BaseConsumer<RebalanceContext>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client handle lives as long as `consumer`, which outlives the call; the
    // topic is a NUL-terminated string that outlives it; the out-pointers are valid for
    // writes. The function only reads librdkafka's cached partition state under its lock.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
}

fn is_offset_out_of_range(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AutoOffsetReset) | Some(RDKafkaErrorCode::OffsetOutOfRange)
    )
}

/// The broker refused a fetch position mid-stream (records deleted while this instance
/// lagged behind): name the partitions whose position is outside the broker's range.
fn out_of_range(consumer: &BaseConsumer<RebalanceContext>) -> String {
    let mut problems = Vec::new();
    if let Ok(positions) = consumer.position() {
        for element in positions.elements() {
            let Offset::Offset(position) = element.offset() else {
                continue;
            };
            let tp = TopicPartition::new(element.topic(), element.partition());
            if let Ok((low, high)) =
                consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(10))
                && !(low..=high).contains(&position)
            {
                problems.push(format!(
                    "{tp}: position {position} is outside the broker's range {low}..{high}"
                ));
            }
        }
    }
    if problems.is_empty() {
        problems
            .push("the broker reported an out-of-range offset for an assigned partition".into());
    }
    lost_data_message(&problems)
}

/// The operator-facing explanation of unread records the broker deleted.
fn lost_data_message(problems: &[String]) -> String {
    format!(
        "{}; records were deleted (retention) before they were ingested. Investigate, then rerun with --allow-offset-skip to continue from the oldest available record",
        problems.join("; ")
    )
}

/// Record timestamps outside this range (year 1970 to 9999) are not real event times and
/// PostgreSQL's `timestamptz` would refuse some of them: they are replaced by the time of
/// reading.
const PLAUSIBLE_MILLIS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// The longest key an oversized record keeps (line keys are far shorter): enough to find
/// the record's identity without copying what made it oversized.
const OVERSIZED_KEY_KEPT: usize = 4096;

/// Copies a record out of librdkafka's buffer; one of more than `max_bytes` keeps only its
/// coordinates, a short key and its value's digest.
fn owned(message: &BorrowedMessage<'_>, max_bytes: usize) -> SourceMessage {
    let timestamp = message
        .timestamp()
        .to_millis()
        .filter(|ms| PLAUSIBLE_MILLIS.contains(ms))
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_else(Utc::now);
    let key = message.key();
    let value = message.payload();
    let body = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
    // Headers are read (and sized) only when key and value fit.
    let (headers, not_read) = if body > max_bytes {
        (Vec::new(), None)
    } else {
        owned_headers(message)
    };
    let bytes = body
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
    let (key, value, headers, not_read) = if bytes > max_bytes {
        let not_read = NotRead::TooLarge {
            bytes,
            limit: max_bytes,
            value_sha256: hex::encode(Sha256::digest(value.unwrap_or_default())),
        };
        let key = key
            .filter(|k| k.len() <= OVERSIZED_KEY_KEPT)
            .map(<[u8]>::to_vec);
        (key, None, Vec::new(), Some(not_read))
    } else {
        (
            key.map(<[u8]>::to_vec),
            value.map(<[u8]>::to_vec),
            headers,
            not_read,
        )
    };
    // A record carrying its report's time is versioned by it (its producer publishes with
    // the current time); a malformed one is refused rather than versioned by a guess.
    let (timestamp, not_read) = match report_time(&headers) {
        None => (timestamp, not_read),
        Some(Ok(made)) => (made, not_read),
        Some(Err(text)) => (timestamp, not_read.or(Some(NotRead::ReportTime(text)))),
    };
    SourceMessage {
        source: SourceRecord {
            topic: Arc::from(message.topic()),
            partition: message.partition(),
            offset: message.offset(),
            timestamp,
        },
        record: Arc::new(RecordBytes {
            key,
            value,
            headers,
            not_read,
        }),
        held: None,
    }
}

/// A record's headers, copied; none if a name is not UTF-8.
fn owned_headers(message: &BorrowedMessage<'_>) -> (RecordHeaders, Option<NotRead>) {
    // rdkafka unwraps the UTF-8 conversion of header names: a producer that writes a
    // non-UTF-8 name would otherwise kill this thread on every restart. Such a record is
    // dead-lettered (without its headers) instead.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    }));
    match read {
        Ok(headers) => (headers, None),
        Err(_) => (Vec::new(), Some(NotRead::HeaderName)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_logged_as_topic_partition_at_offset() {
        let assignment = |partition, start| Assignment {
            partition: TopicPartition::new("royalty.events.raw", partition),
            stored: start,
            start,
        };
        let assigned = [assignment(0, Some(120)), assignment(1, None)];
        assert_eq!(
            describe_assignments(&assigned, StartPolicy::Earliest),
            "royalty.events.raw[0]@120,royalty.events.raw[1]@earliest"
        );
        assert_eq!(
            describe_assignments(&assigned[1..], StartPolicy::Latest),
            "royalty.events.raw[1]@latest"
        );
        assert_eq!(describe_assignments(&[], StartPolicy::Earliest), "none");
        assert_eq!(describe_partitions(&[TopicPartition::new("t", 3)]), "t[3]");
    }
}
