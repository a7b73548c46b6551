//! `royalty-ingest sample`: encodes the synthetic lines of [`crate::sample`] in their schema
//! versions and publishes them, keyed by line identity, with an idempotent producer.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::avro::{SchemaStore, encode_single_object};
use crate::commands::progress::Progress;
use crate::config::{DEFAULT_TOPIC_PARTITIONS, KafkaArgs, checked_topic_name};
use crate::kafka::{
    Client, ensure_topics, idempotent_producer_config, missing_topics, refuse_unsafe_properties,
};
use crate::sample::{SampleKind, generate};

/// Full name of the royalty-line record.
const LINE_SCHEMA: &str = "io.royaltyingest.RoyaltyLine";

/// Settings of `royalty-ingest sample`.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// How many records to publish.
    #[arg(long, env = "ROYALTY_SAMPLE_LINES", default_value_t = 1000)]
    pub lines: usize,

    /// Seed of the generator: the same seed publishes the same lines again (the ledger
    /// absorbs them); change it for new lines.
    #[arg(long, env = "ROYALTY_SAMPLE_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Topic to publish to.
    #[arg(long, env = "ROYALTY_TOPIC", default_value = "royalty.events.raw")]
    pub topic: String,

    /// Partitions if the topic has to be created.
    #[arg(long, env = "ROYALTY_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub partitions: i32,
}

/// Publishes the sample and prints what it was made of.
pub async fn publish_sample(args: &SampleArgs) -> anyhow::Result<()> {
    checked_topic_name("--topic", &args.topic)?;
    refuse_unsafe_properties(&args.kafka, &[Client::Producer])?;
    missing_topics(&args.kafka, &[&args.topic]).await?;
    ensure_topics(&args.kafka, &[&args.topic], args.partitions).await?;
    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let producer: FutureProducer = idempotent_producer_config(&args.kafka)
        .create()
        .context("failed to create the producer")?;
    let samples = generate(args.seed, args.lines);
    let mut encoded = Vec::with_capacity(samples.len());
    for sample in &samples {
        let value = match sample.schema_version {
            Some(version) => {
                let schema = store
                    .by_name_version(LINE_SCHEMA, version)
                    .with_context(|| format!("no built-in schema version {version}"))?;
                encode_single_object(&schema, &sample.line)
                    .with_context(|| format!("cannot encode sample line {}", sample.key))?
            }
            None => format!("garbage, not Avro: {}", sample.key).into_bytes(),
        };
        encoded.push((sample.key.as_bytes(), value));
    }

    let started = Instant::now();
    // Drawn only on a terminal: in a log or a pipe, `\r` redraws are one endless line.
    let mut progress = Progress::new("published", u64::try_from(encoded.len()).unwrap_or(0));
    for chunk in encoded.chunks(1000) {
        let sends = chunk.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(&args.topic)
                    .key(*key)
                    .payload(value.as_slice()),
                Duration::from_secs(30),
            )
        });
        for result in join_all(sends).await {
            result.map_err(|(err, _)| err).with_context(|| {
                format!(
                    "publishing to {} failed (is the broker up? scripts/services up)",
                    args.topic
                )
            })?;
        }
        progress.advance(u64::try_from(chunk.len()).unwrap_or(0));
    }
    progress.finish();
    let count = |kind| samples.iter().filter(|s| s.kind == kind).count();
    println!(
        "published {} records to {} in {:.1}s: {} new lines, {} redeliveries, {} restatements, {} invalid (seed {})",
        samples.len(),
        args.topic,
        started.elapsed().as_secs_f64(),
        count(SampleKind::New),
        count(SampleKind::Redelivery),
        count(SampleKind::Restatement),
        count(SampleKind::Invalid),
        args.seed
    );
    Ok(())
}
