//! Kafka client plumbing shared by every command: one place that turns the configuration
//! into librdkafka settings, and topic creation through the admin API.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaArgs;

/// A librdkafka configuration with the brokers and the pass-through properties applied.
pub fn client_config(kafka: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// Settings of an idempotent producer (`acks=all`): a retried send never duplicates.
pub fn idempotent_producer_config(kafka: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// Remembers a probe client's last error (a TLS handshake or SASL authentication refusal),
/// so a failed probe can say why.
#[derive(Default)]
struct ProbeContext {
    last_error: Mutex<Option<String>>,
}

impl ProbeContext {
    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|last| last.clone())
    }
}

impl ClientContext for ProbeContext {
    // librdkafka reports a refused handshake or login as an error-level log line from its
    // broker thread (the error callback would need a poll the probe never makes).
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        ) {
            // Kept for the probe's one message instead of logged at every retry.
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(log_message.to_string());
            }
            return;
        }
        DefaultClientContext.log(level, fac, log_message);
    }

    // Only when no log line said more: "all brokers are down" follows every refusal.
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_error.lock()
            && last.is_none()
        {
            *last = Some(format!("{error} ({reason})"));
        }
    }
}

impl ConsumerContext for ProbeContext {}

/// How long a command waits for the broker's first answer before it says so (batch
/// commands then stop; a daemon keeps waiting).
pub const BROKER_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the broker which of `topics` exist, within [`BROKER_PROBE_TIMEOUT`]. Returns the
/// missing ones; fails with an actionable message when the broker does not answer.
pub async fn missing_topics(kafka: &KafkaArgs, topics: &[&str]) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer<ProbeContext> = client_config(kafka)
        .create_with_context(ProbeContext::default())
        .context("failed to create a Kafka client")?;
    let brokers = kafka.brokers.clone();
    // The metadata call blocks: keep it off the async workers.
    let (metadata, last_error) = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + BROKER_PROBE_TIMEOUT;
        loop {
            let attempt = consumer
                .fetch_metadata(None, Duration::from_secs(1))
                .map(|m| {
                    m.topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .map(|t| t.name().to_string())
                        .collect::<Vec<_>>()
                });
            // Serves the client's queue: librdkafka delivers its logs and errors (a refused
            // handshake or login) through it.
            let _ = consumer.poll(Duration::ZERO);
            if attempt.is_ok() || std::time::Instant::now() >= deadline {
                break (attempt, consumer.context().last_error());
            }
        }
    })
    .await
    .context("the Kafka metadata request was interrupted")?;
    let metadata = metadata.map_err(|err| {
        // A TLS or SASL refusal surfaces as a bare "transport failure" from the metadata
        // call: the client's own last error says what went wrong.
        let cause = last_error.unwrap_or_else(|| err.to_string());
        anyhow::anyhow!(
            "the Kafka broker at {brokers} did not answer within {} s: {cause}. Is it running \
             (scripts/services up), is --brokers / KAFKA_BROKERS right, and do the \
             security.protocol, ssl.* and sasl.* properties (--kafka-property / \
             KAFKA_PROPERTIES) match its listener?",
            BROKER_PROBE_TIMEOUT.as_secs()
        )
    })?;
    let mut missing: Vec<String> = Vec::new();
    for topic in topics {
        if !metadata.iter().any(|t| t == topic) && !missing.iter().any(|m| m == topic) {
            missing.push((*topic).to_string());
        }
    }
    Ok(missing)
}

/// Creates each topic that does not exist yet (replication 1 on a single broker,
/// otherwise the broker default). Existing topics are left as they are; a name given
/// twice is created once (librdkafka crashes on a repeated name in one request).
pub async fn ensure_topics(
    kafka: &KafkaArgs,
    topics: &[&str],
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .context("failed to create Kafka admin client")?;
    let mut distinct: Vec<&str> = Vec::with_capacity(topics.len());
    for topic in topics {
        if !distinct.contains(topic) {
            distinct.push(topic);
        }
    }
    let new_topics: Vec<NewTopic<'_>> = distinct
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .with_context(|| {
            format!(
                "failed to create topics on {} (is the broker up? scripts/services up)",
                kafka.brokers
            )
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("failed to create topic {topic}: {code}"),
        }
    }
    Ok(())
}
