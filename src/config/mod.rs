//! One typed configuration for every command: flags, each with an environment variable,
//! and defaults that match `scripts/services`. librdkafka properties pass through as
//! `--kafka-property key=value` (repeatable) or `KAFKA_PROPERTIES="k=v,k=v"`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};

use crate::avro::{RegistryClient, SchemaStore};

pub mod file;

/// Where the broker is and the librdkafka properties to pass through.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long = "brokers",
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Extra librdkafka property for every client, `key=value` (repeatable), e.g.
    /// `security.protocol=SASL_SSL`. Comma-separated in the environment variable (whose
    /// value --help never shows: it may hold `sasl.password`).
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = parse_property
    )]
    pub properties: Vec<(String, String)>,
}

/// The PostgreSQL ledger.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL of the ledger (default: the local services' database,
    /// postgres://royalty:***@127.0.0.1:5432/royalty). --help never shows the value of the
    /// variable: it holds a password.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        hide_default_value = true,
        default_value = "postgres://royalty:royalty@127.0.0.1:5432/royalty"
    )]
    pub database_url: String,

    /// Read the database URL from this file instead (a mounted secret); its content wins
    /// over --database-url / DATABASE_URL.
    #[arg(long = "database-url-file", env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
}

impl DatabaseArgs {
    /// The URL to connect with: the file's content when --database-url-file is given.
    pub fn url(&self) -> anyhow::Result<String> {
        match &self.database_url_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .with_context(|| format!("cannot read the database URL from {}", path.display())),
            None => Ok(self.database_url.clone()),
        }
    }
}

/// The writer schemas records may name: local files and, optionally, a schema registry.
#[derive(Debug, Clone, Default, Args)]
pub struct SchemaArgs {
    /// Directory of writer schemas named `NAME.vN.avsc` (N = version, e.g.
    /// `royalty_line.v4.avsc`), every version a writer may still send; replaces the built-in
    /// royalty-line schemas. The built-in `CatalogUpdate` and `DriftAlert` records are added
    /// when the directory has none of its own (default: the schemas built into the binary).
    #[arg(long, env = "ROYALTY_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,

    /// Confluent-compatible schema registry URL, for records in the Confluent wire format.
    #[arg(long, env = "SCHEMA_REGISTRY_URL")]
    pub registry_url: Option<String>,
}

impl SchemaArgs {
    /// The local writer schemas: the directory's, or the ones built into the binary.
    pub fn store(&self) -> anyhow::Result<SchemaStore> {
        match &self.schemas_dir {
            Some(dir) => SchemaStore::load_dir(dir)
                .with_context(|| format!("cannot load --schemas-dir {}", dir.display())),
            None => SchemaStore::builtin().context("the built-in schemas do not load"),
        }
    }

    /// The registry client, when a URL is configured.
    pub fn registry(&self) -> anyhow::Result<Option<RegistryClient>> {
        Ok(self
            .registry_url
            .as_deref()
            .map(RegistryClient::new)
            .transpose()?)
    }
}

