//! The `royalty-ingest` command line: parses arguments, sets up logging and hands over to
//! the library.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use royalty_ingest::commands::alerts_tail::{TailArgs, tail};
use royalty_ingest::commands::alerts_unknown::{UnknownTracksArgs, unknown_tracks};
use royalty_ingest::commands::catalog_as_of::{AsOfArgs, as_of};
use royalty_ingest::commands::catalog_import::{ImportArgs, import_catalog};
use royalty_ingest::commands::config_show;
use royalty_ingest::commands::dlq::list::{ListArgs, list};
use royalty_ingest::commands::dlq::replay::{ReplayArgs, replay};
use royalty_ingest::commands::dlq::resolve::{ResolveArgs, resolve};
use royalty_ingest::commands::dlq::show::{ShowArgs, show};
use royalty_ingest::commands::produce::{ProduceArgs, produce};
use royalty_ingest::commands::reconcile::{ReconcileArgs, reconcile};
use royalty_ingest::commands::sample::{SampleArgs, publish_sample};
use royalty_ingest::config::{self, DatabaseArgs, RunArgs};
use royalty_ingest::console::{ConsoleCli, console};
use royalty_ingest::db;
use royalty_ingest::observe::LogFormat;
use royalty_ingest::{kafka, observe, output, pipeline, shutdown};

/// A batch allocates and frees a few dozen small strings per line on several threads, and
/// glibc's allocator spent a third of `run`'s CPU on them (BENCHMARKS.md, "Session 12").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exactly-once ingestion of DSP royalty report lines from Kafka into a PostgreSQL ledger.
///
/// Start the local services first (scripts/services up); every option has an environment
/// variable, shown in each command's --help. `--config FILE` (or ROYALTY_CONFIG) reads
/// settings from a TOML file whose keys are run's flags (batch_size = 5000); flags and
/// environment variables take precedence over it.
#[derive(Debug, Parser)]
#[command(name = "royalty-ingest", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr: text (readable) or json (one object per line). RUST_LOG
    /// filters what is logged (default: info).
    #[arg(
        long,
        global = true,
        env = "ROYALTY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,

    /// Export the spans (one per batch, with partitions, offset ranges and outcome) to this
    /// OpenTelemetry collector over OTLP/HTTP, e.g. http://127.0.0.1:4318 (default: off).
    #[arg(long, global = true, env = "ROYALTY_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,

    /// Read settings from this TOML file, whose keys are run's flags with `_` for `-`
    /// (batch_size = 5000); every command takes the keys it has. Flags and environment
    /// variables take precedence over it.
    // Read (and removed from the arguments) by config::file::apply before clap parses;
    // declared here so that every --help shows it.
    #[arg(long, global = true, env = "ROYALTY_CONFIG", value_name = "FILE")]
    #[allow(dead_code)]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume royalty lines and post each distinct line exactly once into the ledger.
    ///
    /// Reads the raw topics as a member of a consumer group, decodes Avro (single-object
    /// encoding, or the Confluent wire format with --registry-url), validates ISRC, UPC,
    /// currency, period and amounts, and writes each batch with its Kafka offsets in one
    /// PostgreSQL transaction. Refused records go to the dead-letter topic with the reason.
    /// Stops cleanly on SIGTERM/Ctrl-C.
    Run(Box<RunArgs>),
    /// Publish DSP report files (CSV/TSV through a column profile, DDEX DSR flat files) as
    /// royalty lines, checked with the ledger's rules, plus each report's control totals.
    ///
    /// Bad lines are listed as FILE:LINE: field: rule and not published; a DSR file whose
    /// FOOT counts or summary totals disagree with its body is not published at all. The
    /// same file published twice books nothing twice (deterministic transaction ids).
    Produce(ProduceArgs),
    /// Compare each report's control totals (published by `produce`) with the ledger:
    /// lines, quantity and amount, exactly, per report and per DSP, period and currency.
    ///
    /// Explains what it can (lines refused by `run`, lines not ingested yet). Exit 0 when
    /// everything matches, 1 when anything differs, 2 when it could not tell: made for cron.
    Reconcile(ReconcileArgs),
    /// Publish realistic synthetic royalty lines (with redeliveries, restatements and
    /// invalid lines) to the raw topic, keyed by line identity.
    Sample(SampleArgs),
    /// Load the master catalog (ISRC → UPCs, label, artist) used for drift detection.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Follow the catalog drift alerts.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Review refused lines (dead letters) and send fixed ones back to be booked.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The configuration: `config show` prints the settings `run` would use and where each
    /// comes from (flags > environment > --config FILE > defaults), secrets redacted.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Serve the operator console: the dead-letter work queue, drift, reconciliation and
    /// ingest health in a browser, for royalty managers (`console user add` makes users).
    ///
    /// Server-rendered pages on --listen (default 127.0.0.1:8430; put a TLS reverse proxy
    /// in front for others, with --secure-cookies). Sign-in required; viewers read,
    /// operators also replay, resolve and acknowledge; every action is recorded.
    Console(Box<ConsoleCli>),
    /// Apply the ledger's database migrations (run does this too).
    Migrate(DatabaseArgs),
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Import a catalog CSV: each row is an ISRC's UPC(s), title, artist, label and ISWC
    /// from a business date on. Bad rows are reported with their line numbers; with more of
    /// them than --max-skipped (default 0) nothing is loaded and it exits 1. Changed entries
    /// close the current version (history is kept) and raise drift alerts; alerts the broker
    /// did not take wait in the outbox for `run` (exit 1). Importing the same file again
    /// changes nothing.
    Import(ImportArgs),
    /// The catalog version in effect for a report period as the catalog knew it at a given
    /// time (default: now): later loads and later backdated corrections are left out.
    AsOf(AsOfArgs),
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Print drift alerts as they arrive (Ctrl-C to stop): a readable line each, or JSON.
    Tail(TailArgs),
    /// List the tracks the catalog did not know (one alert per DSP and report announces
    /// them, with a count and a sample): all, or those of one alert, DSP, report or period.
    UnknownTracks(UnknownTracksArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration of `run` as TOML (usable as a --config file),
    /// each value with its source; passwords and secrets shown as ***.
    Show(Box<RunArgs>),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Summarise the dead letters: counts by day, stage, class and source topic, with how
    /// many are still open, were replayed, or never reached the topic (--each: one row per
    /// dead letter). Reads the topic from its beginning, commits nothing, and exits.
    List(ListArgs),
    /// Everything about one dead letter: reason, source, original record (payload decoded
    /// when its schema is known), quarantine row, replays.
    Show(ShowArgs),
    /// Send selected dead letters back to their source topic (or --to) with their original
    /// key, value, headers and timestamp; `run` books each once and marks it resolved.
    /// Asks before sending on a terminal; --dry-run shows what would be sent.
    Replay(ReplayArgs),
    /// Close dead letters by hand, with a required note (who, when and why are kept in
    /// quarantine): for the ones no replay will ever book. Nothing is deleted.
    Resolve(ResolveArgs),
}

