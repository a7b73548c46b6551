//! `royalty-ingest console`: the operator console, a web server in the same binary for
//! royalty managers and label ops. Server-rendered pages (no JavaScript) over the same
//! PostgreSQL and Kafka that `run` uses: the dead-letter work queue (replay, resolve),
//! drift alerts (acknowledge) and a track's catalog history, the reconciliation of reports,
//! ingest health. It sits beside the other commands and asks through their query modules
//! (`commands::dlq::store`, `dlq::replay::plan`, `reconcile::compute`,
//! `catalog_as_of::version_as_of`, `drift::review`): no second copy of their SQL.
//!
//! Security: every page needs a session ([`auth`]); every POST carries the session's CSRF
//! token, and actions need the operator role, both checked by the server; every action is
//! recorded ([`audit`]); every value is escaped by the templates ([`html`]).

pub mod audit;
pub mod auth;
pub mod form;
pub mod html;
pub mod latency;
pub mod pages;
pub mod tls;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::{Notify, watch};

use anyhow::Context;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::builder::BoolishValueParser;
use clap::{Args, Subcommand};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::avro::LineDecoder;
use crate::commands::reconcile::{self, ReconcileArgs, Reconciliation};
use crate::config::{DatabaseArgs, KafkaArgs, SchemaArgs};
use crate::db;
use auth::{Role, Session, SignInLimiter};
use form::Fields;
use html::ConsoleError;

/// `royalty-ingest console [user add …]`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleCli {
    /// Manage the console's users (without one, the console is served).
    #[command(subcommand)]
    pub command: Option<ConsoleCommand>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The console's subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ConsoleCommand {
    /// The console's users: `console user add NAME --role viewer|operator`.
    #[command(subcommand)]
    User(users::UserCommand),
}

/// Settings of the console's server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default: put a TLS reverse proxy in front to
    /// serve it to others (README, "For royalty managers").
    #[arg(long, env = "ROYALTY_CONSOLE_LISTEN", default_value = "127.0.0.1:8430")]
    pub listen: SocketAddr,

    /// Serve HTTPS with this PEM certificate (chain), with --tls-key (default: plain HTTP,
    /// for loopback or a TLS reverse proxy). The session cookie is then Secure.
    #[arg(long, env = "ROYALTY_CONSOLE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The certificate's private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    #[arg(long, env = "ROYALTY_CONSOLE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Mark the session cookie Secure: set it when a TLS reverse proxy serves the
    /// console, so browsers never send the cookie over plain HTTP (implied by --tls-cert).
    #[arg(long, env = "ROYALTY_CONSOLE_SECURE_COOKIES", value_parser = BoolishValueParser::new())]
    pub secure_cookies: bool,

    /// How often the console reconciles every report in the background, in seconds. The
    /// overview and the reports page show the latest result and when it was made: a whole
    /// ledger is read each time (seconds at a million lines), which no page waits for but
    /// the first after a start and *Reconcile now*. A filtered reports page is always
    /// computed when asked.
    #[arg(
        long,
        env = "ROYALTY_CONSOLE_RECONCILE_INTERVAL_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub reconcile_interval_secs: u64,

    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "ROYALTY_CONSOLE_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u32,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The broker: replays are sent to it, consumer lag is read from it.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Writer schemas, to decode dead letters' payloads.
    #[command(flatten)]
    pub schemas: SchemaArgs,

    /// The dead-letter topic `run` writes to (a replay never targets it).
    #[arg(long, env = "ROYALTY_DLQ_TOPIC", default_value = "royalty.events.dlq")]
    pub dlq_topic: String,

    /// Consumer group of the `run` whose health and lag the overview shows.
    #[arg(long, env = "ROYALTY_GROUP", default_value = "royalty-ingest")]
    pub group: String,

    /// `run`'s Prometheus endpoint (its --metrics-addr), e.g. http://127.0.0.1:9464/metrics:
    /// the overview shows the latency p99 from it (default: not shown).
    #[arg(long, env = "ROYALTY_CONSOLE_RUN_METRICS_URL")]
    pub run_metrics_url: Option<String>,

    /// Topic of report control totals (as `run --summaries-topic`), for reconciliation.
    #[arg(
        long,
        env = "ROYALTY_SUMMARIES_TOPIC",
        default_value = "royalty.report.summaries"
    )]
    pub summaries_topic: String,
}

