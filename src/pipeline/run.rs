//! The run loop: gathers records into batches (size or linger time), commits each batch in
//! one transaction, and reacts to assignments, revocations, fences and outages.
//!
//! Invariant: a partition's stored offset only moves in the transaction that wrote every
//! record below it. Fenced → reload and drop what the other instance already handled;
//! database down → retry the same batch with backoff, reading nothing new meanwhile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::avro::LineDecoder;
use crate::config::RunArgs;
use crate::db::DbFailure;
use crate::drift::DriftSettings;
use crate::ledger::{self, BatchTarget, CommitOutcome, offsets};
use crate::observe::{Metrics, Readiness};
use crate::record::TopicPartition;
use crate::report;
use crate::retry::{Backoff, Unavailable};

use super::positions::Positions;
use super::process::build_batch;
use super::source::{OffsetMirror, SourceEvent, SourceMessage};

/// Totals of one run, for the final log line and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunTotals {
    /// Records read and taken into batches.
    pub records: u64,
    /// Batch transactions committed (one per lane of a batch).
    pub batches: u64,
    /// What the ledger did.
    pub stats: ledger::BatchStats,
}

impl RunTotals {
    /// Counts one committed transaction of `records` records.
    fn add(&mut self, records: u64, stats: &ledger::BatchStats) {
        self.records += records;
        self.batches += 1;
        self.stats.post.add(stats.post);
        self.stats.dead_letters += stats.dead_letters;
        self.stats.poisoned += stats.poisoned;
        self.stats.drift_alerts += stats.drift_alerts;
        self.stats.catalog.add(stats.catalog);
    }
}

/// The INFO line about committed batches: one per batch, but at most one a second (the
/// batches in between are summed into the next line). A trickle shows every batch's
/// outcome; a busy daemon or a long `--exit-when-idle-ms` job shows its progress once a
/// second instead of one line per transaction.
struct BatchLog {
    /// When the last line was written.
    said: Instant,
    /// The totals it reported.
    reported: RunTotals,
    /// When the run started, for the rate so far.
    started: Instant,
}

impl BatchLog {
    const EVERY: Duration = Duration::from_secs(1);

    fn new() -> Self {
        let now = Instant::now();
        BatchLog {
            said: now - Self::EVERY,
            reported: RunTotals::default(),
            started: now,
        }
    }

    /// Whether batches committed since the last line wait to be told.
    fn unsaid(&self, totals: &RunTotals) -> bool {
        totals.batches > self.reported.batches
    }

    /// Writes the line if batches were committed since the last one and a second passed.
    fn tell(&mut self, totals: &RunTotals) {
        if !self.unsaid(totals) || self.said.elapsed() < Self::EVERY {
            return;
        }
        let (now, then) = (totals, &self.reported);
        let (post, before) = (now.stats.post, then.stats.post);
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            batches = now.batches - then.batches,
            records = now.records - then.records,
            inserted = post.inserted - before.inserted,
            duplicates = post.duplicates - before.duplicates,
            enriched = post.enriched - before.enriched,
            restated = post.restated - before.restated,
            stale = post.stale - before.stale,
            dead_letters = now.stats.dead_letters - then.stats.dead_letters,
            drift_alerts = now.stats.drift_alerts - then.stats.drift_alerts,
            records_so_far = now.records,
            records_per_second = (now.records as f64 / seconds).round() as u64,
            "batches committed"
        );
        self.said = Instant::now();
        self.reported = *totals;
    }
}

/// Everything the loop needs.
pub struct BatchLoop<'a> {
    /// Settings.
    pub args: &'a RunArgs,
    /// The ledger.
    pub pool: PgPool,
    /// Decoder for every framing.
    pub decoder: &'a LineDecoder,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// What `/readyz` reports.
    pub readiness: &'a Readiness,
    /// Wakes the outbox relay after a commit that wrote dead letters.
    pub outbox: &'a Notify,
    /// Drift alert settings.
    pub drift: &'a DriftSettings,
    /// Mirrors committed offsets into Kafka for lag tools.
    pub mirror: OffsetMirror,
    /// Stops the loop.
    pub shutdown: CancellationToken,
}