fn main() -> ExitCode {
    // Before anything prints: a reader of stdout that leaves early must neither panic a
    // command nor stop its work half-way (src/output.rs has the rule and the reasons).
    let stdout = output::guard_stdout();
    let code = cli_main();
    // After the runtime is gone, so nothing prints any more: what is left goes out.
    stdout.finish();
    code
}

#[tokio::main]
async fn cli_main() -> ExitCode {
    // The config file's values become flags first (flags and environment beat them).
    let command = Cli::command();
    let applied = match config::file::apply(&command, std::env::args_os().collect()) {
        Ok(applied) => applied,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let matches = match command.clone().try_get_matches_from(applied.args.clone()) {
        Ok(matches) => matches,
        Err(err) => {
            if let Some(file) = applied
                .file
                .as_ref()
                .filter(|_| !applied.from_file.is_empty())
            {
                eprintln!(
                    "(settings from {} are passed as these flags: --{})",
                    file.display(),
                    applied.from_file.join(", --")
                );
            }
            return clap_exit(&err);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return clap_exit(&err),
    };
    let _tracing = match observe::init_tracing_as(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Config(ConfigCommand::Show(_)) = &cli.command {
        let show = command
            .find_subcommand("config")
            .and_then(|c| c.find_subcommand("show"));
        let show_matches = matches
            .subcommand_matches("config")
            .and_then(|m| m.subcommand_matches("show"));
        if let (Some(show), Some(show_matches)) = (show, show_matches) {
            print!("{}", config_show::render(show, show_matches, &applied));
            return ExitCode::SUCCESS;
        }
    }
    // reconcile speaks in three exit codes: 0 all match, 1 something differs, 2 error.
    let on_error = match cli.command {
        Command::Reconcile(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    };
    match execute(cli.command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            on_error
        }
    }
}

/// Prints clap's help, version or usage error and returns its exit code (clap's own
/// `exit` would end the process before the stdout forwarder wrote the text out).
fn clap_exit(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Run(args) => {
            let stop = shutdown::on_signals();
            let totals = pipeline::run(*args, stop).await?;
            let post = totals.stats.post;
            println!(
                "ingested {} records in {} batches: {} new lines, {} duplicates, {} enriched, {} restated, {} stale versions, {} dead letters",
                totals.records,
                totals.batches,
                post.inserted,
                post.duplicates,
                post.enriched,
                post.restated,
                post.stale,
                totals.stats.dead_letters
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample(args) => done(publish_sample(&args).await),
        Command::Produce(args) => {
            // Checked here: the command's producer settings keep idempotence whatever the
            // properties say, but the operator who tried to undo it should hear so.
            kafka::refuse_unsafe_properties(&args.kafka, &[kafka::Client::Producer])?;
            done(produce(&args).await)
        }
        Command::Reconcile(args) => Ok(match reconcile(&args).await? {
            true => ExitCode::SUCCESS,
            false => ExitCode::from(1),
        }),
        Command::Catalog(CatalogCommand::Import(args)) => done(import_catalog(&args).await),
        Command::Catalog(CatalogCommand::AsOf(args)) => done(as_of(&args).await),
        Command::Dlq(DlqCommand::List(args)) => done(list(&args).await),
        Command::Dlq(DlqCommand::Show(args)) => done(show(&args).await),
        Command::Dlq(DlqCommand::Replay(args)) => done(replay(&args).await),
        Command::Dlq(DlqCommand::Resolve(args)) => done(resolve(&args).await),
        Command::Alerts(AlertsCommand::Tail(args)) => {
            done(tail(&args, shutdown::on_signals()).await)
        }
        Command::Alerts(AlertsCommand::UnknownTracks(args)) => done(unknown_tracks(&args).await),
        // Printed by main, which holds the parsed arguments and their sources.
        Command::Config(ConfigCommand::Show(_)) => Ok(ExitCode::SUCCESS),
        Command::Console(cli) => done(console(&cli).await),
        Command::Migrate(args) => {
            let database_url = args.url()?;
            let pool = db::connect(&database_url, 1).await?;
            db::migrate(&pool).await?;
            println!("migrations applied to {}", db::redact(&database_url));
            db::print_legacy_identities(&pool).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
