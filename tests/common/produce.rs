//! The fixture of the tests that take report files through `produce` → `run` → the ledger →
//! `reconcile` (`tests/produce*.rs`): topics and a database of the test's own, and the
//! commands run against them.
#![allow(dead_code)]

use std::process::Output;

use rust_decimal::Decimal;
use sqlx::PgPool;

use super::pipeline::{royalty_ingest, run_args, run_until_idle};

/// Topics and a database of the test's own.
pub struct Setup {
    /// The lines' topic (two partitions).
    pub raw: String,
    /// The report summaries' topic.
    pub summaries: String,
    /// Dead letters.
    pub dlq: String,
    /// Drift alerts (the test's own: nothing depends on a shared alerts topic).
    pub alerts: String,
    /// The test database.
    pub url: String,
    /// A pool on it.
    pub pool: PgPool,
    /// The consumer group of `run` and `reconcile`: `group` and a suffix of its own, so
    /// that tests running at once never share a group (a member joining another test's
    /// group makes both rebalance).
    pub group: String,
    /// Arguments every `produce` gets before the test's own.
    pub produce_args: Vec<&'static str>,
}

impl Setup {
    /// Fresh topics named after `prefix` and a fresh database; `ingest` and `reconcile`
    /// use a consumer group named after `group`.
    pub async fn new(prefix: &str, group: &'static str) -> Setup {
        let raw = super::fresh_topic(&format!("it.{prefix}.raw"), 2).await;
        let summaries = super::fresh_topic(&format!("it.{prefix}.sum"), 1).await;
        let dlq = super::fresh_topic(&format!("it.{prefix}.dlq"), 1).await;
        let alerts = super::fresh_topic(&format!("it.{prefix}.alerts"), 1).await;
        let (url, pool) = super::fresh_database().await;
        Setup {
            raw,
            summaries,
            dlq,
            alerts,
            url,
            pool,
            group: format!("{group}-{}", super::unique_suffix()),
            produce_args: Vec::new(),
        }
    }

    /// The same, with `args` given to every `produce` before the test's own.
    pub fn with_produce_args(mut self, args: &[&'static str]) -> Setup {
        self.produce_args = args.to_vec();
        self
    }

    /// `produce` to the test's topics with `extra` arguments (files and flags).
    pub async fn produce(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "produce",
            "--topic",
            &self.raw,
            "--summaries-topic",
            &self.summaries,
        ];
        args.extend_from_slice(&self.produce_args);
        args.extend_from_slice(extra);
        royalty_ingest(&args, &self.url).await
    }

    /// `run` in-process over the lines and summaries until it is caught up and idle.
    pub async fn ingest(&self) {
        let mut args = run_args(&self.raw, &self.dlq, &self.url, &self.group);
        args.summaries_topic = self.summaries.clone();
        args.alerts_topic = self.alerts.clone();
        run_until_idle(args).await;
    }

    /// `reconcile` of the test's group and summaries with `extra` arguments.
    pub async fn reconcile(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "reconcile",
            "--group",
            &self.group,
            "--summaries-topic",
            &self.summaries,
        ];
        args.extend_from_slice(extra);
        royalty_ingest(&args, &self.url).await
    }

    /// Lines, quantity and amount of the ledger rows `sql` (a `WHERE` clause, or nothing)
    /// selects; a quantity beyond `i64` shows as -1.
    pub async fn ledger(&self, sql: &str) -> (i64, i64, Decimal) {
        sqlx::query_as::<_, (i64, Option<Decimal>, Option<Decimal>)>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), sum(stream_count)::numeric, sum(royalty_amount) FROM royalty_ledger {sql}"
        )))
        .fetch_one(&self.pool)
        .await
        .map(|(n, q, a)| {
            (
                n,
                q.map(|q| i64::try_from(q).unwrap_or(-1)).unwrap_or(0),
                a.unwrap_or_default(),
            )
        })
        .expect("ledger totals")
    }
}

/// A command's standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An exact decimal.
pub fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).expect("decimal")
}
