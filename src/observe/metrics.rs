//! The pipeline's metrics, one method per fact. Every method logs what it counts.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::ledger::{BatchStats, DeadLetter};
use crate::record::TopicPartition;

/// Counters and histograms of one process, in their own registry.
pub struct Metrics {
    registry: Registry,
    records: IntCounter,
    lines: IntCounterVec,
    dead_letters: IntCounterVec,
    batches: IntCounter,
    batch_seconds: Histogram,
    fenced: IntCounter,
    retries: IntCounter,
    published: IntCounterVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let records = IntCounter::new(
            "royalty_records_consumed_total",
            "Kafka records taken into committed batches",
        )?;
        let lines = IntCounterVec::new(
            Opts::new(
                "royalty_ledger_lines_total",
                "Ledger effect of valid lines: inserted, duplicate, enriched, restated, stale",
            ),
            &["outcome"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "royalty_dead_letters_total",
                "Records refused, by stage and class",
            ),
            &["stage", "class"],
        )?;
        let batches = IntCounter::new(
            "royalty_batches_committed_total",
            "Batch transactions committed",
        )?;
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "royalty_batch_commit_seconds",
                "Time to decode, validate and commit a batch",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let fenced = IntCounter::new(
            "royalty_offset_fences_total",
            "Batches rolled back because another instance moved a partition's offset",
        )?;
        let retries = IntCounter::new(
            "royalty_batch_retries_total",
            "Batch attempts retried because a dependency was unavailable",
        )?;
        let published = IntCounterVec::new(
            Opts::new(
                "royalty_outbox_published_total",
                "Outbox messages published, by topic",
            ),
            &["topic"],
        )?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(lines.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(batches.clone()))?;
        registry.register(Box::new(batch_seconds.clone()))?;
        registry.register(Box::new(fenced.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(published.clone()))?;
        Ok(Self {
            registry,
            records,
            lines,
            dead_letters,
            batches,
            batch_seconds,
            fenced,
            retries,
            published,
        })
    }

    /// A batch is durable.
    pub fn record_batch_committed(
        &self,
        records: usize,
        stats: &BatchStats,
        refused: &[DeadLetter],
        elapsed: Duration,
    ) {
        self.records.inc_by(records as u64);
        self.batches.inc();
        self.batch_seconds.observe(elapsed.as_secs_f64());
        self.lines
            .with_label_values(&["inserted"])
            .inc_by(stats.post.inserted);
        self.lines
            .with_label_values(&["duplicate"])
            .inc_by(stats.post.duplicates);
        self.lines
            .with_label_values(&["restated"])
            .inc_by(stats.post.restated);
        self.lines
            .with_label_values(&["stale"])
            .inc_by(stats.post.stale);
        self.lines
            .with_label_values(&["enriched"])
            .inc_by(stats.post.enriched);
        for letter in refused {
            self.dead_letters
                .with_label_values(&[letter.stage, letter.class.as_str()])
                .inc();
            tracing::info!(
                stage = letter.stage,
                class = %letter.class,
                topic = %letter.source.topic,
                partition = letter.source.partition,
                offset = letter.source.offset,
                reason = %letter.reason,
                "record dead-lettered"
            );
        }
        if stats.poisoned > 0 {
            self.dead_letters
                .with_label_values(&["ledger", "database_rejected"])
                .inc_by(stats.poisoned);
        }
        tracing::debug!(
            records,
            inserted = stats.post.inserted,
            duplicates = stats.post.duplicates,
            restated = stats.post.restated,
            stale = stats.post.stale,
            dead_letters = stats.dead_letters,
            elapsed_ms = elapsed.as_millis() as u64,
            "batch committed"
        );
    }

    /// A batch was rolled back because partitions' offsets moved under it.
    pub fn record_fenced(&self, partitions: &[TopicPartition]) {
        self.fenced.inc();
        tracing::warn!(partitions = ?partitions, "offsets moved under this instance (fenced); reloaded them");
    }

    /// A batch attempt failed on a dependency and will be retried.
    pub fn record_retry(&self, reason: &str, wait: Duration, attempt: u32) {
        self.retries.inc();
        tracing::warn!(
            reason,
            attempt,
            retry_in_ms = wait.as_millis() as u64,
            "batch not committed; retrying"
        );
    }

    /// Outbox messages were published.
    pub fn record_outbox_published(&self, topics: &[&str]) {
        for topic in topics {
            self.published.with_label_values(&[topic]).inc();
        }
        tracing::debug!(count = topics.len(), "outbox messages published");
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(err) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %err, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}
