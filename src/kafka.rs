//! Kafka client plumbing shared by every command: one place that turns the configuration
//! into librdkafka settings, and topic creation through the admin API.

use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

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

/// How long a command waits for the broker's first answer before it says so (batch
/// commands then stop; a daemon keeps waiting).
pub const BROKER_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the broker which of `topics` exist, within [`BROKER_PROBE_TIMEOUT`]. Returns the
/// missing ones; fails with an actionable message when the broker does not answer.
pub async fn missing_topics(kafka: &KafkaArgs, topics: &[&str]) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = client_config(kafka)
        .create()
        .context("failed to create a Kafka client")?;
    let brokers = kafka.brokers.clone();
    // The metadata call blocks: keep it off the async workers.
    let metadata = tokio::task::spawn_blocking(move || {
        consumer
            .fetch_metadata(None, BROKER_PROBE_TIMEOUT)
            .map(|m| {
                m.topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .map(|t| t.name().to_string())
                    .collect::<Vec<_>>()
            })
    })
    .await
    .context("the Kafka metadata request was interrupted")?
    .map_err(|err| {
        anyhow::anyhow!(
            "the Kafka broker at {brokers} did not answer within {} s ({err}); is it running \
             (scripts/services up) and is --brokers / KAFKA_BROKERS right?",
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
