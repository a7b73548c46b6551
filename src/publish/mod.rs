//! Everything that writes to Kafka: the outbox relay.

pub mod relay;

pub use relay::Relay;
