//! The outbox relay: publishes what batch transactions wrote to `outbox`.

pub mod relay;

pub use relay::Relay;
