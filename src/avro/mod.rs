//! Avro (being written).
