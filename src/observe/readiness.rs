//! What `/readyz` answers: ready when the consumer has joined its group (partitions
//! assigned, or legitimately none: more instances than partitions), PostgreSQL answers,
//! and the outbox relay is not stuck. `/healthz` stays a liveness probe (the process
//! answers at all).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use super::Metrics;

/// How old the oldest unpublished outbox message may get before the relay counts as stuck.
pub const OUTBOX_STUCK_AFTER: Duration = Duration::from_secs(300);
/// How long `/readyz` waits for PostgreSQL.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Shared between the run loop (which says when the group was joined) and the endpoint.
pub struct Readiness {
    joined: AtomicBool,
    pool: PgPool,
}

impl Readiness {
    /// Not ready until the group is joined.
    pub fn new(pool: PgPool) -> Readiness {
        Readiness {
            joined: AtomicBool::new(false),
            pool,
        }
    }

    /// The consumer received its (possibly empty) first assignment.
    pub fn joined(&self) {
        self.joined.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready; otherwise every reason why not.
    pub async fn check(&self, metrics: &Metrics) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if !self.joined.load(Ordering::Relaxed) {
            reasons.push("no partition assignment yet (joining the consumer group)".to_string());
        }
        let ping = tokio::time::timeout(
            DATABASE_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool),
        )
        .await;
        match ping {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => reasons.push(format!("PostgreSQL does not answer: {err}")),
            Err(_) => reasons.push(format!(
                "PostgreSQL did not answer within {} s",
                DATABASE_TIMEOUT.as_secs()
            )),
        }
        let oldest = metrics.outbox_oldest_age();
        if oldest >= OUTBOX_STUCK_AFTER {
            reasons.push(format!(
                "the outbox relay is stuck: the oldest unpublished message is {} s old",
                oldest.as_secs()
            ));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}
