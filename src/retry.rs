//! Exponential backoff with equal jitter, for waiting out a dependency (PostgreSQL, the
//! broker, the schema registry) without hammering it or retrying in lock-step with peers.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A dependency (PostgreSQL, the schema registry) cannot take the work right now: it is
/// down or restarting, or (PostgreSQL) a concurrent transaction conflicted. The work in
/// hand is retried with [`Backoff`], never dead-lettered or abandoned. The pipeline's one
/// retry signal, whichever dependency raised it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// The reason says which: "unavailable" alone was wrong for a lane's duplicate-key conflict.
#[error("{dependency}: {reason}")]
pub struct Unavailable {
    /// Which dependency.
    pub dependency: &'static str,
    /// What it said.
    pub reason: String,
}

/// Delays that double from `initial` up to `max`, each drawn uniformly from the upper half
/// of the current step ("equal jitter": never zero, never in lock-step).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// A backoff from `initial` to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let jitter_ms = (half.as_millis() as u64).max(1);
        half + Duration::from_millis(random_u64() % jitter_ms)
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A random number from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = backoff.next_delay();
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_secs(1),
                "{d:?}"
            );
        }
        let late = backoff.next_delay();
        assert!(late >= Duration::from_millis(500), "{late:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