/// What just happened that may make the batch in hand due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// A record was taken into the batch.
    RecordTaken,
    /// A partition was read to its end.
    CaughtUp,
    /// The batch reached the commit floor after a partition's end was deferred to it.
    FloorReached,
    /// The batch's linger time passed.
    LingerElapsed,
    /// Partitions are being revoked: the callback waits for the batch to be settled.
    Revoked,
    /// The consumer thread failed.
    Fatal,
    /// The loop is stopping.
    Stopping,
}

/// The batch in hand and what is queued behind it.
#[derive(Debug, Clone, Copy)]
struct BatchState {
    /// Records in the batch.
    records: usize,
    /// Their bytes.
    bytes: usize,
    /// Whether more events wait in the channel.
    events_queued: bool,
    /// Time since the batch's first record.
    age: Duration,
}

/// Limits a batch is held to.
#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    /// `--batch-size`.
    records: usize,
    /// Half the read-ahead budget: the poll thread waits for the other half.
    bytes: usize,
    /// `--commit-floor-ms`: the youngest a batch is committed at a partition's end.
    floor: Duration,
}

/// The one place that decides whether the batch in hand is committed now.
///
/// - Full (by count or by bytes): commit, whatever else is queued.
/// - A partition reached its end and nothing else is queued: the stream is trickling, and
///   waiting out the linger time would only add latency. Not while events are queued, and
///   not before the batch is `floor` old: a trickle ends nearly every fetch at a
///   partition's end, and committing at each would make one small transaction per fetch (a
///   producer lingering 1 ms sends a fetch's worth every millisecond). The loop then
///   commits when the floor is reached. Under load no partition reaches its end.
/// - The floor or the linger time passed, a revocation, a fatal error, stopping: commit
///   what is there.
fn flush_now(trigger: Trigger, state: BatchState, limits: BatchLimits) -> bool {
    if state.records == 0 {
        return false;
    }
    match trigger {
        Trigger::RecordTaken => state.records >= limits.records || state.bytes >= limits.bytes,
        Trigger::CaughtUp => !state.events_queued && state.age >= limits.floor,
        Trigger::FloorReached
        | Trigger::LingerElapsed
        | Trigger::Revoked
        | Trigger::Fatal
        | Trigger::Stopping => true,
    }
}

/// How the loop ended.
enum Flush {
    Done,
    ShutdownDuringRetry,
}