/// What every request handler shares.
pub struct Console {
    /// The ledger database.
    pub pool: PgPool,
    /// Decodes dead letters' payloads.
    pub decoder: LineDecoder,
    /// The server's settings.
    pub args: ServeArgs,
    /// Failed sign-ins.
    pub limiter: SignInLimiter,
    /// A hash checked when the user name is unknown (same cost as a known one).
    pub decoy_hash: String,
    /// The latest reconciliation of every report, kept by [`keep_reconciled`].
    pub reconciliation: watch::Sender<ReconcileState>,
    /// Asks [`keep_reconciled`] for a new reconciliation now (*Reconcile now*).
    pub reconcile_now: Notify,
}

/// What the background reconciliation has made so far.
#[derive(Default, Clone)]
pub struct ReconcileState {
    /// The latest result, once there is one.
    pub latest: Option<Arc<Reconciled>>,
    /// The latest attempt's failure, when it failed (the result before it stays shown).
    pub failure: Option<(DateTime<Utc>, String)>,
}

/// A reconciliation of every report and when it was computed.
pub struct Reconciled {
    /// The result (`reconcile --json`'s data).
    pub result: Reconciliation,
    /// When it was computed.
    pub at: DateTime<Utc>,
    /// When its computation began (what *Reconcile now* waits for).
    pub started: DateTime<Utc>,
}