/// Where a partition with no stored offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartPolicy {
    /// From the oldest record the broker still holds (nothing is skipped).
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// Settings of `royalty-ingest run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Consumer group; also the key of this pipeline's rows in `consumer_offsets`.
    #[arg(long, env = "ROYALTY_GROUP", default_value = "royalty-ingest")]
    pub group: String,

    /// Topics carrying royalty lines (comma-separated).
    #[arg(
        long,
        env = "ROYALTY_TOPICS",
        value_delimiter = ',',
        default_value = "royalty.events.raw"
    )]
    pub topics: Vec<String>,

    /// Topic receiving refused records (dead letters).
    #[arg(long, env = "ROYALTY_DLQ_TOPIC", default_value = "royalty.events.dlq")]
    pub dlq_topic: String,

    /// Topic carrying master catalog updates (Avro `CatalogUpdate`); empty to not consume it.
    #[arg(long, env = "ROYALTY_CATALOG_TOPIC", default_value = "catalog.updates")]
    pub catalog_topic: String,

    /// Topic carrying report control totals (Avro `ReportSummary`, published by `produce`,
    /// compared with the ledger by `reconcile`); empty to not consume it.
    #[arg(
        long,
        env = "ROYALTY_SUMMARIES_TOPIC",
        default_value = "royalty.report.summaries"
    )]
    pub summaries_topic: String,

    /// Topic receiving drift alerts (Avro `DriftAlert`).
    #[arg(
        long,
        env = "ROYALTY_ALERTS_TOPIC",
        default_value = "catalog.drift.alerts"
    )]
    pub alerts_topic: String,

    /// Do not alert on ISRCs missing from the catalog (by default, once a catalog is
    /// loaded, an unknown ISRC is drift).
    #[arg(long, env = "ROYALTY_NO_UNKNOWN_ISRC_ALERTS", value_parser = BoolishValueParser::new())]
    pub no_unknown_isrc_alerts: bool,

    /// Most records in one batch.
    #[arg(long, env = "ROYALTY_BATCH_SIZE", default_value_t = 5000)]
    pub batch_size: usize,

    /// Transactions a batch is split into, by partition, committed at once on separate
    /// connections (each moves only its own partitions' offsets). PostgreSQL runs each on
    /// one core: 2 uses two; 1 commits a batch as one transaction.
    #[arg(long, env = "ROYALTY_LANES", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=8))]
    pub lanes: u16,

    /// Most MiB of records read from Kafka but not yet committed (queued and in the batch
    /// being built): reading waits beyond it, so memory stays flat under any backlog and any
    /// record size. A batch is also committed once it holds half of it.
    #[arg(long, env = "ROYALTY_READ_AHEAD_MIB", default_value_t = 128)]
    pub read_ahead_mib: u32,

    /// Largest record (key, value and headers) read, in KiB. A larger one is dead-lettered
    /// as `record_too_large` without being copied: its dead letter carries its size, the
    /// SHA-256 of its value and where it stays on the topic, not its bytes.
    #[arg(long, env = "ROYALTY_MAX_RECORD_KIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_record_kib: u32,

    /// How long a partly filled batch waits for more records, in milliseconds (it is
    /// committed at once when a partition was read to its end and nothing else is queued:
    /// a trickling stream waits for nobody).
    #[arg(long, env = "ROYALTY_LINGER_MS", default_value_t = 200)]
    pub linger_ms: u64,

    /// The youngest a batch is committed at a partition's end, in milliseconds. A producer
    /// with a short linger ends nearly every fetch at a partition's end; without a floor
    /// each fetch would be a transaction of its own. Adds at most this much latency.
    #[arg(long, env = "ROYALTY_COMMIT_FLOOR_MS", default_value_t = 5)]
    pub commit_floor_ms: u64,

    /// Where a partition with no row in `consumer_offsets` starts.
    #[arg(long, env = "ROYALTY_START", value_enum, default_value_t = StartPolicy::Earliest)]
    pub start: StartPolicy,

    /// Allow continuing when a stored offset is out of range (the broker deleted records
    /// never ingested). Without it the run stops and names the partition: data was lost
    /// upstream and someone should look.
    #[arg(long, env = "ROYALTY_ALLOW_OFFSET_SKIP", value_parser = BoolishValueParser::new())]
    pub allow_offset_skip: bool,

    #[command(flatten)]
    pub schemas: SchemaArgs,

    /// Address of the HTTP endpoint serving `/metrics` (Prometheus), `/healthz` (liveness)
    /// and `/readyz` (readiness; 503 with the reasons) (empty: off).
    #[arg(long, env = "ROYALTY_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: Option<String>,

    /// Consumer session timeout in milliseconds (a dead instance's partitions move after it).
    #[arg(long, env = "ROYALTY_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,

    /// Partition assignment strategy: `range,roundrobin` (eager) or `cooperative-sticky`.
    #[arg(long, env = "ROYALTY_ASSIGNOR", default_value = "range,roundrobin")]
    pub assignor: String,

    /// Static group membership id (restarts take their partitions back without a rebalance).
    #[arg(long, env = "ROYALTY_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Exit 0 once every assigned partition is caught up and nothing arrived for this many
    /// milliseconds (for batch jobs and the quickstart; default: run until stopped).
    #[arg(long, env = "ROYALTY_EXIT_WHEN_IDLE_MS")]
    pub exit_when_idle_ms: Option<u64>,

    /// Do not create missing topics at start (by default the input, catalog, dead-letter and
    /// alert topics are created when absent). With it, a missing dead-letter or alert topic
    /// stops the run at start; a missing input topic stops a batch job
    /// (--exit-when-idle-ms) and is waited for by a daemon.
    #[arg(long, env = "ROYALTY_NO_CREATE_TOPICS", value_parser = BoolishValueParser::new())]
    pub no_create_topics: bool,

    /// Partitions for topics this command creates.
    #[arg(long, env = "ROYALTY_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,
}

/// Partitions of the topics the commands create when absent (input, DLQ, alerts alike).
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 4;