impl BatchLoop<'_> {
    fn target(&self) -> BatchTarget<'_> {
        BatchTarget {
            group: &self.args.group,
            dlq_topic: &self.args.dlq_topic,
            drift: self.drift,
        }
    }

    /// Runs until shutdown, idle exit or a fatal error.
    pub async fn run(&self, mut events: mpsc::Receiver<SourceEvent>) -> anyhow::Result<RunTotals> {
        let mut positions = Positions::default();
        let mut pending_bytes: usize = 0;
        let limits = BatchLimits {
            records: self.args.batch_size,
            bytes: self.args.read_ahead_mib.max(1) as usize * 512 * 1024,
            floor: self.args.commit_floor(),
        };
        // High watermarks of owned partitions as last seen, for the lag metric.
        let mut highs: HashMap<TopicPartition, i64> = HashMap::new();
        let mut pending: Vec<SourceMessage> = Vec::with_capacity(self.args.batch_size);
        let mut totals = RunTotals::default();
        let mut batch_started = Instant::now();
        let mut last_activity = Instant::now();
        let idle_limit = self.args.exit_when_idle_ms.map(Duration::from_millis);
        let linger = self.args.linger();
        // Set when a partition's end found the batch younger than the floor: it is then
        // committed when it reaches the floor (or fills) instead of waiting out the linger.
        let mut due_at_floor = false;
        let mut batch_log = BatchLog::new();
        loop {
            batch_log.tell(&totals);
            let (deadline, on_deadline) = if due_at_floor {
                (
                    batch_started + limits.floor.min(linger),
                    Trigger::FloorReached,
                )
            } else {
                (batch_started + linger, Trigger::LingerElapsed)
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            let state = |pending: &Vec<SourceMessage>,
                         bytes: usize,
                         events: &mpsc::Receiver<SourceEvent>,
                         started: Instant| BatchState {
                records: pending.len(),
                bytes,
                events_queued: !events.is_empty(),
                age: started.elapsed(),
            };
            let idle_tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                event = events.recv() => {
                    let Some(event) = event else {
                        anyhow::bail!("the Kafka consumer thread stopped unexpectedly");
                    };
                    // The periodic watermarks are bookkeeping, not activity: they must not
                    // keep an idle batch job alive.
                    if !matches!(event, SourceEvent::Watermarks(_)) {
                        last_activity = Instant::now();
                    }
                    match event {
                        SourceEvent::Assigned(list) => {
                            for assignment in &list {
                                positions.assign(assignment);
                                // Anything still buffered from an earlier ownership (a
                                // revocation that missed its deadline) is read again from
                                // the new start.
                                pending.retain(|m| m.tp() != assignment.partition);
                            }
                            self.metrics.record_assigned(positions.owned());
                            self.readiness.joined();
                        }
                        SourceEvent::Watermarks(list) => {
                            for end in list {
                                highs.insert(end.partition, end.high);
                            }
                            for (tp, lag) in positions.lag(&highs) {
                                self.metrics.record_lag(tp, lag);
                            }
                        }
                        SourceEvent::Record(message) => {
                            if positions.accept(&message) {
                                if pending.is_empty() {
                                    batch_started = Instant::now();
                                    pending_bytes = 0;
                                    due_at_floor = false;
                                }
                                pending_bytes += message.size();
                                pending.push(message);
                                if flush_now(Trigger::RecordTaken, state(&pending, pending_bytes, &events, batch_started), limits)
                                    && let Flush::ShutdownDuringRetry = self.flush(&mut positions, &mut pending, &mut totals).await? {
                                        break;
                                    }
                            }
                        }
                        SourceEvent::CaughtUp(list) => {
                            positions.caught_up(&list);
                            for end in &list {
                                highs.insert(end.partition.clone(), end.high);
                            }
                            let now = state(&pending, pending_bytes, &events, batch_started);
                            if flush_now(Trigger::CaughtUp, now, limits) {
                                if let Flush::ShutdownDuringRetry = self.flush(&mut positions, &mut pending, &mut totals).await? {
                                    break;
                                }
                            } else if now.records > 0 && !now.events_queued {
                                due_at_floor = true;
                            }
                        }
                        SourceEvent::Revoked { partitions, done } => {
                            // Settle what is buffered (the records of the revoked partitions
                            // included) while this instance still owns them.
                            let outcome = if flush_now(Trigger::Revoked, state(&pending, pending_bytes, &events, batch_started), limits) {
                                self.flush(&mut positions, &mut pending, &mut totals).await?
                            } else {
                                Flush::Done
                            };
                            for tp in &partitions {
                                positions.revoke(tp);
                                highs.remove(tp);
                            }
                            self.metrics.record_revoked(&partitions, positions.owned());
                            pending.retain(|m| positions.owns(&m.tp()));
                            let _ = done.send(());
                            if let Flush::ShutdownDuringRetry = outcome {
                                break;
                            }
                        }
                        SourceEvent::Fatal(message) => {
                            if flush_now(Trigger::Fatal, state(&pending, pending_bytes, &events, batch_started), limits) {
                                self.flush(&mut positions, &mut pending, &mut totals).await?;
                            }
                            anyhow::bail!(message);
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !pending.is_empty() => {
                    if flush_now(on_deadline, state(&pending, pending_bytes, &events, batch_started), limits)
                        && let Flush::ShutdownDuringRetry = self.flush(&mut positions, &mut pending, &mut totals).await? {
                        break;
                    }
                }
                _ = idle_tick, if idle_limit.is_some() || batch_log.unsaid(&totals) => {
                    if let Some(limit) = idle_limit
                        && pending.is_empty()
                        && positions.all_caught_up()
                        && last_activity.elapsed() >= limit
                    {
                        tracing::info!("every partition caught up and idle; exiting (--exit-when-idle-ms)");
                        break;
                    }
                }
            }
        }
        let stopping = flush_now(
            Trigger::Stopping,
            BatchState {
                records: pending.len(),
                bytes: pending_bytes,
                events_queued: false,
                age: batch_started.elapsed(),
            },
            limits,
        );
        if stopping && !self.shutdown.is_cancelled() {
            self.flush(&mut positions, &mut pending, &mut totals)
                .await?;
        } else if !pending.is_empty() {
            // Stopping: finish the batch in hand if the database answers at once; otherwise
            // abandon it (nothing of it was acknowledged, the next run reads it again).
            let outcome = self
                .try_commit_once(&mut positions, &mut pending, &mut totals)
                .await;
            if let Err(err) = outcome {
                tracing::warn!(error = %err, records = pending.len(), "abandoning the batch in hand on shutdown");
            }
        }
        Ok(totals)
    }

    /// Commits the pending records, retrying through outages and fences until they are
    /// durable (or shutdown is asked for during a retry: then nothing is acknowledged).
    async fn flush(
        &self,
        positions: &mut Positions,
        pending: &mut Vec<SourceMessage>,
        totals: &mut RunTotals,
    ) -> anyhow::Result<Flush> {
        let mut backoff = Backoff::default();
        while !pending.is_empty() {
            match self.commit_pending(positions, pending, totals).await {
                Ok(()) => {}
                Err(Failure::Retry(unavailable)) => {
                    let wait = backoff.next_delay();
                    self.metrics
                        .record_retry(&unavailable.to_string(), wait, backoff.attempts());
                    tokio::select! {
                        _ = self.shutdown.cancelled() => {
                            tracing::warn!(records = pending.len(), "stopping during a retry; the batch is left for the next run");
                            pending.clear();
                            return Ok(Flush::ShutdownDuringRetry);
                        }
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(Failure::Fatal(err)) => return Err(err),
            }
        }
        Ok(Flush::Done)
    }

    /// One attempt, used at shutdown.
    async fn try_commit_once(
        &self,
        positions: &mut Positions,
        pending: &mut Vec<SourceMessage>,
        totals: &mut RunTotals,
    ) -> anyhow::Result<()> {
        for _ in 0..3 {
            match self.commit_pending(positions, pending, totals).await {
                Ok(()) if pending.is_empty() => return Ok(()),
                Ok(()) => continue,
                Err(Failure::Retry(unavailable)) => return Err(unavailable.into()),
                Err(Failure::Fatal(err)) => return Err(err),
            }
        }
        Ok(())
    }

    /// Builds and commits a batch of the pending records. On success `pending` is empty;
    /// after a fence it holds what is still this instance's to write.
    async fn commit_pending(
        &self,
        positions: &mut Positions,
        pending: &mut Vec<SourceMessage>,
        totals: &mut RunTotals,
    ) -> Result<(), Failure> {
        // One span per batch attempt: its partitions and offset ranges, and what it did.
        let span = tracing::info_span!(
            "batch",
            records = pending.len(),
            offsets = %offset_ranges(pending),
            outcome = tracing::field::Empty,
        );
        self.commit_pending_in(positions, pending, totals, &span)
            .instrument(span.clone())
            .await
    }

    async fn commit_pending_in(
        &self,
        positions: &mut Positions,
        pending: &mut Vec<SourceMessage>,
        totals: &mut RunTotals,
        span: &tracing::Span,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        // Lanes: the partitions split into groups, each its own transaction on its own
        // connection, committed at once (PostgreSQL runs a transaction on one core). A
        // partition's records never span two lanes, so each transaction still moves only
        // the offsets of the records whose effects it writes.
        let lanes = sort_into_lanes(pending, usize::from(self.args.lanes));
        let mut built = Vec::with_capacity(lanes.len());
        for lane in &lanes {
            let records = &pending[lane.clone()];
            let advances = positions.advances(records.iter());
            let batch = build_batch(
                self.decoder,
                self.args.catalog_topic(),
                self.args.summaries_topic(),
                records,
                advances.clone(),
            )
            .await
            .map_err(Failure::Retry)?;
            built.push((advances, batch));
        }
        let build_time = started.elapsed();
        let outcomes = futures::future::join_all(
            built
                .iter()
                .map(|(_, batch)| ledger::commit_batch(&self.pool, self.target(), batch)),
        )
        .await;
        tracing::debug!(
            records = pending.len(),
            lanes = lanes.len(),
            build_ms = build_time.as_millis() as u64,
            commit_ms = (started.elapsed() - build_time).as_millis() as u64,
            "batch attempted"
        );
        let mut settled: Vec<TopicPartition> = Vec::new();
        let mut fenced_lanes: Vec<Vec<TopicPartition>> = Vec::new();
        let mut failure: Option<DbFailure> = None;
        let mut described: Vec<String> = Vec::new();
        for ((lane, (advances, batch)), outcome) in lanes.iter().zip(&built).zip(outcomes) {
            match outcome {
                Ok(CommitOutcome::Committed(stats)) => {
                    described.push(format!(
                        "committed: inserted={} duplicates={} enriched={} restated={} stale={} dead_letters={} drift_alerts={}",
                        stats.post.inserted,
                        stats.post.duplicates,
                        stats.post.enriched,
                        stats.post.restated,
                        stats.post.stale,
                        stats.dead_letters,
                        stats.drift_alerts
                    ));
                    positions.committed(advances);
                    self.mirror.mirror(
                        advances
                            .iter()
                            .map(|a| (a.partition.clone(), a.next))
                            .collect(),
                    );
                    settled.extend(advances.iter().map(|a| a.partition.clone()));
                    totals.add(lane.len() as u64, &stats);
                    self.metrics.record_batch_committed(
                        lane.len(),
                        &stats,
                        &batch.lines,
                        &batch.dead_letters,
                        batch.summaries.len(),
                        started.elapsed(),
                    );
                    if stats.dead_letters > 0 || stats.drift_alerts > 0 {
                        self.outbox.notify_one();
                    }
                }
                Ok(CommitOutcome::Fenced(partitions)) => {
                    described.push("fenced".to_string());
                    fenced_lanes.push(partitions);
                }
                Err(err) => {
                    described.push(format!("failed: {err}"));
                    failure.get_or_insert(err);
                }
            }
        }
        span.record("outcome", tracing::field::display(described.join("; ")));
        // Replacements of reports whose newer version may now be complete: after every lane
        // committed, so this instance's lanes see each other's rows (see report.rs).
        let touched: std::collections::HashSet<report::ReportRef> = built
            .iter()
            .flat_map(|(_, batch)| ledger::touched_reports(batch))
            .collect();
        match report::settle_replacements(&self.pool, Some(&touched)).await {
            Ok(0) => {}
            Ok(reversed) => tracing::info!(
                reversed,
                "reversed lines that a newer version of their report no longer has"
            ),
            // Committed data is not at stake: the summaries stay pending, and the next batch
            // of the report (or the next start) settles them.
            Err(err) => {
                tracing::warn!(error = %err, "could not settle report replacements; will retry")
            }
        }
        pending.retain(|m| !settled.contains(&m.tp()));
        for partitions in fenced_lanes {
            let stored = offsets::load(&self.pool, &self.args.group, &partitions)
                .await
                .map_err(Failure::from_db)?;
            for tp in &partitions {
                let now = stored.get(tp).copied();
                let floor = positions.fenced(tp, now);
                pending.retain(|m| {
                    m.tp() != *tp
                        || (positions.owns(tp) && floor.is_none_or(|f| m.source.offset >= f))
                });
            }
            self.metrics.record_fenced(&partitions);
        }
        // The lanes that committed stay committed; the others' records are tried again.
        match failure {
            Some(err) => Err(Failure::from_db(err)),
            None => Ok(()),
        }
    }
}

/// Orders `pending` by lane and returns each lane's range: partitions are dealt to at most
/// `lanes` lanes, the busiest partition first to the least loaded lane. Records keep their
/// order within a partition.
fn sort_into_lanes(pending: &mut [SourceMessage], lanes: usize) -> Vec<std::ops::Range<usize>> {
    let mut counts: HashMap<TopicPartition, usize> = HashMap::new();
    for message in pending.iter() {
        *counts.entry(message.tp()).or_default() += 1;
    }
    let mut partitions: Vec<(TopicPartition, usize)> = counts.into_iter().collect();
    // Busiest first; ties by name, so the split is the same for the same batch.
    partitions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut load = vec![0usize; lanes.clamp(1, partitions.len().max(1))];
    let mut lane_of: HashMap<TopicPartition, usize> = HashMap::new();
    for (tp, count) in partitions {
        let (lane, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        load[lane] += count;
        lane_of.insert(tp, lane);
    }
    pending.sort_by_key(|m| lane_of.get(&m.tp()).copied().unwrap_or(0));
    let mut ranges = Vec::with_capacity(load.len());
    let mut start = 0;
    for records in load {
        if records > 0 {
            ranges.push(start..start + records);
        }
        start += records;
    }
    ranges
}

/// `topic[partition] first..last` of each partition in the batch, for its span.
fn offset_ranges(records: &[SourceMessage]) -> String {
    let mut ranges: std::collections::BTreeMap<TopicPartition, (i64, i64)> =
        std::collections::BTreeMap::new();
    for message in records {
        let range = ranges
            .entry(message.tp())
            .or_insert((message.source.offset, message.source.offset));
        range.0 = range.0.min(message.source.offset);
        range.1 = range.1.max(message.source.offset);
    }
    ranges
        .iter()
        .map(|(tp, (first, last))| format!("{tp} {first}..{last}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why an attempt failed: try again later, or stop.
enum Failure {
    Retry(Unavailable),
    Fatal(anyhow::Error),
}

impl Failure {
    fn from_db(err: DbFailure) -> Self {
        match err {
            DbFailure::Retryable(_) => Failure::Retry(Unavailable {
                dependency: "PostgreSQL",
                reason: err.to_string(),
            }),
            other => Failure::Fatal(
                anyhow::Error::new(other).context("the ledger database refused the batch"),
            ),
        }
    }
}

impl SourceMessage {
    /// The record's topic-partition.
    pub fn tp(&self) -> crate::record::TopicPartition {
        self.source.partition()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::record::{RecordBytes, SourceRecord};

    fn message(partition: i32, offset: i64) -> SourceMessage {
        SourceMessage {
            source: SourceRecord {
                topic: Arc::from("t"),
                partition,
                offset,
                timestamp: Utc::now(),
            },
            record: Arc::new(RecordBytes::default()),
            held: None,
        }
    }

    #[test]
    fn the_batch_is_committed_exactly_when_one_rule_says_so() {
        let limits = BatchLimits {
            records: 3,
            bytes: 1_000,
            floor: Duration::from_millis(5),
        };
        let old = Duration::from_millis(5);
        let young = Duration::from_millis(4);
        let state = |records, bytes, events_queued, age| BatchState {
            records,
            bytes,
            events_queued,
            age,
        };
        // An empty batch is never committed, whatever happened.
        for trigger in [
            Trigger::RecordTaken,
            Trigger::CaughtUp,
            Trigger::FloorReached,
            Trigger::LingerElapsed,
            Trigger::Revoked,
            Trigger::Fatal,
            Trigger::Stopping,
        ] {
            assert!(
                !flush_now(trigger, state(0, 0, false, old), limits),
                "{trigger:?}"
            );
        }
        // Full by count or by bytes, even with events queued, however young.
        assert!(!flush_now(
            Trigger::RecordTaken,
            state(2, 999, true, old),
            limits
        ));
        assert!(flush_now(
            Trigger::RecordTaken,
            state(3, 10, true, young),
            limits
        ));
        assert!(flush_now(
            Trigger::RecordTaken,
            state(1, 1_000, true, young),
            limits
        ));
        // A partition's end commits only when nothing else is queued (a trickle), and only
        // a batch at least as old as the floor: a younger one waits for FloorReached.
        assert!(!flush_now(
            Trigger::CaughtUp,
            state(1, 10, true, old),
            limits
        ));
        assert!(!flush_now(
            Trigger::CaughtUp,
            state(1, 10, false, young),
            limits
        ));
        assert!(flush_now(
            Trigger::CaughtUp,
            state(1, 10, false, old),
            limits
        ));
        // The floor or the linger time, a revocation, a fatal error and stopping commit
        // what is there.
        for trigger in [
            Trigger::FloorReached,
            Trigger::LingerElapsed,
            Trigger::Revoked,
            Trigger::Fatal,
            Trigger::Stopping,
        ] {
            assert!(
                flush_now(trigger, state(1, 10, true, young), limits),
                "{trigger:?}"
            );
        }
    }

    #[test]
    fn lanes_keep_each_partition_whole_and_in_order_and_balance_the_load() {
        // Partition 0: 5 records, 1: 3, 2: 2, 3: 1, interleaved.
        let layout = [0, 1, 0, 2, 0, 1, 3, 0, 2, 1, 0];
        let mut pending: Vec<SourceMessage> = layout
            .iter()
            .enumerate()
            .map(|(i, p)| message(*p, i as i64))
            .collect();
        let lanes = sort_into_lanes(&mut pending, 2);
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes.iter().map(|l| l.len()).sum::<usize>(), layout.len());
        let lane_partitions: Vec<Vec<i32>> = lanes
            .iter()
            .map(|l| {
                let mut ps: Vec<i32> = pending[l.clone()]
                    .iter()
                    .map(|m| m.source.partition)
                    .collect();
                ps.dedup();
                ps.sort_unstable();
                ps.dedup();
                ps
            })
            .collect();
        // Busiest first to the least loaded lane: 0 → A(5), 1 → B(3), 2 → B(5), 3 → A(6).
        assert_eq!(lane_partitions, vec![vec![0, 3], vec![1, 2]]);
        for p in 0..4 {
            let offsets: Vec<i64> = pending
                .iter()
                .filter(|m| m.source.partition == p)
                .map(|m| m.source.offset)
                .collect();
            assert!(
                offsets.is_sorted(),
                "partition {p} keeps its order: {offsets:?}"
            );
        }
    }

    #[test]
    fn one_lane_or_one_partition_is_one_transaction() {
        let mut pending: Vec<SourceMessage> = (0..4).map(|i| message(i % 2, i.into())).collect();
        assert_eq!(sort_into_lanes(&mut pending, 1), vec![0..4]);
        let mut single: Vec<SourceMessage> = (0..3).map(|i| message(7, i)).collect();
        assert_eq!(sort_into_lanes(&mut single, 4), vec![0..3]);
        let mut none: Vec<SourceMessage> = Vec::new();
        assert!(sort_into_lanes(&mut none, 2).is_empty());
    }
}
