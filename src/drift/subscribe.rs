//! `royalty-ingest alerts tail`: follows the drift alerts topic for the people who act on
//! drift. One readable line per alert (or one JSON object with `--json`), repeats of a
//! publication dropped by their stable id, filters by DSP and kind, its own consumer group,
//! a clean exit on Ctrl-C.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::avro::SchemaStore;
use crate::config::KafkaArgs;
use crate::kafka::client_config;

use super::alert::DriftAlert;
use super::detect::{ALL_KINDS, DriftKind};

/// Settings of `royalty-ingest alerts tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic of the drift alerts.
    #[arg(
        long,
        env = "ROYALTY_ALERTS_TOPIC",
        default_value = "catalog.drift.alerts"
    )]
    pub alerts_topic: String,

    /// Consumer group of this subscriber (where it resumes next time).
    #[arg(
        long,
        env = "ROYALTY_ALERTS_GROUP",
        default_value = "royalty-alerts-tail"
    )]
    pub group: String,

    /// Read every alert still on the topic, not only new ones (does not move the group).
    #[arg(long)]
    pub from_beginning: bool,

    /// One JSON object per line instead of readable text.
    #[arg(long)]
    pub json: bool,

    /// Only alerts first seen at this DSP (case-insensitive).
    #[arg(long)]
    pub dsp: Option<String>,

    /// Only alerts of this kind (repeatable): upc_mismatch, label_mismatch,
    /// artist_mismatch, unknown_isrc, catalog_upc_changed, catalog_label_changed,
    /// catalog_artist_changed.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Vec<DriftKind>,

    /// Exit after printing this many alerts.
    #[arg(long)]
    pub limit: Option<usize>,

    /// Exit when no alert arrived for this many milliseconds.
    #[arg(long)]
    pub idle_exit_ms: Option<u64>,
}

fn parse_kind(raw: &str) -> Result<DriftKind, String> {
    DriftKind::parse(raw.trim()).ok_or_else(|| {
        let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {raw:?}; one of {}", names.join(", "))
    })
}

impl TailArgs {
    fn wants(&self, alert: &DriftAlert) -> bool {
        let dsp_ok = self
            .dsp
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case(&alert.dsp_name));
        let kind_ok = self.kind.is_empty() || alert.kind().is_some_and(|k| self.kind.contains(&k));
        dsp_ok && kind_ok
    }
}

/// Follows the topic until Ctrl-C, the limit or the idle time.
pub async fn tail(args: &TailArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let mut config = client_config(&args.kafka);
    config
        .set("group.id", &args.group)
        .set("auto.offset.reset", "latest")
        .set(
            "enable.auto.commit",
            if args.from_beginning { "false" } else { "true" },
        );
    let consumer: StreamConsumer = config
        .create()
        .context("failed to create the alerts consumer")?;
    if args.from_beginning {
        let metadata = consumer
            .fetch_metadata(Some(&args.alerts_topic), Duration::from_secs(10))
            .with_context(|| {
                format!(
                    "cannot read the partitions of {} (is the broker up?)",
                    args.alerts_topic
                )
            })?;
        let mut assignment = TopicPartitionList::new();
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                assignment.add_partition_offset(topic.name(), partition.id(), Offset::Beginning)?;
            }
        }
        anyhow::ensure!(
            assignment.count() > 0,
            "topic {} does not exist yet (no alert was ever raised)",
            args.alerts_topic
        );
        consumer.assign(&assignment)?;
    } else {
        consumer
            .subscribe(&[&args.alerts_topic])
            .with_context(|| format!("cannot subscribe to {}", args.alerts_topic))?;
    }

    let mut seen: HashSet<String> = HashSet::new();
    let mut printed = 0usize;
    let idle = args.idle_exit_ms.map(Duration::from_millis);
    loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            return Ok(());
        }
        let next = async {
            match idle {
                Some(idle) => tokio::time::timeout(idle, consumer.recv()).await.ok(),
                None => Some(consumer.recv().await),
            }
        };
        let received = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            received = next => received,
        };
        let Some(received) = received else {
            return Ok(()); // idle
        };
        let message = match received {
            Ok(message) => message,
            Err(err) => {
                eprintln!("warning: {err}");
                continue;
            }
        };
        let alert = match DriftAlert::decode(&store, message.payload().unwrap_or_default()) {
            Ok(alert) => alert,
            Err(err) => {
                eprintln!(
                    "warning: skipping an unreadable alert at {}[{}]@{}: {err}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                continue;
            }
        };
        if !seen.insert(alert.alert_id.clone()) || !args.wants(&alert) {
            continue;
        }
        let line = if args.json {
            serde_json::to_string(&alert)?
        } else {
            readable(&alert)
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        printed += 1;
    }
}

/// One line a person can act on.
fn readable(alert: &DriftAlert) -> String {
    let mut line = format!("{} {} {}", alert.detected_at, alert.kind, alert.isrc);
    if let Some(expected) = &alert.expected {
        line.push_str(&format!(" catalog={expected}"));
    }
    if let Some(received) = &alert.received {
        line.push_str(&format!(" received={received}"));
    }
    line.push_str(&format!(" dsp={}", alert.dsp_name));
    if let Some(report) = &alert.report_id {
        line.push_str(&format!(" report={report}"));
    }
    if let Some(period) = &alert.report_period {
        line.push_str(&format!(" period={period}"));
    }
    if let Some(version) = alert.catalog_version_id {
        line.push_str(&format!(" catalog_version={version}"));
    }
    line.push_str(&format!(
        " first_seen={} id={}",
        alert.source, alert.alert_id
    ));
    line
}
