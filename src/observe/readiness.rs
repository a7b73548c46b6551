//! What `/readyz` answers: ready when the consumer has joined its group (partitions
//! assigned, or legitimately none: more instances than partitions), PostgreSQL answers,
//! and the outbox relay is not stuck. `/healthz` stays a liveness probe (the process
//! answers at all).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Metrics;

/// How old the oldest unpublished outbox message may get before the relay counts as stuck.
pub const OUTBOX_STUCK_AFTER: Duration = Duration::from_secs(300);
/// How long `/readyz` waits for PostgreSQL.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one answer of PostgreSQL stands for all probes. The check borrows a
/// connection of the ingest pool: probes from several kubelets, load balancers and
/// scripts must not each take one from the batches.
pub const DATABASE_CHECK_TTL: Duration = Duration::from_secs(1);

/// The last answer of PostgreSQL to the readiness check.
struct DatabaseCheck {
    at: Instant,
    outcome: Result<(), String>,
}

/// Shared between the run loop (which says when the group was joined) and the endpoint.
pub struct Readiness {
    joined: AtomicBool,
    pool: PgPool,
    /// Held while PostgreSQL is asked, so probes arriving meanwhile wait for that answer
    /// instead of asking too.
    database: Mutex<Option<DatabaseCheck>>,
    database_checks: AtomicU64,
}

impl Readiness {
    /// Not ready until the group is joined.
    pub fn new(pool: PgPool) -> Readiness {
        Readiness {
            joined: AtomicBool::new(false),
            pool,
            database: Mutex::new(None),
            database_checks: AtomicU64::new(0),
        }
    }

    /// How many times PostgreSQL was asked (probes in between reuse the answer).
    pub fn database_checks(&self) -> u64 {
        self.database_checks.load(Ordering::Relaxed)
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
        if let Err(reason) = self.database().await {
            reasons.push(reason);
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

    /// Whether PostgreSQL answers, asked at most once per [`DATABASE_CHECK_TTL`].
    async fn database(&self) -> Result<(), String> {
        let mut last = self.database.lock().await;
        if let Some(check) = last
            .as_ref()
            .filter(|c| c.at.elapsed() < DATABASE_CHECK_TTL)
        {
            return check.outcome.clone();
        }
        self.database_checks.fetch_add(1, Ordering::Relaxed);
        let ping = tokio::time::timeout(
            DATABASE_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool),
        )
        .await;
        let outcome = match ping {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(format!("PostgreSQL does not answer: {err}")),
            Err(_) => Err(format!(
                "PostgreSQL did not answer within {} s",
                DATABASE_TIMEOUT.as_secs()
            )),
        };
        // Stamped after the answer: a slow answer is not already stale when stored.
        *last = Some(DatabaseCheck {
            at: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }
}
