//! Everything that writes to Kafka: the outbox relay and the sample publisher.

pub mod relay;
pub mod sample;

pub use relay::Relay;
