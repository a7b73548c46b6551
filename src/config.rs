//! One typed configuration for every command: flags, each with an environment variable,
//! and defaults that match `scripts/services`. librdkafka properties pass through as
//! `--kafka-property key=value` (repeatable) or `KAFKA_PROPERTIES="k=v,k=v"`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

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
    /// `security.protocol=SASL_SSL`. Comma-separated in the environment variable.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ',',
        value_parser = parse_property
    )]
    pub properties: Vec<(String, String)>,
}

/// The PostgreSQL ledger.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL of the ledger.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://royalty:royalty@127.0.0.1:5432/royalty"
    )]
    pub database_url: String,
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

    /// Topic receiving drift alerts (Avro `DriftAlert`).
    #[arg(
        long,
        env = "ROYALTY_ALERTS_TOPIC",
        default_value = "catalog.drift.alerts"
    )]
    pub alerts_topic: String,

    /// Do not alert on ISRCs missing from the catalog (by default, once a catalog is
    /// loaded, an unknown ISRC is drift).
    #[arg(long, env = "ROYALTY_NO_UNKNOWN_ISRC_ALERTS")]
    pub no_unknown_isrc_alerts: bool,

    /// Most records in one batch transaction.
    #[arg(long, env = "ROYALTY_BATCH_SIZE", default_value_t = 5000)]
    pub batch_size: usize,

    /// How long a partly filled batch waits for more records, in milliseconds.
    #[arg(long, env = "ROYALTY_LINGER_MS", default_value_t = 200)]
    pub linger_ms: u64,

    /// Where a partition with no row in `consumer_offsets` starts.
    #[arg(long, env = "ROYALTY_START", value_enum, default_value_t = StartPolicy::Earliest)]
    pub start: StartPolicy,

    /// Allow continuing when a stored offset is out of range (the broker deleted records
    /// never ingested). Without it the run stops and names the partition: data was lost
    /// upstream and someone should look.
    #[arg(long, env = "ROYALTY_ALLOW_OFFSET_SKIP")]
    pub allow_offset_skip: bool,

    /// Directory of `*.avsc` writer schemas (default: the schemas built into the binary).
    #[arg(long, env = "ROYALTY_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,

    /// Confluent-compatible schema registry URL, for records in the Confluent wire format.
    #[arg(long, env = "SCHEMA_REGISTRY_URL")]
    pub registry_url: Option<String>,

    /// Address for the Prometheus `/metrics` and `/healthz` endpoint (empty: off).
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

    /// Do not create missing topics at start (by default the raw and dead-letter topics are
    /// created when absent).
    #[arg(long, env = "ROYALTY_NO_CREATE_TOPICS")]
    pub no_create_topics: bool,

    /// Partitions for topics this command creates.
    #[arg(long, env = "ROYALTY_TOPIC_PARTITIONS", default_value_t = 4)]
    pub topic_partitions: i32,
}

impl RunArgs {
    /// The catalog topic, if consumed.
    pub fn catalog_topic(&self) -> Option<&str> {
        Some(self.catalog_topic.trim()).filter(|t| !t.is_empty())
    }

    /// Every topic the consumer subscribes to: the raw topics and the catalog topic.
    pub fn subscribed_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        if let Some(catalog) = self.catalog_topic() {
            topics.push(catalog);
        }
        topics
    }

    /// The linger time as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
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
}