impl RunArgs {
    /// Checks the topic names before any broker call: trims them, drops repeated input
    /// topics, and refuses empty names and an output topic (dead letters, alerts) that is
    /// also an input (a replay loop waiting to happen) or the other output.
    pub fn check_topics(&mut self) -> anyhow::Result<()> {
        let mut inputs: Vec<String> = Vec::with_capacity(self.topics.len());
        for raw in &self.topics {
            let name = checked_topic_name("--topics", raw)?;
            if !inputs.contains(&name) {
                inputs.push(name);
            }
        }
        anyhow::ensure!(!inputs.is_empty(), "--topics needs at least one topic");
        self.topics = inputs;
        self.catalog_topic = self.catalog_topic.trim().to_string();
        if let Some(catalog) = self.catalog_topic() {
            let catalog = checked_topic_name("--catalog-topic", catalog)?;
            anyhow::ensure!(
                !self.topics.contains(&catalog),
                "--catalog-topic {catalog:?} is also in --topics; catalog updates and royalty lines need topics of their own"
            );
        }
        self.summaries_topic = self.summaries_topic.trim().to_string();
        if let Some(summaries) = self.summaries_topic() {
            let summaries = checked_topic_name("--summaries-topic", summaries)?;
            anyhow::ensure!(
                !self.topics.contains(&summaries)
                    && self.catalog_topic() != Some(summaries.as_str()),
                "--summaries-topic {summaries:?} is also in --topics or --catalog-topic; report summaries need a topic of their own"
            );
        }
        self.dlq_topic = checked_topic_name("--dlq-topic", &self.dlq_topic)?;
        self.alerts_topic = checked_topic_name("--alerts-topic", &self.alerts_topic)?;
        for (flag, output) in [
            ("--dlq-topic", &self.dlq_topic),
            ("--alerts-topic", &self.alerts_topic),
        ] {
            anyhow::ensure!(
                !self.subscribed_topics().contains(&output.as_str()),
                "{flag} {output:?} is also an input topic; records written there would be read back \
                 and refused again (a loop). Give it a topic of its own"
            );
        }
        anyhow::ensure!(
            self.dlq_topic != self.alerts_topic,
            "--dlq-topic and --alerts-topic are both {:?}; dead letters and drift alerts need topics of their own",
            self.dlq_topic
        );
        Ok(())
    }

    /// The catalog topic, if consumed.
    pub fn catalog_topic(&self) -> Option<&str> {
        Some(self.catalog_topic.trim()).filter(|t| !t.is_empty())
    }

    /// The report summaries topic, if consumed.
    pub fn summaries_topic(&self) -> Option<&str> {
        Some(self.summaries_topic.trim()).filter(|t| !t.is_empty())
    }

    /// Every topic the consumer subscribes to: the raw topics, the catalog topic and the
    /// report summaries topic.
    pub fn subscribed_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        topics.extend(self.catalog_topic());
        topics.extend(self.summaries_topic());
        topics
    }

    /// The linger time as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// The commit floor as a duration.
    pub fn commit_floor(&self) -> Duration {
        Duration::from_millis(self.commit_floor_ms)
    }

    /// The metrics address, if the endpoint is on.
    pub fn metrics_socket(&self) -> anyhow::Result<Option<SocketAddr>> {
        match self.metrics_addr.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(addr) => addr
                .parse()
                .map(Some)
                .map_err(|err| anyhow::anyhow!("--metrics-addr {addr:?} is not host:port ({err})")),
        }
    }
}

/// A topic name as Kafka accepts it: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or
/// `..`. The error names the flag and the name.
pub fn checked_topic_name(flag: &str, raw: &str) -> anyhow::Result<String> {
    let name = raw.trim();
    anyhow::ensure!(
        !name.is_empty(),
        "{flag}: empty topic name (check for a stray comma)"
    );
    let legal = name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    anyhow::ensure!(
        legal,
        "{flag}: {name:?} is not a Kafka topic name (1-249 characters of letters, digits, '.', '_' and '-')"
    );
    Ok(name.to_string())
}

/// Parses `key=value` for librdkafka pass-through properties.
pub fn parse_property(raw: &str) -> Result<(String, String), String> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{raw:?} has an empty key"));
    }
    Ok((key.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_needs_key_and_value() {
        assert_eq!(
            parse_property("fetch.wait.max.ms = 50"),
            Ok(("fetch.wait.max.ms".to_string(), "50".to_string()))
        );
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=x").is_err());
    }

    fn args(topics: &[&str], dlq: &str) -> RunArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let mut cli = <Cli as clap::Parser>::parse_from(["run"]);
        cli.run.topics = topics.iter().map(|t| t.to_string()).collect();
        cli.run.dlq_topic = dlq.to_string();
        cli.run
    }

    #[test]
    fn repeated_input_topics_are_dropped() {
        let mut run = args(&["walk.raw1", " walk.raw1", "other"], "dlq");
        run.check_topics().expect("valid topics");
        assert_eq!(run.topics, vec!["walk.raw1", "other"]);
    }

    #[test]
    fn empty_topic_names_are_refused() {
        for topics in [&["", ""][..], &["ok", " "][..]] {
            let err = args(topics, "dlq").check_topics().unwrap_err().to_string();
            assert!(err.contains("empty topic name"), "{err}");
        }
        let err = args(&["a b"], "dlq")
            .check_topics()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Kafka topic name"), "{err}");
    }

    #[test]
    fn an_output_topic_that_is_also_an_input_is_refused() {
        let err = args(&["raw"], "raw")
            .check_topics()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--dlq-topic \"raw\" is also an input topic"),
            "{err}"
        );
        let mut run = args(&["raw"], "dlq");
        run.alerts_topic = "catalog.updates".into();
        let err = run.check_topics().unwrap_err().to_string();
        assert!(err.contains("--alerts-topic"), "{err}");
        let mut run = args(&["raw"], "same");
        run.alerts_topic = "same".into();
        assert!(run.check_topics().is_err());
    }
}
