//! royalty-ingest: an exactly-once stream processor that turns DSP royalty report lines
//! from Kafka into a PostgreSQL ledger.
//!
//! Data flows one way: [`pipeline::source`] (Kafka) → [`avro`] (decode) → [`domain`]
//! (validate, key) → [`ledger`] (one transaction per lane of a batch, its offsets included) →
//! [`publish`] (outbox relay to the dead-letter and alert topics).

pub mod avro;
pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod drift;
pub mod kafka;
pub mod ledger;
pub mod observe;
pub mod output;
pub mod pipeline;
pub mod produce;
pub mod publish;
pub mod record;
pub mod report;
pub mod retry;
pub mod sample;
pub mod shutdown;
