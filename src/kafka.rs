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
/// Idempotence and `acks` are set after the pass-through properties, so no property undoes
/// them; [`refuse_unsafe_properties`] tells the operator who tried.
pub fn idempotent_producer_config(kafka: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
        .remove("request.required.acks")
        .set("enable.idempotence", "true")
        .set("acks", "all");
    config
}

/// The service's Kafka clients whose settings a `--kafka-property` must not undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `run`'s consumer: offsets come from PostgreSQL, and records deleted unread stop it.
    Ingest,
    /// The idempotent producers: the outbox relay, `produce`, `sample`, `dlq replay`.
    Producer,
}

/// A librdkafka setting a client relies on: its names (aliases included), the values that
/// keep it intact, why it matters and what to use instead.
struct Guarded {
    client: Client,
    names: &'static [&'static str],
    safe: &'static [&'static str],
    why: &'static str,
    instead: &'static str,
}

/// librdkafka's spellings of a boolean.
const TRUE: &[&str] = &["true", "t", "1"];
const FALSE: &[&str] = &["false", "f", "0"];

const GUARDED: &[Guarded] = &[
    Guarded {
        client: Client::Ingest,
        names: &["auto.offset.reset"],
        safe: &["error"],
        why: "a stored offset the broker no longer holds (records deleted before they were \
              ingested) must stop the run, not be silently replaced",
        instead: "use --allow-offset-skip, which continues from the oldest available record \
                  and names every partition it skips",
    },
    Guarded {
        client: Client::Ingest,
        names: &["enable.auto.commit"],
        safe: FALSE,
        why: "where each partition resumes is stored in PostgreSQL with the ledger rows; the \
              Kafka group offsets are only a mirror, committed after each transaction",
        instead: "no flag changes it: lag tools already see the mirrored offsets",
    },
    Guarded {
        client: Client::Ingest,
        names: &["enable.auto.offset.store"],
        safe: FALSE,
        why: "an offset may reach Kafka only after its records are durable in PostgreSQL",
        instead: "no flag changes it",
    },
    Guarded {
        client: Client::Ingest,
        names: &["isolation.level"],
        safe: &["read_committed"],
        why: "records of aborted Kafka transactions would be booked",
        instead: "no flag changes it",
    },
    Guarded {
        client: Client::Ingest,
        names: &["group.id"],
        safe: &[],
        why: "the group also names the offsets stored in PostgreSQL",
        instead: "use --group",
    },
    Guarded {
        client: Client::Producer,
        names: &["enable.idempotence"],
        safe: TRUE,
        why: "a retried send could be written twice or out of order",
        instead: "no flag changes it",
    },
    Guarded {
        client: Client::Producer,
        names: &["acks", "request.required.acks"],
        safe: &["all", "-1"],
        why: "a message could be lost after the send counted as done (the outbox stamps a \
              dead letter or alert published on the broker's acknowledgement)",
        instead: "no flag changes it",
    },
];