/// Reconciles every report now, then every `--reconcile-interval-secs` or when asked, until
/// `stop`: pages read the latest result instead of reading the whole ledger themselves.
pub async fn keep_reconciled(console: Shared, stop: CancellationToken) {
    let interval = Duration::from_secs(console.args.reconcile_interval_secs);
    loop {
        let started = Utc::now();
        let args = console.reconcile_args(None, None, None);
        let outcome = tokio::select! {
            outcome = reconcile::compute(&console.pool, &args) => outcome,
            () = stop.cancelled() => return,
        };
        console.reconciliation.send_modify(|state| match outcome {
            Ok(result) => {
                state.latest = Some(Arc::new(Reconciled {
                    result,
                    at: Utc::now(),
                    started,
                }));
                state.failure = None;
            }
            Err(err) => {
                let reason = format!("cannot reconcile every report: {err:#}");
                tracing::warn!(error = %reason, "background reconciliation failed; the pages keep the last result");
                state.failure = Some((started, reason));
            }
        });
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = console.reconcile_now.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// The shared state as handlers receive it.
pub type Shared = Arc<Console>;

impl Console {
    /// The request's session, or "sign in first".
    pub async fn session(&self, headers: &HeaderMap) -> Result<Session, ConsoleError> {
        auth::session_of(&self.pool, headers)
            .await?
            .ok_or(ConsoleError::SignInFirst)
    }

    /// The session of a POST whose form carries its CSRF token; `needs_operator` for
    /// actions. Checked here, on the server, for every POST but the sign-in's.
    pub async fn post_session(
        &self,
        headers: &HeaderMap,
        fields: &Fields,
        needs_operator: bool,
    ) -> Result<Session, ConsoleError> {
        let session = self.session(headers).await?;
        if !session.csrf_matches(fields.get("csrf")) {
            return Err(ConsoleError::Forbidden(
                "the form's security token is missing or stale: reload the page and try again"
                    .to_string(),
            ));
        }
        if needs_operator && session.role != Role::Operator {
            return Err(ConsoleError::Forbidden(format!(
                "{} is a viewer: replaying, resolving and acknowledging need the operator role",
                session.user
            )));
        }
        Ok(session)
    }

    /// The latest reconciliation of every report. Waits only for the first one after a
    /// start, or, when `fresh`, for one begun after the request (*Reconcile now*); fails
    /// when the attempt it waited for failed.
    pub async fn reconciliation(&self, fresh: bool) -> anyhow::Result<Arc<Reconciled>> {
        let asked = Utc::now();
        if fresh {
            self.reconcile_now.notify_one();
        }
        let mut state = self.reconciliation.subscribe();
        let ready = state
            .wait_for(|s| {
                let newer = |at: &DateTime<Utc>| !fresh || *at >= asked;
                s.latest.as_ref().is_some_and(|r| newer(&r.started))
                    || s.failure.as_ref().is_some_and(|(at, _)| newer(at))
            })
            .await
            .context("the console is stopping")?;
        match (&ready.latest, &ready.failure) {
            (Some(latest), _) if !fresh || latest.started >= asked => Ok(latest.clone()),
            (_, Some((_, failure))) => Err(anyhow::anyhow!("{failure}")),
            (Some(latest), None) => Ok(latest.clone()),
            (None, None) => Err(anyhow::anyhow!("no reconciliation yet")),
        }
    }

    /// `reconcile`'s settings for this console's database, broker and group.
    pub fn reconcile_args(
        &self,
        report_id: Option<String>,
        dsp: Option<String>,
        period: Option<NaiveDate>,
    ) -> ReconcileArgs {
        ReconcileArgs {
            database: self.args.database.clone(),
            kafka: self.args.kafka.clone(),
            schemas: self.args.schemas.clone(),
            group: self.args.group.clone(),
            summaries_topic: self.args.summaries_topic.clone(),
            report_id,
            dsp,
            period,
            json: false,
            csv: false,
        }
    }

    /// Whether cookies are marked Secure: served over TLS here or behind a proxy.
    pub fn secure_cookies(&self) -> bool {
        self.args.secure_cookies || self.args.tls_cert.is_some()
    }

    /// How long a session lasts.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.args.session_hours.max(1)) * 3600)
    }
}

/// Runs `console` or `console user …`.
pub async fn console(cli: &ConsoleCli) -> anyhow::Result<()> {
    match &cli.command {
        Some(ConsoleCommand::User(command)) => users::run(command).await,
        None => serve(cli.serve.clone(), crate::shutdown::on_signals()).await,
    }
}

/// Serves the console until `stop` is cancelled.
pub async fn serve(args: ServeArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let pool = db::connect(&args.database.url()?, 8).await?;
    db::migrate(&pool).await?;
    let decoder = LineDecoder::new(Arc::new(args.schemas.store()?), args.schemas.registry()?);
    let decoy_password = auth::random_token()?;
    let decoy_hash = tokio::task::spawn_blocking(move || auth::hash_password(&decoy_password))
        .await
        .context("hashing the decoy password was interrupted")??;
    let listen = args.listen;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM console_users")
        .fetch_one(&pool)
        .await
        .context("cannot read console_users")?;
    let console = Arc::new(Console {
        pool,
        decoder,
        args,
        limiter: SignInLimiter::default(),
        decoy_hash,
        reconciliation: watch::Sender::new(ReconcileState::default()),
        reconcile_now: Notify::new(),
    });
    tokio::spawn(keep_reconciled(console.clone(), stop.clone()));
    let acceptor = match (&console.args.tls_cert, &console.args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr().context("no local address")?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!(address = %bound, "console listening on {scheme}://{bound}/");
    if users == 0 {
        tracing::warn!(
            "no console users yet: add one with `royalty-ingest console user add NAME --role operator`"
        );
    }
    let app = router(console).into_make_service_with_connect_info::<tls::ClientAddr>();
    match acceptor {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor, stop.clone())
                .context("cannot set up the TLS listener")?;
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    }
    .context("the console server failed")
}

/// Every route of the console.
pub fn router(console: Shared) -> Router {
    use pages::{dead_letters, drift, overview, reports, sign_in};
    Router::new()
        .route("/", get(overview::page))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/{id}", get(dead_letters::letter))
        .route("/dead-letters/replay", post(dead_letters::confirm_replay))
        .route("/dead-letters/replay/send", post(dead_letters::replay))
        .route("/dead-letters/resolve", post(dead_letters::resolve))
        .route("/drift", get(drift::list))
        .route("/drift/acknowledge", post(drift::acknowledge))
        .route("/tracks/{isrc}", get(drift::track))
        .route("/reports", get(reports::page))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/console.css", get(stylesheet))
        .with_state(console)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        html::STYLESHEET,
    )
}
