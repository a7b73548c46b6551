//! The pipeline's metrics, one method per fact. Every method logs what it counts (per
//! batch, never per record: a backlog with 3% invalid records must not write a log line
//! for each; their detail lives in quarantine and on the dead-letter topic).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::drift::detect::ALL_KINDS;
use crate::ledger::{BatchStats, DeadLetter, LineToPost};
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
    latency: Histogram,
    lag: IntGaugeVec,
    assigned: IntGauge,
    rebalances: IntCounterVec,
    outbox_unpublished: IntGauge,
    outbox_oldest_age: Gauge,
    publish_errors: IntCounterVec,
    drift_alerts: IntCounterVec,
    catalog_entries: IntCounterVec,
    report_summaries: IntCounter,
    last_commit: Gauge,
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
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "royalty_ingest_latency_seconds",
                "End-to-end latency of ledgered lines: Kafka record timestamp to batch commit",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                3600.0,
            ]),
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "royalty_consumer_lag_records",
                "Records not yet ingested per assigned partition: high watermark minus stored next offset",
            ),
            &["topic", "partition"],
        )?;
        let assigned = IntGauge::new(
            "royalty_assigned_partitions",
            "Partitions this instance owns",
        )?;
        let rebalances = IntCounterVec::new(
            Opts::new(
                "royalty_rebalances_total",
                "Rebalance events: partitions assigned or revoked",
            ),
            &["event"],
        )?;
        let outbox_unpublished = IntGauge::new(
            "royalty_outbox_unpublished",
            "Outbox messages (dead letters, drift alerts) not yet published",
        )?;
        let outbox_oldest_age = Gauge::new(
            "royalty_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox message (0 when none)",
        )?;
        let publish_errors = IntCounterVec::new(
            Opts::new(
                "royalty_outbox_publish_errors_total",
                "Outbox messages the broker refused (retried later), by topic",
            ),
            &["topic"],
        )?;
        let drift_alerts = IntCounterVec::new(
            Opts::new(
                "royalty_drift_alerts_total",
                "Drift alerts raised (distinct drifts seen for the first time), by kind",
            ),
            &["kind"],
        )?;
        let catalog_entries = IntCounterVec::new(
            Opts::new(
                "royalty_catalog_entries_total",
                "Catalog entries applied from the catalog topic: created, superseded, unchanged",
            ),
            &["outcome"],
        )?;
        let report_summaries = IntCounter::new(
            "royalty_report_summaries_total",
            "Report control totals applied from the summaries topic",
        )?;
        let last_commit = Gauge::new(
            "royalty_last_commit_timestamp_seconds",
            "When this instance last committed a batch (Unix time)",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("royalty_build_info", "Always 1; the version as a label"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for kind in ALL_KINDS {
            drift_alerts.with_label_values(&[kind.as_str()]);
        }
        for event in ["assigned", "revoked"] {
            rebalances.with_label_values(&[event]);
        }
        for collector in [
            Box::new(latency.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(lag.clone()),
            Box::new(assigned.clone()),
            Box::new(rebalances.clone()),
            Box::new(outbox_unpublished.clone()),
            Box::new(outbox_oldest_age.clone()),
            Box::new(publish_errors.clone()),
            Box::new(drift_alerts.clone()),
            Box::new(catalog_entries.clone()),
            Box::new(report_summaries.clone()),
            Box::new(last_commit.clone()),
            Box::new(build_info),
        ] {
            registry.register(collector)?;
        }
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
            latency,
            lag,
            assigned,
            rebalances,
            outbox_unpublished,
            outbox_oldest_age,
            publish_errors,
            drift_alerts,
            catalog_entries,
            report_summaries,
            last_commit,
        })
    }

    /// A batch is durable: counts, the end-to-end latency of its lines, and one log line
    /// (dead letters counted per class; each record's detail is in quarantine).
    pub fn record_batch_committed(
        &self,
        records: usize,
        stats: &BatchStats,
        lines: &[LineToPost],
        refused: &[DeadLetter],
        summaries: usize,
        elapsed: Duration,
    ) {
        let now = Utc::now();
        self.records.inc_by(records as u64);
        self.batches.inc();
        self.batch_seconds.observe(elapsed.as_secs_f64());
        self.last_commit.set(now.timestamp_millis() as f64 / 1000.0);
        for line in lines {
            let age = (now - line.source.timestamp).num_milliseconds().max(0) as f64 / 1000.0;
            self.latency.observe(age);
        }
        for (outcome, n) in [
            ("inserted", stats.post.inserted),
            ("duplicate", stats.post.duplicates),
            ("restated", stats.post.restated),
            ("stale", stats.post.stale),
            ("enriched", stats.post.enriched),
        ] {
            self.lines.with_label_values(&[outcome]).inc_by(n);
        }
        let mut drift_kinds: Vec<String> = Vec::new();
        for (kind, n) in ALL_KINDS.iter().zip(stats.drift_alerts_by_kind) {
            if n > 0 {
                self.drift_alerts
                    .with_label_values(&[kind.as_str()])
                    .inc_by(n);
                drift_kinds.push(format!("{}={n}", kind.as_str()));
            }
        }
        // One line per batch, however many alerts: a report of new releases once logged
        // a line per unknown track.
        if !drift_kinds.is_empty() {
            tracing::info!(
                drift_alerts = stats.drift_alerts,
                kinds = %drift_kinds.join(" "),
                unknown_tracks = stats.unknown_tracks,
                "drift alerts raised in this batch (unknown tracks: `royalty-ingest alerts unknown-tracks`)"
            );
        }
        for (outcome, n) in [
            ("created", stats.catalog.created),
            ("superseded", stats.catalog.superseded),
            ("unchanged", stats.catalog.unchanged),
        ] {
            if n > 0 {
                self.catalog_entries.with_label_values(&[outcome]).inc_by(n);
            }
        }
        self.report_summaries.inc_by(summaries as u64);
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        for letter in refused {
            self.dead_letters
                .with_label_values(&[letter.stage, letter.class.as_str()])
                .inc();
            *classes
                .entry(format!("{}/{}", letter.stage, letter.class))
                .or_default() += 1;
            tracing::debug!(
                stage = letter.stage,
                class = %letter.class,
                source = %letter.source,
                reason = %letter.reason,
                "record dead-lettered"
            );
        }
        if stats.poisoned > 0 {
            self.dead_letters
                .with_label_values(&["ledger", "database_rejected"])
                .inc_by(stats.poisoned);
            *classes
                .entry("ledger/database_rejected".into())
                .or_default() += stats.poisoned;
        }
        if !classes.is_empty() {
            let counts: Vec<String> = classes.iter().map(|(c, n)| format!("{c}={n}")).collect();
            tracing::info!(
                dead_letters = stats.dead_letters,
                classes = %counts.join(" "),
                "records dead-lettered in this batch (details: quarantine, `royalty-ingest dlq list`)"
            );
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

    /// Partitions were assigned (`owned`: how many this instance owns now).
    pub fn record_assigned(&self, owned: usize) {
        self.rebalances.with_label_values(&["assigned"]).inc();
        self.assigned.set(owned as i64);
    }

    /// Partitions were revoked; their lag is no longer this instance's to report.
    pub fn record_revoked(&self, partitions: &[TopicPartition], owned: usize) {
        self.rebalances.with_label_values(&["revoked"]).inc();
        self.assigned.set(owned as i64);
        for tp in partitions {
            let partition = tp.partition.to_string();
            let _ = self
                .lag
                .remove_label_values(&[&*tp.topic, partition.as_str()]);
        }
    }

    /// Records not yet ingested on a partition.
    pub fn record_lag(&self, partition: &TopicPartition, lag: i64) {
        let number = partition.partition.to_string();
        self.lag
            .with_label_values(&[&*partition.topic, number.as_str()])
            .set(lag.max(0));
    }

    /// The outbox backlog as the relay last counted it.
    pub fn record_outbox_backlog(&self, unpublished: i64, oldest_age: Duration) {
        self.outbox_unpublished.set(unpublished);
        self.outbox_oldest_age.set(oldest_age.as_secs_f64());
    }

    /// The age of the oldest unpublished outbox message, as last counted.
    pub fn outbox_oldest_age(&self) -> Duration {
        Duration::from_secs_f64(self.outbox_oldest_age.get().max(0.0))
    }

    /// The broker refused outbox messages (they stay and are retried).
    pub fn record_publish_errors(&self, topics: &[&str]) {
        for topic in topics {
            self.publish_errors.with_label_values(&[topic]).inc();
        }
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