/// Refuses, before any client is made, a `--kafka-property` / `KAFKA_PROPERTIES` value that
/// would undo a setting one of `clients` relies on for exactly-once; the error names each
/// such property and the flag that does the same on purpose, if any. Values that keep the
/// setting (`acks=all`) pass.
pub fn refuse_unsafe_properties(kafka: &KafkaArgs, clients: &[Client]) -> anyhow::Result<()> {
    let mut refused = Vec::new();
    for (key, value) in &kafka.properties {
        let key = key.trim();
        let Some(guard) = GUARDED
            .iter()
            .find(|g| clients.contains(&g.client) && g.names.contains(&key))
        else {
            continue;
        };
        if guard
            .safe
            .iter()
            .any(|safe| safe.eq_ignore_ascii_case(value.trim()))
        {
            continue;
        }
        refused.push(format!(
            "--kafka-property {key}={value} would override {key}{}: {}; {}",
            guard
                .safe
                .first()
                .map(|safe| format!("={safe}"))
                .unwrap_or_default(),
            guard.why,
            guard.instead
        ));
    }
    anyhow::ensure!(
        refused.is_empty(),
        "refusing to start: {} (from --kafka-property or KAFKA_PROPERTIES)",
        refused.join("; and ")
    );
    Ok(())
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

/// The partition ids of `topic`, or `None` if the broker says it does not exist. A topic
/// listed with an error (its leader being elected, say) or without partitions is asked
/// about again until `timeout`, then refused with the broker's reason: read as "no
/// partitions", it would make a reader conclude that nothing was ever published there.
/// Blocks (call it from blocking code).
pub fn topic_partitions<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Option<Vec<i32>>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let metadata = consumer
            .fetch_metadata(Some(topic), left.max(Duration::from_millis(100)))
            .with_context(|| {
                format!("cannot read the partitions of {topic} (is the broker up?)")
            })?;
        let listed = metadata.topics().iter().find(|t| t.name() == topic);
        let problem = match listed {
            None => "the broker did not list it".to_string(),
            Some(t) => match t.error().map(RDKafkaErrorCode::from) {
                Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
                Some(code) => format!("the broker answered {code}"),
                None if t.partitions().is_empty() => "the broker listed no partitions".into(),
                None => match t.partitions().iter().find_map(|p| p.error()) {
                    Some(code) => {
                        format!("a partition's answer was {}", RDKafkaErrorCode::from(code))
                    }
                    None => {
                        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                        ids.sort_unstable();
                        return Ok(Some(ids));
                    }
                },
            },
        };
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "cannot read the partitions of {topic} within {} s: {problem}",
            timeout.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(properties: &[(&str, &str)]) -> KafkaArgs {
        KafkaArgs {
            brokers: "127.0.0.1:9092".into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn refusal(properties: &[(&str, &str)], clients: &[Client]) -> String {
        refuse_unsafe_properties(&with(properties), clients)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_property_undoing_a_consumer_safety_setting_is_refused_with_the_flag_to_use() {
        let err = refusal(&[("auto.offset.reset", "earliest")], &[Client::Ingest]);
        assert!(
            err.contains("auto.offset.reset=earliest would override auto.offset.reset=error"),
            "{err}"
        );
        assert!(err.contains("--allow-offset-skip"), "{err}");
        for (key, value) in [
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "1"),
            ("isolation.level", "read_uncommitted"),
            ("group.id", "other"),
        ] {
            let err = refusal(&[(key, value)], &[Client::Ingest]);
            assert!(
                err.contains(&format!("{key}={value} would override")),
                "{err}"
            );
        }
        assert!(refusal(&[("group.id", "x")], &[Client::Ingest]).contains("--group"));
    }

    #[test]
    fn a_property_undoing_idempotence_or_acks_is_refused_for_producers() {
        for (key, value) in [
            ("enable.idempotence", "false"),
            ("acks", "1"),
            ("request.required.acks", "0"),
        ] {
            let err = refusal(&[(key, value)], &[Client::Producer]);
            assert!(
                err.contains(&format!("{key}={value} would override")),
                "{err}"
            );
        }
        // Every refusal at once, not one per attempt.
        let err = refusal(
            &[("acks", "1"), ("enable.idempotence", "false")],
            &[Client::Producer],
        );
        assert!(
            err.contains("acks=1") && err.contains("enable.idempotence=false"),
            "{err}"
        );
    }

    #[test]
    fn values_that_keep_the_setting_and_other_properties_pass() {
        let kept = with(&[
            ("acks", "all"),
            ("acks", "-1"),
            ("enable.idempotence", "TRUE"),
            ("auto.offset.reset", "error"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("security.protocol", "SASL_SSL"),
            ("fetch.wait.max.ms", "50"),
        ]);
        assert!(refuse_unsafe_properties(&kept, &[Client::Ingest, Client::Producer]).is_ok());
        // A consumer setting is not a producer's, and the other way round.
        let consumer_only = with(&[("auto.offset.reset", "earliest")]);
        assert!(refuse_unsafe_properties(&consumer_only, &[Client::Producer]).is_ok());
        let producer_only = with(&[("acks", "1")]);
        assert!(refuse_unsafe_properties(&producer_only, &[Client::Ingest]).is_ok());
    }

    #[test]
    fn the_producer_config_keeps_idempotence_and_acks_whatever_the_properties_say() {
        let config = idempotent_producer_config(&with(&[
            ("acks", "1"),
            ("request.required.acks", "0"),
            ("enable.idempotence", "false"),
            ("linger.ms", "20"),
        ]));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("request.required.acks"), None);
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("linger.ms"), Some("20"), "other properties pass");
    }

    /// A mock cluster (librdkafka's) stages what a real broker cannot be made to answer on
    /// demand: a topic listed with an error.
    #[test]
    fn a_topic_listed_with_an_error_is_never_read_as_one_without_partitions() {
        use rdkafka::mocking::MockCluster;
        use rdkafka::types::RDKafkaRespErr;

        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("summaries", 3, 1).expect("topic");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "partitions-test")
            .create()
            .expect("consumer");
        let wait = Duration::from_secs(2);
        let found = topic_partitions(&consumer, "summaries", wait).expect("partitions");
        assert_eq!(found, Some(vec![0, 1, 2]));

        let electing = RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
        cluster.topic_error("summaries", electing).expect("staged");
        let err = topic_partitions(&consumer, "summaries", wait).expect_err("refused");
        let err = format!("{err:#}");
        assert!(
            err.contains("cannot read the partitions of summaries within 2 s"),
            "{err}"
        );
        assert!(err.contains("Leader not available"), "{err}");

        cluster
            .topic_error("summaries", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
            .expect("cleared");
        let found = topic_partitions(&consumer, "summaries", wait).expect("partitions again");
        assert_eq!(found, Some(vec![0, 1, 2]));

        let unknown = RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        cluster.topic_error("summaries", unknown).expect("staged");
        let missing = topic_partitions(&consumer, "summaries", wait).expect("an answer");
        assert_eq!(
            missing, None,
            "a topic the broker does not know has no partitions"
        );
    }
}
