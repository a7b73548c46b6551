//! Benchmark of `royalty-ingest` on the local services; `scripts/bench` builds and runs it.
//!
//! One run measures, on one machine, the pipeline and the ceilings it is judged against:
//!
//! 1. **publish**: `royalty-ingest sample --seed 7` writes N records (schema v1–v3, 8%
//!    redeliveries, 4% restatements, 3% invalid records) to a fresh topic: the clean mix,
//!    always published, since every other scenario is compared with it. Each other
//!    `--mix` gets a topic of its own, published by this program: `drift-heavy` is the
//!    same records with every valid line's ISRC replaced by one of its own (a redelivery or
//!    restatement keeps its line's), and its batch run's database gets a one-track catalog
//!    first, so every line is drift (an ISRC unknown to a loaded catalog);
//!    `restatement-heavy` has 30% restatements, `dead-letter-heavy` 20% invalid records;
//! 2. **consumer ceiling**: a bare rdkafka `BaseConsumer` assigned every partition from the
//!    beginning counts records, with no processing, until each partition reaches its high
//!    watermark;
//! 3. **COPY ceilings**: `COPY … FROM STDIN (FORMAT binary)` of N distinct lines in a
//!    scratch database migrated with the project's own migrations, into three tables: the
//!    ledger's columns bare (no key, index or check), the same with only the primary key on
//!    `line_key` (the "keyed table"), and `royalty_ledger` itself (primary key,
//!    indexes, checks: what `run` writes into). Rows are encoded (with sqlx's own encoders,
//!    NUMERIC included) before the clock starts;
//! 4. **batch run**, once per scenario (the clean mix from an empty ledger first, then each
//!    other `--mix`, then the clean mix over each `--prefill`, each with its ratio to the
//!    first): `royalty-ingest run --exit-when-idle-ms 2000` on a fresh database and group.
//!    A prefilled ledger holds P rows of 36 earlier periods, inserted (and vacuumed) before
//!    the clock starts. *Drained* is the first moment (polled every 100 ms) the
//!    offsets `run` stored in `consumer_offsets` cover every record of the topic; the rate
//!    is N / (spawn → drained): process start, migrations and the group join count, the
//!    idle wait does not. Peak RSS is VmHWM, CPU is utime+stime, both read from /proc
//!    every 100 ms (the last reading falls in the idle wait, so no work is missed);
//! 5. **steady**: `run` as a daemon on another fresh topic and database, once per rate and
//!    producer linger asked for. Once a probe line is booked (the daemon owns its
//!    partitions), an rdkafka producer (`--producer-linger-ms`, default 5; acks all) sends
//!    R records/s for S seconds, each when it is due. Latency is `first_ingested_at` (now()
//!    = start of the batch transaction) minus `source_timestamp` (the producer's
//!    CreateTime), percentiles by PostgreSQL's `percentile_cont`. Transactions are counted
//!    as distinct `first_ingested_at` values (one per transaction that booked lines).
//!
//! Each phase also splits the machine's CPU time by command (from /proc), so a figure taken
//! while something else ran (a build, tests) says so. Nothing is asserted about timings:
//! this reports. Scratch databases (`ri_bench_*`) and
//! topics (`bench.*`) are removed at the end, also on failure and on Ctrl-C / SIGTERM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{NaiveDate, Utc};
use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use royalty_ingest::avro::{ROYALTY_LINE, SchemaStore, encode_single_object};
use royalty_ingest::db::redact;
use royalty_ingest::domain::LineKey;
use royalty_ingest::drift::catalog::{RawCatalogEntry, check_entry};
use royalty_ingest::sample::{
    SampleKind, SampleMix, SampleRng, generate_mix, isrc_for, record_key, upc_for, valid_line,
};
use serde_json::{Value, json};
use sqlx::encode::IsNull;
use sqlx::postgres::{PgArgumentBuffer, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{AssertSqlSafe, Connection, Encode};

/// `run`'s idle exit in the batch phase (not counted in its rate).
const IDLE_EXIT_MS: u64 = 2_000;
/// How often long phases print a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Benchmarks ingestion on the local Kafka broker and PostgreSQL (see scripts/bench).
/// ROYALTY_* variables in the environment reach `royalty-ingest run` (e.g.
/// ROYALTY_BATCH_SIZE), KAFKA_PROPERTIES every client it starts.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Opts {
    /// Records `royalty-ingest sample` publishes for the ceilings and the batch run.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Records per second published in the steady phase; a comma-separated list runs one
    /// steady phase per rate (and per `--producer-linger-ms`).
    #[arg(long, value_delimiter = ',', default_value = "5000")]
    steady_rate: Vec<u64>,
    /// The steady producer's `linger.ms`; a comma-separated list runs one steady phase per
    /// value. Kafka's clients default to 0 (older Java) or 5.
    #[arg(long, value_delimiter = ',', default_value = "5")]
    producer_linger_ms: Vec<u64>,
    /// How many seconds the steady phase publishes.
    #[arg(long, default_value_t = 30)]
    steady_seconds: u64,
    /// Skip the steady (latency) phase.
    #[arg(long)]
    skip_steady: bool,
    /// What the published lines are, a comma-separated list; each gets a batch run
    /// compared with the clean one (always run first): `clean` (the sample as
    /// `royalty-ingest sample` makes it, no catalog), `drift-heavy` (the same records, every
    /// valid line with an ISRC of its own that a one-track catalog loaded before the batch
    /// run does not know), `restatement-heavy` (30% restatements), `dead-letter-heavy`
    /// (20% invalid records).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "clean")]
    mix: Vec<Mix>,
    /// Rows of earlier periods in the ledger before a clean batch run, a comma-separated
    /// list (0: an empty ledger, the clean run every scenario is compared with).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    prefill: Vec<u64>,
    /// Batch runs of every scenario, in rounds (clean, then each other scenario, again
    /// and again): a scenario's ratio is the median of its rounds' ratios to the clean run
    /// of the same round. One run's rate moves by ±5% on a shared machine, and a round
    /// pairs runs minutes apart.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Keep the scratch databases and topics for inspection.
    #[arg(long)]
    keep: bool,
    /// The royalty-ingest binary to measure.
    #[arg(long, default_value = "target/release/royalty-ingest")]
    royalty_ingest: PathBuf,
    /// JSON results file; the child processes' logs go next to it.
    #[arg(long, default_value = "target/bench/results.json")]
    results: PathBuf,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// URL of an existing database; the scratch databases are created on its server.
    #[arg(long, env = "DATABASE_URL")]
    #[arg(default_value = "postgres://royalty:royalty@127.0.0.1:5432/royalty")]
    database_url: String,
}

/// The kind of data published for a batch run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
enum Mix {
    /// `royalty-ingest sample --seed 7`, no catalog: no drift.
    Clean,
    /// The same records with distinct ISRCs, unknown to a loaded one-track catalog.
    DriftHeavy,
    /// 30% restatements of earlier lines.
    RestatementHeavy,
    /// 20% records the decoder or validator refuses.
    DeadLetterHeavy,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Clean => "clean",
            Mix::DriftHeavy => "drift-heavy",
            Mix::RestatementHeavy => "restatement-heavy",
            Mix::DeadLetterHeavy => "dead-letter-heavy",
        }
    }

    /// The shares the generator is asked for.
    fn shares(self) -> SampleMix {
        match self {
            Mix::Clean | Mix::DriftHeavy => SampleMix::default(),
            Mix::RestatementHeavy => SampleMix {
                restatements: 30,
                ..SampleMix::default()
            },
            Mix::DeadLetterHeavy => SampleMix {
                invalid: 20,
                ..SampleMix::default()
            },
        }
    }
}

/// One batch run: what was published and how many rows the ledger held before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scenario {
    mix: Mix,
    prefill: u64,
}

impl Scenario {
    /// The clean mix into an empty ledger: what every other scenario is compared with.
    const BASELINE: Scenario = Scenario {
        mix: Mix::Clean,
        prefill: 0,
    };

    fn name(self) -> String {
        match self.prefill {
            0 => self.mix.name().to_string(),
            rows => format!("{}, prefill {rows}", self.mix.name()),
        }
    }

    /// A name for its database, group and topics (letters, digits and `_` only).
    fn role(self) -> String {
        let mix = self.mix.name().replace('-', "_");
        match self.prefill {
            0 => format!("run_{mix}"),
            rows => format!("run_{mix}_p{rows}"),
        }
    }

    /// The baseline, then each other mix from an empty ledger, then the clean mix over each
    /// prefill, each once.
    fn all(opts: &Opts) -> Vec<Scenario> {
        let mixes = opts.mix.iter().map(|&mix| Scenario { mix, prefill: 0 });
        let prefills = opts.prefill.iter().map(|&prefill| Scenario {
            mix: Mix::Clean,
            prefill,
        });
        let mut all = vec![Scenario::BASELINE];
        for scenario in mixes.chain(prefills) {
            if !all.contains(&scenario) {
                all.push(scenario);
            }
        }
        all
    }
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("[bench] error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(bench(opts));
    // The drain thread of an interrupted consumer phase must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn bench(opts: Opts) -> ExitCode {
    let scratch = Scratch::new(&opts);
    let outcome = tokio::select! {
        result = all_phases(&opts, &scratch) => Some(result),
        () = interrupted() => None,
    };
    // Dropping the phases killed their children; what is left is the scratch state.
    scratch.remove(opts.keep).await;
    match outcome {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(err)) => {
            eprintln!("[bench] error: {err:#}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("[bench] interrupted");
            ExitCode::from(130)
        }
    }
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} },
        Err(_) => drop(tokio::signal::ctrl_c().await),
    }
}

/// The summary table and the JSON document, filled in phase by phase.
#[derive(Default)]
struct Results {
    rows: Vec<(String, String)>,
    json: serde_json::Map<String, Value>,
}

impl Results {
    fn row(&mut self, label: impl Into<String>, value: String) {
        self.rows.push((label.into(), value));
    }
}

async fn all_phases(opts: &Opts, scratch: &Scratch) -> anyhow::Result<()> {
    ensure!(
        opts.records > 0 && opts.partitions > 0,
        "--records and --partitions must be > 0"
    );
    let bin = &opts.royalty_ingest;
    ensure!(
        bin.is_file(),
        "{} does not exist (scripts/bench builds it)",
        bin.display()
    );
    let dir = opts
        .results
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (machine, json_machine) = machine();
    let scenarios = Scenario::all(opts);
    let names: Vec<String> = scenarios.iter().map(|s| s.name()).collect();
    let names = names.join("; ");
    eprintln!(
        "[bench] {} records, {} partitions, batch runs: {names} ({} round(s)); {machine}",
        opts.records, opts.partitions, opts.rounds
    );
    let mut results = Results::default();
    results.json.insert("machine".into(), json_machine);
    let o = opts;
    let options = json!({ "records": o.records, "partitions": o.partitions, "steady_rate": o.steady_rate,
                          "producer_linger_ms": o.producer_linger_ms, "steady_seconds": o.steady_seconds, "skip_steady": o.skip_steady,
                          "mix": o.mix.iter().map(|m| m.name()).collect::<Vec<_>>(),
                          "prefill": o.prefill, "rounds": o.rounds });
    results.json.insert("options".into(), options);

    let mut topics: Vec<(Mix, String)> = Vec::new();
    for scenario in &scenarios {
        if topics.iter().any(|(mix, _)| *mix == scenario.mix) {
            continue;
        }
        let topic = scratch.topic(&format!("raw_{}", scenario.mix.name().replace('-', "_")));
        match scenario.mix {
            Mix::Clean => publish_phase(opts, &topic, &dir, &mut results).await?,
            mix => publish_generated(opts, mix, &topic, &mut results).await?,
        }
        topics.push((scenario.mix, topic));
    }
    let clean_topic = &topics[0].1;
    let (records, consumer_rate) = consumer_phase(opts, scratch, clean_topic, &mut results).await?;
    let [bare, keyed, ledger] = copy_phase(scratch, opts.records, &mut results).await?;
    let ceilings = [consumer_rate, bare, keyed, ledger];
    // Each round's runs, in the order of `scenarios` (the clean baseline first).
    let mut rounds: Vec<Vec<(f64, Value)>> = Vec::new();
    for n in 1..=opts.rounds {
        let mut round = Vec::new();
        for &scenario in &scenarios {
            let topic = topics.iter().find(|(mix, _)| *mix == scenario.mix);
            let topic = &topic.context("every mix was published")?.1;
            let phase = BatchRun {
                scenario,
                round: (n, opts.rounds),
                topic,
                total: records,
                ceilings,
            };
            round.push(batch_phase(opts, scratch, phase, &dir, &mut results).await?);
        }
        rounds.push(round);
    }
    let mut table = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        // (ratio to the round's clean run, rate, the run's JSON), by ratio.
        let mut runs: Vec<(f64, f64, &Value)> = rounds
            .iter()
            .map(|round| (round[i].0 / round[0].0, round[i].0, &round[i].1))
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (ratio, rate, json) = runs[runs.len() / 2];
        let each: Vec<String> = rounds
            .iter()
            .map(|round| format!("{:.2}", round[i].0 / round[0].0))
            .collect();
        let spread = match opts.rounds {
            1 => String::new(),
            _ => format!(" (median of rounds {})", each.join(" / ")),
        };
        results.row(
            format!("scenario {}", scenario.name()),
            format!("{}/s, {ratio:.2}x clean{spread}", human(rate)),
        );
        let per_round: Vec<Value> = rounds
            .iter()
            .map(|round| {
                json!({ "records_per_s": round[i].0, "ratio_to_clean": round[i].0 / round[0].0 })
            })
            .collect();
        table.push(
            json!({ "scenario": scenario.name(), "mix": scenario.mix.name(),
                           "prefill": scenario.prefill, "records_per_s": rate,
                           "ratio_to_clean": ratio, "rounds": per_round, "run": json }),
        );
    }
    results.json.insert("runs".into(), Value::Array(table));
    if !opts.skip_steady {
        let mut runs = Vec::new();
        for &rate in &opts.steady_rate {
            for &linger in &opts.producer_linger_ms {
                let run = Steady {
                    rate,
                    linger_ms: linger,
                };
                runs.push(steady_phase(opts, scratch, &dir, run, &mut results).await?);
            }
        }
        results.json.insert("steady".into(), Value::Array(runs));
    }

    let width = results.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!(
        "\n== royalty-ingest benchmark: {} records, {} partitions, {machine} ==",
        o.records, o.partitions
    );
    for (label, value) in &results.rows {
        println!("{label:<width$}  {value}");
    }
    let text = serde_json::to_string_pretty(&results.json).context("cannot render the results")?;
    std::fs::write(&opts.results, text + "\n")
        .with_context(|| format!("cannot write {}", opts.results.display()))?;
    println!("results: {}", opts.results.display());
    Ok(())
}

/// Phase 1: the project's own generator, as a child process.
async fn publish_phase(
    opts: &Opts,
    topic: &str,
    dir: &Path,
    results: &mut Results,
) -> anyhow::Result<()> {
    let log = dir.join("sample.log");
    let (n, brokers, p) = (opts.records, &opts.brokers, opts.partitions);
    let args =
        format!("sample --brokers={brokers} --lines={n} --seed=7 --topic={topic} --partitions={p}");
    let started = Instant::now();
    let mut child = spawn(&opts.royalty_ingest, &args, &log)?;
    let mut said = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().context("cannot wait for sample")? {
            break status;
        }
        if said.elapsed() >= PROGRESS_EVERY {
            // `sample` rewrites its progress line with \r: show the latest.
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let latest = text.rsplit('\r').next().unwrap_or("").trim();
            let latest = if latest.is_empty() {
                "generating"
            } else {
                latest
            };
            eprintln!(
                "[bench] publish: {latest} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            said = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    };
    ensure_success(status, "royalty-ingest sample", &log)?;
    let secs = started.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    eprintln!("[bench] publish: {n} records in {secs:.1} s");
    let label = "publish (royalty-ingest sample --seed 7)";
    results.row(
        label,
        format!("{n} records in {secs:.1} s ({}/s)", human(rate)),
    );
    let json =
        json!({ "records": n, "seconds": secs, "command": format!("royalty-ingest {args}") });
    results.json.insert("publish".into(), json);
    Ok(())
}

/// Phase 1 for a mix other than clean: the generator's records (seed 7, in the mix's
/// shares), encoded the way `royalty-ingest sample` encodes them. With `drift-heavy`, every
/// valid line's ISRC is replaced by one of its own (keyed by line identity, so a
/// redelivery or a restatement keeps its line's ISRC; invalid records stay as they are).
/// Published by this program: `sample` has no such options.
async fn publish_generated(
    opts: &Opts,
    mix: Mix,
    topic: &str,
    results: &mut Results,
) -> anyhow::Result<()> {
    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let mut isrcs: HashMap<String, String> = HashMap::new();
    let mut records: Vec<Record> = Vec::with_capacity(opts.records as usize);
    let mut kinds: HashMap<&'static str, u64> = HashMap::new();
    for mut sample in generate_mix(7, opts.records as usize, mix.shares()) {
        *kinds.entry(kind_name(sample.kind)).or_default() += 1;
        let value = match sample.schema_version {
            Some(version) => {
                if mix == Mix::DriftHeavy && sample.kind != SampleKind::Invalid {
                    let next = isrcs.len();
                    let isrc = isrcs
                        .entry(sample.key.clone())
                        .or_insert_with(|| unknown_isrc(next));
                    sample.line.isrc = isrc.clone();
                }
                let schema = store.by_name_version(ROYALTY_LINE, version);
                let schema = schema.context("a royalty-line schema version is missing")?;
                encode_single_object(&schema, &sample.line).context("cannot encode a line")?
            }
            None => format!("garbage, not Avro: {}", sample.key).into_bytes(),
        };
        records.push((sample.key, value));
    }
    create_topic(&opts.brokers, topic, opts.partitions).await?;
    let producer: FutureProducer = client_config(&opts.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .context("cannot create the producer")?;
    let started = Instant::now();
    for chunk in records.chunks(1000) {
        let sends = chunk.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(30),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(err, _)| err)
                .context("a record was not acknowledged")?;
        }
    }
    let (n, secs) = (records.len(), started.elapsed().as_secs_f64());
    let mut shares: Vec<String> = kinds
        .iter()
        .map(|(kind, count)| format!("{kind} {:.1}%", *count as f64 * 100.0 / n.max(1) as f64))
        .collect();
    shares.sort();
    let (name, distinct) = (mix.name(), isrcs.len());
    eprintln!("[bench] publish {name}: {n} records in {secs:.1} s");
    let rate = n as f64 / secs;
    let mut text = format!(
        "{n} records in {secs:.1} s ({}/s): {}",
        human(rate),
        shares.join(", ")
    );
    if mix == Mix::DriftHeavy {
        text += &format!("; {distinct} distinct unknown ISRCs");
    }
    results.row(format!("publish {name} (generated, seed 7)"), text);
    let json = json!({ "records": n, "seconds": secs, "distinct_unknown_isrcs": distinct,
                       "kinds": kinds, "command": format!("{name} mix of seed 7 (in-process)") });
    results.json.insert(format!("publish_{name}"), json);
    Ok(())
}

/// A sample kind as the publish row names it.
fn kind_name(kind: SampleKind) -> &'static str {
    match kind {
        SampleKind::New => "new",
        SampleKind::Redelivery => "redelivered",
        SampleKind::Restatement => "restated",
        SampleKind::Invalid => "invalid",
    }
}

/// The `n`th ISRC of the drift-heavy mix: a registrant code no sample ISRC uses.
fn unknown_isrc(n: usize) -> String {
    format!("QZDRF{:07}", n % 10_000_000)
}

/// With `--mix drift-heavy`, a one-track catalog (a sample track no drift-heavy line
/// carries) in the batch run's database, so that every other ISRC is unknown to a loaded
/// catalog. Migrates the database first (`run` finds it migrated).
async fn load_one_track_catalog(url: &str) -> anyhow::Result<()> {
    let pool = royalty_ingest::db::connect(url, 1).await?;
    royalty_ingest::db::migrate(&pool).await?;
    let entry = check_entry(&RawCatalogEntry {
        isrc: isrc_for(0),
        upc: upc_for(0),
        valid_from: "2020-01-01".into(),
        ..RawCatalogEntry::default()
    })
    .map_err(|reason| anyhow::anyhow!("the bench's catalog entry is refused: {reason}"))?;
    let mut tx = pool
        .begin()
        .await
        .context("cannot begin the catalog load")?;
    royalty_ingest::drift::store::apply_entries(&mut tx, [(&entry, "bench")])
        .await
        .map_err(anyhow::Error::new)
        .context("cannot load the one-track catalog")?;
    tx.commit()
        .await
        .context("cannot commit the catalog load")?;
    pool.close().await;
    Ok(())
}

/// Phase 2: how fast the broker hands the topic to a client that does nothing with it.
/// Returns (records, records/s).
async fn consumer_phase(
    opts: &Opts,
    scratch: &Scratch,
    topic: &str,
    results: &mut Results,
) -> anyhow::Result<(u64, f64)> {
    let (brokers, topic, group) = (
        opts.brokers.clone(),
        topic.to_string(),
        scratch.group("bare"),
    );
    let before = CpuSnapshot::take();
    // librdkafka's poll blocks: a thread of its own. If Ctrl-C abandons it, the runtime's
    // shutdown timeout lets the process exit anyway.
    let drain = move || drain_bare(&brokers, &topic, &group);
    let (records, rate) = tokio::task::spawn_blocking(drain)
        .await
        .context("drain")??;
    let (cpu, cpu_json) = CpuSnapshot::take().since(&before);
    results.row(
        "ceiling: bare consumer drain",
        format!("{records} records: {}/s", human(rate)),
    );
    results.row("  CPU", cpu);
    let json = json!({ "records": records, "records_per_s": rate, "cpu": cpu_json });
    results.json.insert("consumer_ceiling".into(), json);
    Ok((records, rate))
}

/// Counts records from the beginning until each partition reaches its high watermark;
/// records/s from assign to the last one.
fn drain_bare(brokers: &str, topic: &str, group: &str) -> anyhow::Result<(u64, f64)> {
    let consumer: BaseConsumer = client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create the bare consumer")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .context("no metadata")?;
    let ids = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()));
    // (partition, offset still to reach); reached ones are set to 0.
    let mut ends = Vec::new();
    let mut list = TopicPartitionList::new();
    for id in ids {
        let (_, high) = consumer
            .fetch_watermarks(topic, id, timeout)
            .context("no watermarks")?;
        ends.push((id, high));
        list.add_partition_offset(topic, id, Offset::Beginning)
            .context("cannot assign")?;
    }
    ensure!(!ends.is_empty(), "topic {topic} has no partitions");
    let total: i64 = ends.iter().map(|(_, high)| high).sum();
    let started = Instant::now();
    consumer
        .assign(&list)
        .context("cannot assign the partitions")?;
    let (mut count, mut last_seen, mut said) = (0u64, Instant::now(), Instant::now());
    while ends.iter().any(|&(_, end)| end > 0) {
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                (count, last_seen) = (count + 1, Instant::now());
                let next = message.offset() + 1;
                if let Some(end) = ends.iter_mut().find(|(id, _)| *id == message.partition())
                    && next >= end.1
                {
                    end.1 = 0;
                }
            }
            Some(Err(err)) => bail!("the bare consumer failed: {err}"),
            None => ensure!(
                last_seen.elapsed() < Duration::from_secs(60),
                "no record for 60 s"
            ),
        }
        if said.elapsed() >= PROGRESS_EVERY {
            eprintln!("[bench] consumer ceiling: {count}/{total} records");
            said = Instant::now();
        }
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "[bench] consumer ceiling: {count} records, {}/s",
        human(rate)
    );
    Ok((count, rate))
}

/// Phase 3: binary COPY of `rows` distinct valid lines into three tables: the ledger's
/// columns bare (no key, index or check: COPY by itself), the same with only the primary
/// key on `line_key`, and `royalty_ledger` as migrated (primary key, two indexes, checks:
/// what `run` writes into). Returns the three rates in rows/s (encoding excluded).
async fn copy_phase(
    scratch: &Scratch,
    rows: u64,
    results: &mut Results,
) -> anyhow::Result<[f64; 3]> {
    let url = scratch.database("copy").await?;
    let pool = connect(&url).await?;
    royalty_ingest::db::migrate(&pool).await?;
    for create in [
        "CREATE TABLE ledger_bare (LIKE royalty_ledger INCLUDING DEFAULTS)",
        "CREATE TABLE ledger_keyed (LIKE royalty_ledger INCLUDING DEFAULTS)",
        "ALTER TABLE ledger_keyed ADD PRIMARY KEY (line_key)",
    ] {
        sqlx::query(create)
            .execute(&pool)
            .await
            .with_context(|| format!("cannot prepare the COPY tables: {create}"))?;
    }
    pool.close().await;
    let chunks = encode_copy_rows(rows)?;
    let mut conn = PgConnection::connect(&url)
        .await
        .context("cannot connect for COPY")?;
    let mut rates = [0.0; 3];
    let tables = [
        ("ledger_bare", "ceiling: COPY, bare ledger columns"),
        ("ledger_keyed", "ceiling: COPY, columns + primary key"),
        ("royalty_ledger", "ceiling: COPY into royalty_ledger"),
    ];
    for (rate, (table, label)) in rates.iter_mut().zip(tables) {
        let (secs, cpu, cpu_json) = copy_into(&mut conn, table, &chunks, rows).await?;
        *rate = rows as f64 / secs;
        results.row(
            label,
            format!("{rows} rows in {secs:.2} s: {}/s", human(*rate)),
        );
        results.row("  CPU", cpu);
        let json = json!({ "format": "binary", "table": table, "rows": rows, "seconds": secs,
                           "rows_per_s": *rate, "cpu": cpu_json });
        results.json.insert(format!("copy_ceiling_{table}"), json);
    }
    conn.close()
        .await
        .context("cannot close the COPY connection")?;
    settle(&url, "COPY ceilings").await?;
    Ok(rates)
}

/// One COPY of the encoded rows into `table`: seconds and where the CPU went.
async fn copy_into(
    conn: &mut PgConnection,
    table: &str,
    chunks: &[Vec<u8>],
    rows: u64,
) -> anyhow::Result<(f64, String, Value)> {
    let statement = format!(
        "COPY {table} (line_key, dsp_name, report_period, transaction_id, isrc, upc, \
         stream_count, royalty_amount, currency, territory, usage_type, line_type, label, artist, \
         report_id, source_topic, source_partition, source_offset, source_timestamp) \
         FROM STDIN (FORMAT binary)"
    );
    let (before, started) = (CpuSnapshot::take(), Instant::now());
    let mut copy = conn.copy_in_raw(&statement).await.context("COPY refused")?;
    let (mut sent, mut said) = (0usize, Instant::now());
    for chunk in chunks {
        sent += chunk.len();
        copy.send(chunk.as_slice())
            .await
            .context("COPY data refused")?;
        if said.elapsed() >= PROGRESS_EVERY {
            eprintln!("[bench] COPY into {table}: {} MiB sent", sent >> 20);
            said = Instant::now();
        }
    }
    let copied = copy.finish().await.context("COPY failed")?;
    let secs = started.elapsed().as_secs_f64();
    let (cpu, cpu_json) = CpuSnapshot::take().since(&before);
    ensure!(copied == rows, "COPY wrote {copied} rows, not {rows}");
    let rate = human(rows as f64 / secs);
    eprintln!("[bench] COPY into {table}: {rows} rows in {secs:.2} s, {rate}/s");
    Ok((secs, cpu, cpu_json))
}

/// The COPY stream in PostgreSQL's binary format, in ~4 MiB chunks. Values go through
/// sqlx's own encoders (NUMERIC included), so they are exactly what a bind would send.
fn encode_copy_rows(rows: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    const CHUNK: usize = 4 << 20;
    let (mut chunks, mut out) = (Vec::new(), Vec::with_capacity(CHUNK));
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&[0; 8]); // flags, header extension length
    let (mut rng, mut buf, now) = (SampleRng::new(7), PgArgumentBuffer::default(), Utc::now());
    for n in 0..rows {
        let line = valid_line(&mut rng, n + 1);
        let period = NaiveDate::parse_from_str(&line.report_period, "%Y-%m-%d").context("date")?;
        let key = LineKey::for_line(&line.dsp_name, period, &line.transaction_id);
        out.extend_from_slice(&19i16.to_be_bytes());
        field(&mut out, &mut buf, &key.as_bytes()[..])?;
        field(&mut out, &mut buf, line.dsp_name.as_str())?;
        field(&mut out, &mut buf, period)?;
        for text in [&line.transaction_id, &line.isrc] {
            field(&mut out, &mut buf, text.as_str())?;
        }
        field(&mut out, &mut buf, line.upc.as_deref())?;
        field(&mut out, &mut buf, line.stream_count)?;
        field(&mut out, &mut buf, line.royalty_amount)?;
        field(&mut out, &mut buf, line.currency.as_str())?;
        let l = &line;
        for text in [
            &l.territory,
            &l.usage_type,
            &l.line_type,
            &l.label,
            &l.artist,
            &l.report_id,
        ] {
            field(&mut out, &mut buf, text.as_deref())?;
        }
        field(&mut out, &mut buf, "bench.copy")?;
        field(&mut out, &mut buf, (n % 4) as i32)?;
        field(&mut out, &mut buf, (n / 4) as i64)?;
        field(&mut out, &mut buf, now)?;
        if out.len() >= CHUNK {
            chunks.push(std::mem::replace(&mut out, Vec::with_capacity(CHUNK)));
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    chunks.push(out);
    Ok(chunks)
}

/// One field of a binary COPY tuple: length (-1 for NULL), then the bind encoding.
fn field<'q, T>(out: &mut Vec<u8>, buf: &mut PgArgumentBuffer, value: T) -> anyhow::Result<()>
where
    T: Encode<'q, Postgres>,
{
    buf.clear();
    let encoded = value.encode_by_ref(buf);
    match encoded.map_err(|err| anyhow::anyhow!("cannot encode a COPY value: {err}"))? {
        IsNull::Yes => out.extend_from_slice(&(-1i32).to_be_bytes()),
        IsNull::No => {
            let len = i32::try_from(buf.len()).context("COPY value too long")?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(buf);
        }
    }
    Ok(())
}

/// One batch run to measure.
struct BatchRun<'a> {
    scenario: Scenario,
    /// Which round (from 1) of how many.
    round: (u32, u32),
    /// The topic its mix was published to.
    topic: &'a str,
    /// Records on it.
    total: u64,
    /// Consumer, COPY bare, keyed and ledger rates.
    ceilings: [f64; 4],
}

/// Starts a checkpoint and waits for it, so that every batch run starts at the same point
/// of PostgreSQL's checkpoint cycle: a checkpoint the WAL volume triggers inside one run
/// (and not another) makes that run pay a full-page image for every page it then touches
/// first; without this, the mixes' ratios moved by ±15% between invocations. Needs
/// `pg_checkpoint` (`scripts/services` grants it); without it the runs go on, unaligned.
async fn checkpoint(pool: &PgPool) {
    if let Err(err) = sqlx::query("CHECKPOINT").execute(pool).await {
        eprintln!(
            "[bench] note: no CHECKPOINT before the run ({err}); its figures may include one"
        );
    }
}

/// Vacuums (and analyzes) the database a finished phase wrote, so that the autovacuum its
/// writes call for runs now and not inside the next run's clock: the COPY ceilings' 3M rows
/// were vacuumed during the clean run, and each mix's during the mix after it (a
/// restatement-heavy run leaves a million updated rows), which moved single runs by ±10%.
async fn settle(url: &str, phase: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let pool = connect(url).await?;
    sqlx::query("VACUUM (ANALYZE)")
        .execute(&pool)
        .await
        .with_context(|| format!("cannot VACUUM after {phase}"))?;
    pool.close().await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("[bench] {phase}: vacuumed in {secs:.1} s, before the next phase");
    Ok(())
}

/// Phase 4: `run` from an empty (or prefilled) ledger until it has stored offsets for
/// every record. Returns its records/s and its JSON.
async fn batch_phase(
    opts: &Opts,
    scratch: &Scratch,
    phase: BatchRun<'_>,
    dir: &Path,
    results: &mut Results,
) -> anyhow::Result<(f64, Value)> {
    let BatchRun {
        scenario,
        round,
        topic,
        total,
        ceilings,
    } = phase;
    let (role, name) = match round {
        (_, 1) => (scenario.role(), scenario.name()),
        (n, of) => (
            format!("{}_r{n}", scenario.role()),
            format!("{} (round {n} of {of})", scenario.name()),
        ),
    };
    let url = scratch.database(&role).await?;
    let group = scratch.group(&role);
    if scenario.mix == Mix::DriftHeavy {
        load_one_track_catalog(&url).await?;
    }
    if scenario.prefill > 0 {
        prefill(&url, scenario.prefill).await?;
    }
    let pool = connect(&url).await?;
    let (log, idle) = (
        dir.join(format!("{role}.log")),
        format!("--exit-when-idle-ms={IDLE_EXIT_MS}"),
    );
    checkpoint(&pool).await;
    eprintln!("[bench] run {name}: starting");
    let args = run_args(opts, scratch, &url, &group, topic, &role) + " " + &idle;
    let (before, started) = (CpuSnapshot::take(), Instant::now());
    let mut child = spawn(&opts.royalty_ingest, &args, &log)?;
    let monitor = Monitor::start(child.0.id());
    let watched = watch_batch_run(&mut child, &monitor, &pool, total, started, &log).await?;
    let Watched {
        first_commit,
        drained,
        exit,
        ..
    } = watched;
    let (split, split_json) = watched.cpu.since(&before);
    // Before this program's own (sequential) counting of the ledger.
    let (scans, scans_json) = ledger_scans(&pool).await;
    let counts = "SELECT (SELECT count(*) FROM royalty_ledger), (SELECT count(*) FROM quarantine), \
        (SELECT count(*) FROM ledger_revisions)";
    let (rows, quarantined, revisions): (i64, i64, i64) = sqlx::query_as(counts)
        .fetch_one(&pool)
        .await
        .context("cannot count the ledger")?;
    let rows = rows - scenario.prefill as i64;
    // Every drift_events row names the alert that announced it (the relay deletes an alert's
    // outbox row once published, so the outbox cannot count them).
    let drift = "SELECT (SELECT count(DISTINCT alert_id) FROM drift_events), \
        (SELECT count(*) FROM drift_events)";
    let (alerts, drift_events): (i64, i64) = sqlx::query_as(drift)
        .fetch_one(&pool)
        .await
        .context("cannot count the drift alerts")?;
    pool.close().await;
    settle(&url, &format!("run {name}")).await?;
    // stdout holds one summary line; the rest is the log `run` writes on stderr.
    let log_bytes = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let summary = last_line_starting(&log, "ingested ");
    eprintln!("[bench] run {name}: {summary}");

    let (proc, rate) = (monitor.get(), total as f64 / drained);
    let (rss, cpu) = (proc.peak_rss_kib as f64 / 1024.0, proc.cpu_secs);
    let [vs_consumer, vs_bare, vs_keyed, vs_copy] = ceilings.map(|ceiling| rate / ceiling);
    let before_run = match scenario.prefill {
        0 => "empty ledger".to_string(),
        rows => format!("{rows} rows prefilled"),
    };
    results.row(
        format!("run {name}: {before_run} -> drained"),
        format!("{total} records in {drained:.2} s: {}/s", human(rate)),
    );
    results.row(
        "  ratio to consumer / COPY bare / keyed / ledger",
        format!("{vs_consumer:.2}x / {vs_bare:.2}x / {vs_keyed:.2}x / {vs_copy:.2}x"),
    );
    results.row("  spawn -> first commit", format!("{first_commit:.2} s"));
    let cross = exit - IDLE_EXIT_MS as f64 / 1000.0;
    results.row("  exit - idle wait (cross-check)", format!("{cross:.2} s"));
    let per_record = cpu * 1e6 / total.max(1) as f64;
    results.row(
        "  peak RSS / CPU",
        format!(
            "{rss:.0} MiB / {cpu:.1} CPU-s over {exit:.1} s wall ({per_record:.1} CPU-µs per record)"
        ),
    );
    results.row("  CPU until drained", split);
    let ledger = format!("{rows} / {quarantined} / {revisions}");
    results.row("  new ledger rows / quarantined / revisions", ledger);
    let drifted = format!("{alerts} / {drift_events} / {log_bytes}");
    results.row("  drift alerts / drift_events rows / log bytes", drifted);
    results.row("  royalty_ledger scans", scans);
    let command = format!("royalty-ingest {}", args.replace(&url, &redact(&url)));
    let json = json!({
        "records": total, "drained_seconds": drained, "records_per_s": rate,
        "ratio_to_consumer_ceiling": vs_consumer, "ratio_to_copy_bare_ceiling": vs_bare,
        "ratio_to_copy_keyed_ceiling": vs_keyed, "ratio_to_copy_ledger_ceiling": vs_copy,
        "first_commit_seconds": first_commit, "exit_seconds": exit, "idle_exit_ms": IDLE_EXIT_MS,
        "peak_rss_mib": rss, "cpu_seconds": cpu, "cpu_us_per_record": per_record,
        "new_ledger_rows": rows, "prefilled_rows": scenario.prefill, "quarantined": quarantined,
        "revisions": revisions, "drift_alerts": alerts, "drift_events": drift_events,
        "log_bytes": log_bytes, "ledger_scans": scans_json, "summary": summary, "command": command,
        "cpu_until_drained": split_json,
    });
    Ok((rate, json))
}

/// Fills the ledger at `url` (migrated here; `run` finds it so) with `rows` distinct lines
/// of 36 periods before the sample's (2023-07 … 2026-06), one statement per period, then
/// VACUUM ANALYZE, so the run starts on a settled table as a label's years-old ledger is.
/// Generated by PostgreSQL itself: a key is the SHA-256 of the row number, which no line key
/// (a SHA-256 of DSP, period and transaction id) can equal. Each period's rows go in in key
/// order, so the ledger's primary key (period first) is built by appending: the history is
/// the same rows in any order, and this order fills 100M rows in minutes, not hours.
async fn prefill(url: &str, rows: u64) -> anyhow::Result<()> {
    const PERIODS: u64 = 36;
    let pool = royalty_ingest::db::connect(url, 1).await?;
    royalty_ingest::db::migrate(&pool).await?;
    let started = Instant::now();
    let insert = "INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, \
            isrc, upc, stream_count, royalty_amount, currency, territory, usage_type, line_type, \
            label, artist, report_id, source_topic, source_partition, source_offset, \
            source_timestamp) \
        SELECT sha256(int8send(n)), \
            (ARRAY['Spotify','Apple Music','YouTube','Deezer','Amazon Music','TIDAL'])[1 + n % 6], \
            date '2023-07-01' + make_interval(months => (n % 36)::int), 'PRE-' || n, \
            'GBQZA' || (24 + n % 3) || lpad((n % 100000)::text, 5, '0'), NULL, 1 + n % 50000, \
            round((n % 1000003) * 0.0000037, 13), 'USD', 'US', 'stream', 'sale', \
            'Harbor Records', 'Mira Kade', 'prefill', 'bench.prefill', 0, n, now() \
        FROM generate_series($1::bigint, $2::bigint, 36) AS n ORDER BY 1";
    for period in 0..PERIODS {
        // The row numbers n in 1..=rows with n % 36 = period.
        let first = if period == 0 { PERIODS } else { period };
        if first > rows {
            continue;
        }
        sqlx::query(insert)
            .bind(first as i64)
            .bind(rows as i64)
            .execute(&pool)
            .await
            .context("cannot prefill the ledger")?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "[bench] prefill: {}/{PERIODS} periods in {secs:.0} s",
            period + 1
        );
    }
    let vacuum = sqlx::query("VACUUM ANALYZE royalty_ledger")
        .execute(&pool)
        .await;
    vacuum.context("prefill: VACUUM ANALYZE failed")?;
    let size = "SELECT pg_size_pretty(pg_total_relation_size('royalty_ledger'))";
    let size: String = sqlx::query_scalar(size).fetch_one(&pool).await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("[bench] prefill: {rows} rows ({size} with indexes) in {secs:.0} s");
    pool.close().await;
    Ok(())
}

/// What watching the batch run saw, in seconds since it was spawned.
struct Watched {
    first_commit: f64,
    drained: f64,
    exit: f64,
    /// The machine's CPU figures at the drained moment.
    cpu: CpuSnapshot,
}

/// Polls `run`'s stored offsets until it exits: notes the first commit and the moment the
/// offsets cover all `total` records.
async fn watch_batch_run(
    child: &mut Guarded,
    monitor: &Monitor,
    pool: &PgPool,
    total: u64,
    started: Instant,
    log: &Path,
) -> anyhow::Result<Watched> {
    let (mut first_commit, mut drained) = (None, None);
    let (mut said, mut last_stored, mut moved) = (Instant::now(), 0i64, Instant::now());
    let status = loop {
        if let Some(status) = child.0.try_wait().context("cannot wait for run")? {
            break status;
        }
        let (stored, now) = (stored_offsets(pool).await, started.elapsed().as_secs_f64());
        if stored > 0 && first_commit.is_none() {
            first_commit = Some(now);
        }
        if stored >= total as i64 && drained.is_none() {
            drained = Some((now, CpuSnapshot::take()));
            eprintln!("[bench] run: drained after {now:.1} s; waiting for its idle exit");
        }
        if stored != last_stored {
            (last_stored, moved) = (stored, Instant::now());
        }
        let stalled = moved.elapsed() > Duration::from_secs(300);
        ensure!(
            !stalled,
            "run made no progress for 300 s (see {})",
            log.display()
        );
        if said.elapsed() >= PROGRESS_EVERY && drained.is_none() {
            let p = monitor.get();
            let (rss, cpu) = (p.rss_kib / 1024, p.cpu_secs);
            eprintln!(
                "[bench] run: {stored}/{total} stored at {now:.0} s, RSS {rss} MiB, {cpu:.1} CPU-s"
            );
            said = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    };
    let exit = started.elapsed().as_secs_f64();
    ensure_success(status, "royalty-ingest run", log)?;
    let (drained, cpu) =
        drained.with_context(|| format!("run exited before storing all {total} offsets"))?;
    let first_commit = first_commit.unwrap_or(drained);
    Ok(Watched {
        first_commit,
        drained,
        exit,
        cpu,
    })
}

/// One steady run: the rate and the producer's linger.
#[derive(Debug, Clone, Copy)]
struct Steady {
    rate: u64,
    linger_ms: u64,
}

/// Phase 5: a daemon fed at a steady rate by a producer lingering `run.linger_ms`; latency
/// from record timestamp to transaction, and the transactions per second that carried it.
/// Returns the run's JSON.
async fn steady_phase(
    opts: &Opts,
    scratch: &Scratch,
    dir: &Path,
    run: Steady,
    results: &mut Results,
) -> anyhow::Result<Value> {
    let Steady { rate, linger_ms } = run;
    let role = format!("steady_{rate}_l{linger_ms}");
    let url = scratch.database(&role).await?;
    let (group, topic) = (scratch.group(&role), scratch.topic(&role));
    create_topic(&opts.brokers, &topic, opts.partitions).await?;
    let pool = connect(&url).await?;
    let log = dir.join(format!("{role}.log"));
    let args = run_args(opts, scratch, &url, &group, &topic, &role);
    let mut child = spawn(&opts.royalty_ingest, &args, &log)?;
    let monitor = Monitor::start(child.0.id());

    let secs = opts.steady_seconds;
    let total = rate * secs;
    let (probe_txn, records) = steady_records(total)?;
    let producer: FutureProducer = client_config(&opts.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .create()
        .context("cannot create the producer")?;

    let (key, value) = &records[0];
    let probe_record = FutureRecord::to(&topic).key(key).payload(value);
    let sent = producer.send(probe_record, Duration::from_secs(30)).await;
    sent.map_err(|(err, _)| err)
        .context("the probe record was not acknowledged")?;
    let waiting = Instant::now();
    while stored_offsets(&pool).await < 1 {
        if let Some(status) = child.0.try_wait().context("cannot wait for run")? {
            ensure_success(status, "royalty-ingest run (daemon)", &log)?;
        }
        ensure!(
            waiting.elapsed() < Duration::from_secs(60),
            "probe line not booked within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "[bench] steady: the daemon booked the probe; publishing {rate} records/s for {secs} s (producer linger.ms {linger_ms})"
    );

    let before = CpuSnapshot::take();
    let send_secs = publish_paced(&producer, &topic, &records[1..], rate, &pool).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Every steady record is a new valid line: stored offsets count booked lines.
    let mut booked = stored_offsets(&pool).await - 1;
    while booked < total as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        booked = stored_offsets(&pool).await - 1;
    }
    let proc = monitor.get();
    let (split, split_json) = CpuSnapshot::take().since(&before);
    let stop = terminate(&mut child).await;
    eprintln!("[bench] steady: {booked}/{total} booked; the daemon {stop}");
    // Before this program's own queries of the ledger; after the daemon's exit, so that its
    // connections have flushed their table statistics.
    let (scans, scans_json) = ledger_scans(&pool).await;
    // `first_ingested_at` is the inserting transaction's now(): one distinct value per
    // transaction that booked steady lines.
    let latency = "SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0), \
            coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0), coalesce(max(ms), 0), \
            count(DISTINCT first_ingested_at), \
            coalesce(extract(epoch FROM max(first_ingested_at) - min(first_ingested_at))::float8, 0) \
        FROM (SELECT (extract(epoch FROM first_ingested_at - source_timestamp) * 1000)::float8 AS ms, \
                     first_ingested_at \
                FROM royalty_ledger WHERE transaction_id <> $1) AS t";
    let query = sqlx::query_as(latency)
        .bind(&probe_txn)
        .fetch_one(&pool)
        .await;
    let (p50, p99, max, transactions, span): (f64, f64, f64, i64, f64) =
        query.context("cannot compute the latencies")?;
    pool.close().await;

    let rss = proc.peak_rss_kib as f64 / 1024.0;
    let achieved = total as f64 / send_secs;
    let per_second = transactions as f64 / span.max(1.0);
    let lines_per = total as f64 / (transactions.max(1) as f64);
    let head = format!("steady {rate}/s, producer linger.ms {linger_ms}");
    let published = format!("{total} records at {achieved:.0}/s over {send_secs:.1} s");
    results.row(format!("{head}: published"), published);
    let latencies = format!("{p50:.0} / {p99:.0} / {max:.0} ms ({booked} of {total} booked)");
    results.row("  latency p50 / p99 / max", latencies);
    let carried = format!("{transactions} ({per_second:.0}/s, {lines_per:.0} lines each)");
    results.row("  transactions that booked lines", carried);
    results.row("  run peak RSS", format!("{rss:.0} MiB"));
    results.row("  CPU until all booked", split);
    results.row("  royalty_ledger scans", scans);
    let command = format!("royalty-ingest {}", args.replace(&url, &redact(&url)));
    Ok(json!({
        "rate": rate, "producer_linger_ms": linger_ms, "seconds": secs, "sent": total,
        "send_seconds": send_secs, "booked": booked, "latency_p50_ms": p50,
        "latency_p99_ms": p99, "latency_max_ms": max, "transactions": transactions,
        "transactions_per_second": per_second, "peak_rss_mib": rss, "stop": stop,
        "ledger_scans": scans_json, "command": command, "cpu_until_booked": split_json,
    }))
}

/// A record to publish: key and value.
type Record = (String, Vec<u8>);

/// The probe line's transaction id, then the probe and `total` distinct lines encoded as
/// a producer would: keyed by identity, in schema versions 1–3 in turn. Encoded before the
/// clock starts so that sending keeps to the schedule.
fn steady_records(total: u64) -> anyhow::Result<(String, Vec<Record>)> {
    let store = SchemaStore::builtin().context("the built-in schemas do not load")?;
    let mut rng = SampleRng::new(11);
    let probe = valid_line(&mut rng, 0);
    let mut records = Vec::with_capacity(total as usize + 1);
    for n in 0..=total {
        // n = 0 is the probe; its transaction id ends in 00000000, no other line's does.
        let line = if n == 0 {
            probe.clone()
        } else {
            valid_line(&mut rng, n)
        };
        let schema = store.by_name_version(ROYALTY_LINE, 1 + (n % 3) as u32);
        let schema = schema.context("a royalty-line schema version is missing")?;
        let value = encode_single_object(&schema, &line).context("cannot encode a line")?;
        records.push((record_key(&line), value));
    }
    Ok((probe.transaction_id, records))
}

/// Sends `records` at `rate` per second, each as it falls due (the producer batches what
/// lingers together), then waits for every acknowledgement. Returns the seconds sending
/// took. Progress shows the offsets stored in `pool`.
async fn publish_paced(
    producer: &FutureProducer,
    topic: &str,
    records: &[Record],
    rate: u64,
    pool: &PgPool,
) -> anyhow::Result<f64> {
    let (started, mut said, mut next) = (Instant::now(), Instant::now(), 0usize);
    let mut deliveries = Vec::with_capacity(records.len());
    while next < records.len() {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(records.len());
        for (key, value) in &records[next..due] {
            let queued = producer.send_result(FutureRecord::to(topic).key(key).payload(value));
            deliveries.push(
                queued
                    .map_err(|(err, _)| err)
                    .context("cannot queue a record")?,
            );
        }
        next = due;
        if said.elapsed() >= PROGRESS_EVERY {
            let stored = stored_offsets(pool).await;
            eprintln!(
                "[bench] steady: {next}/{} sent, {stored} stored",
                records.len()
            );
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let send_secs = started.elapsed().as_secs_f64();
    for delivery in futures::future::join_all(deliveries).await {
        let delivered = delivery.context("the producer went away")?;
        delivered
            .map_err(|(err, _)| err)
            .context("a record was refused")?;
    }
    Ok(send_secs)
}

/// Records `run` has stored offsets for, all partitions together (0 before it migrated).
/// Read from `consumer_offsets`, never the ledger, so the ledger's scan counts stay `run`'s.
async fn stored_offsets(pool: &PgPool) -> i64 {
    let sql = "SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_offsets";
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0)
}

/// How `royalty_ledger` was read: a lookup that turned into sequential scans of a growing
/// ledger (a plan chosen while the table was small) shows here before any profile.
async fn ledger_scans(pool: &PgPool) -> (String, Value) {
    let sql = "SELECT coalesce(seq_scan, 0), coalesce(seq_tup_read, 0), coalesce(idx_scan, 0), \
        coalesce(autoanalyze_count, 0) FROM pg_stat_user_tables WHERE relname = 'royalty_ledger'";
    let query = sqlx::query_as::<_, (i64, i64, i64, i64)>(sql)
        .fetch_one(pool)
        .await;
    let (seq, seq_rows, idx, analyzed) = query.unwrap_or_default();
    let text = format!(
        "{seq} sequential ({seq_rows} rows read), {idx} index; autoanalyzed {analyzed} times"
    );
    let json = json!({ "seq_scan": seq, "seq_tup_read": seq_rows, "idx_scan": idx,
                       "autoanalyze_count": analyzed });
    (text, json)
}

/// SIGTERM (what `run` stops cleanly on), then up to 30 s to exit; says how it ended.
async fn terminate(child: &mut Guarded) -> String {
    let pid = child.0.id().to_string();
    if let Err(err) = Command::new("kill").args(["-TERM", &pid]).status() {
        return format!("could not be sent SIGTERM ({err}); killed");
    }
    let asked = Instant::now();
    while asked.elapsed() < Duration::from_secs(30) {
        match child.0.try_wait() {
            Ok(Some(status)) => {
                let secs = asked.elapsed().as_secs_f64();
                return format!("stopped {secs:.1} s after SIGTERM ({status})");
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => return format!("is in an unknown state ({err}); killed"),
        }
    }
    "did not stop within 30 s of SIGTERM; killed".to_string()
}

/// `run` over `topic` with its own dead-letter and alert topics, no catalog, no metrics.
fn run_args(
    opts: &Opts,
    scratch: &Scratch,
    url: &str,
    group: &str,
    topic: &str,
    role: &str,
) -> String {
    let (dlq, alerts) = (
        scratch.topic(&format!("{role}.dlq")),
        scratch.topic(&format!("{role}.alerts")),
    );
    let (brokers, p) = (&opts.brokers, opts.partitions);
    format!(
        "run --brokers={brokers} --database-url={url} --group={group} --topics={topic} \
         --dlq-topic={dlq} --alerts-topic={alerts} --catalog-topic= --metrics-addr= --topic-partitions={p}"
    )
}

/// Starts `bin` with whitespace-separated `args` (every value here is generated or a URL,
/// none has spaces), stdout and stderr into `log`; killed if dropped while running.
fn spawn(bin: &Path, args: &str, log: &Path) -> anyhow::Result<Guarded> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let child = Command::new(bin)
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .stdout(file.try_clone().context("cannot share the log file")?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    Ok(Guarded(child))
}

/// A child process killed and reaped when dropped (failure, Ctrl-C), so none is left behind.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn ensure_success(status: ExitStatus, what: &str, log: &Path) -> anyhow::Result<()> {
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    bail!(
        "{what} failed ({status}); the end of {}:\n{tail}",
        log.display()
    )
}

fn last_line_starting(log: &Path, prefix: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text.lines().rev().find(|l| l.starts_with(prefix));
    line.unwrap_or("").to_string()
}

/// Memory and CPU of a process, as read from /proc.
#[derive(Debug, Default, Clone, Copy)]
struct ProcStats {
    peak_rss_kib: u64,
    rss_kib: u64,
    cpu_secs: f64,
}

impl ProcStats {
    /// None once the process is gone or a zombie (it no longer reports its memory).
    fn read(pid: u32) -> Option<ProcStats> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, cpu_secs) = proc_cpu(&stat)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        };
        let (peak_rss_kib, rss_kib) = (kib("VmHWM:")?, kib("VmRSS:")?);
        Some(ProcStats {
            peak_rss_kib,
            rss_kib,
            cpu_secs,
        })
    }
}

/// The command name and utime + stime in seconds of a /proc/<pid>/stat line.
fn proc_cpu(stat: &str) -> Option<(&str, f64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    // After the command name come the state, then utime and stime 11 and 12 fields on
    // (fields 14 and 15 in proc(5)).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let ticks = ticks(11)? + ticks(12)?;
    Some((head.split_once('(')?.1, ticks as f64 / clock_ticks()))
}

/// Samples a child every 100 ms in the background; keeps the last figures it saw.
struct Monitor {
    stats: Arc<Mutex<ProcStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    fn start(pid: u32) -> Monitor {
        let stats = Arc::new(Mutex::new(ProcStats::default()));
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            while let Some(now) = ProcStats::read(pid) {
                *lock(&shared) = now;
                tokio::time::sleep(POLL).await;
            }
        });
        Monitor { stats, task }
    }

    fn get(&self) -> ProcStats {
        *lock(&self.stats)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// CPU-s used so far by the whole machine and by every process: splits a phase's CPU time
/// by command (royalty-ingest, postgres, java = the Kafka broker, bench = this program with
/// its consumer or producer), and shows when something else (rustc, a test) competed.
#[derive(Debug, Clone)]
struct CpuSnapshot {
    at: Instant,
    busy: f64,
    /// pid → (command, CPU-s).
    procs: HashMap<u32, (String, f64)>,
}

impl CpuSnapshot {
    fn take() -> CpuSnapshot {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let line = stat.lines().next().unwrap_or("").split_whitespace().skip(1);
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let busy: u64 = line
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum();
        let mut procs = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if let Some((command, secs)) = proc_cpu(&stat) {
                procs.insert(pid, (command.to_string(), secs));
            }
        }
        let busy = busy as f64 / clock_ticks();
        CpuSnapshot {
            at: Instant::now(),
            busy,
            procs,
        }
    }

    /// CPU-s per command since `before`, the busiest first. What processes that ended in
    /// between used (a finished rustc, an autovacuum worker) is only in "exited".
    fn since(&self, before: &CpuSnapshot) -> (String, Value) {
        let mut by_command: HashMap<&str, f64> = HashMap::new();
        for (pid, (command, secs)) in &self.procs {
            // By pid only: kernel workers rename themselves (kworker/1:1-events → …-mm_wq);
            // "kworker/1:1-events" counts as "kworker".
            let earlier = before.procs.get(pid).map_or(0.0, |(_, s)| *s);
            let command = command.split('/').next().unwrap_or(command);
            *by_command.entry(command).or_default() += (secs - earlier).max(0.0);
        }
        let mut busiest: Vec<(&str, f64)> =
            by_command.into_iter().filter(|(_, s)| *s >= 0.05).collect();
        busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let busy = self.busy - before.busy;
        let exited = (busy - busiest.iter().map(|(_, s)| s).sum::<f64>()).max(0.0);
        let wall = (self.at - before.at).as_secs_f64().max(0.001);
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let busy_pct = 100.0 * busy / (wall * cores);
        let shown: Vec<String> = busiest
            .iter()
            .take(5)
            .map(|(c, s)| format!("{c} {s:.1}"))
            .collect();
        let mut shown = shown.join(", ");
        shown += &format!(
            "{}exited {exited:.1} CPU-s",
            if shown.is_empty() { "" } else { ", " }
        );
        let text = format!("{shown} in {wall:.1} s; machine {busy_pct:.0}% busy");
        let commands: serde_json::Map<String, Value> = busiest
            .iter()
            .map(|(c, s)| (c.to_string(), json!(s)))
            .collect();
        let json = json!({ "cpu_s_by_command": commands, "exited_cpu_s": exited, "busy_cpu_s": busy,
                           "wall_s": wall, "machine_busy_pct": busy_pct });
        (text, json)
    }
}

/// USER_HZ, the unit of utime/stime in /proc (100 almost everywhere).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok();
        let ticks = out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
        ticks.unwrap_or(100.0)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The databases and topics this run made, removed at the end.
struct Scratch {
    suffix: String,
    admin_url: String,
    brokers: String,
    databases: Mutex<Vec<String>>,
    topics: Mutex<Vec<String>>,
    groups: Mutex<Vec<String>>,
}

impl Scratch {
    fn new(opts: &Opts) -> Scratch {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let nanos = since.map(|d| d.as_nanos() as u64).unwrap_or(0);
        let pid = u64::from(std::process::id());
        Scratch {
            suffix: format!("{:012x}", (nanos ^ (pid << 20)) & 0xffff_ffff_ffff),
            admin_url: opts.database_url.clone(),
            brokers: opts.brokers.clone(),
            databases: Mutex::new(Vec::new()),
            topics: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
        }
    }

    /// A topic name, remembered for removal (`run` creates the ones it writes to).
    fn topic(&self, role: &str) -> String {
        let name = format!("bench.{}.{role}", self.suffix);
        lock(&self.topics).push(name.clone());
        name
    }

    /// A consumer group name, remembered for removal.
    fn group(&self, role: &str) -> String {
        let name = format!("bench-{}-{role}", self.suffix);
        lock(&self.groups).push(name.clone());
        name
    }

    /// A new empty database; returns its URL.
    async fn database(&self, role: &str) -> anyhow::Result<String> {
        let name = format!("ri_bench_{}_{role}", self.suffix);
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .context("cannot connect to PostgreSQL (scripts/services up)")?;
        // The name is made here from a hex suffix and a fixed role, never from input.
        let create = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")));
        create
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create {name}"))?;
        lock(&self.databases).push(name.clone());
        let mut url = url::Url::parse(&self.admin_url).context("--database-url is not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    async fn remove(&self, keep: bool) {
        let databases = std::mem::take(&mut *lock(&self.databases));
        let topics = std::mem::take(&mut *lock(&self.topics));
        let groups = std::mem::take(&mut *lock(&self.groups));
        if keep {
            eprintln!("[bench] kept databases {databases:?} and topics {topics:?}");
            return;
        }
        match PgConnection::connect(&self.admin_url).await {
            Ok(mut admin) => {
                for name in &databases {
                    if let Err(err) = drop_database(&mut admin, name).await {
                        eprintln!("[bench] warning: cannot drop database {name}: {err}");
                    }
                }
            }
            Err(err) => eprintln!("[bench] warning: cannot drop {databases:?}: {err}"),
        }
        let admin: Result<AdminClient<DefaultClientContext>, _> =
            client_config(&self.brokers).create();
        // A topic or group that never came to be is unknown to the broker: nothing to do.
        if let Ok(admin) = admin {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            let _ = admin.delete_groups(&names, &AdminOptions::new()).await;
        }
    }
}

/// Drops a scratch database. A plain DROP makes an autovacuum worker busy with the fresh
/// ledger give way (FORCE may not terminate it: it is not ours); FORCE ends what a killed
/// child left connected. Either can meet the other's case, hence a few rounds.
async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let mut outcome = Ok(());
    for _ in 0..5 {
        for force in ["", " WITH (FORCE)"] {
            let sql = format!("DROP DATABASE IF EXISTS {name}{force}");
            outcome = sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *admin)
                .await
                .map(drop);
            if outcome.is_ok() {
                return outcome;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    outcome
}

/// Bootstrap servers plus the KAFKA_PROPERTIES pass-through `royalty-ingest` also honours.
fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    let properties = std::env::var("KAFKA_PROPERTIES").unwrap_or_default();
    for (key, value) in properties.split(',').filter_map(|p| p.split_once('=')) {
        config.set(key.trim(), value.trim());
    }
    config
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers)
        .create()
        .context("cannot create a Kafka admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let created = admin
        .create_topics([&new], &options)
        .await
        .context("cannot create topics")?;
    for result in created {
        result.map_err(|(name, code)| anyhow::anyhow!("cannot create topic {name}: {code}"))?;
    }
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new().max_connections(2).connect(url).await;
    pool.context("cannot connect to a scratch database")
}

/// The machine: a one-line summary and the JSON section.
fn machine() -> (String, Value) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let value = |text: &str, key: &str| {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap_or("");
        line.split_once(':')
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let mem_kib: f64 = value(&meminfo, "MemTotal")
        .trim_end_matches(" kB")
        .parse()
        .unwrap_or(0.0);
    let mem_gib = mem_kib / (1024.0 * 1024.0);
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(0);
    let cpu = value(&cpuinfo, "model name");
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // Other work on the machine (a build, tests) lowers every figure: say how busy it was
    // (the 1-minute average lags; the CPU line of each phase says what actually ran).
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: f64 = loadavg
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    if load > cores as f64 / 2.0 {
        eprintln!(
            "[bench] warning: load average {load} on {cores} cores: if other work still runs, figures will be low (see each phase's CPU line)"
        );
    }
    // Which tree was measured; the figures mean little without it.
    let git = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output();
    let git = git.map_or(String::new(), |o| {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    });
    let summary = format!(
        "{build} build of {git}, {cores} cores ({cpu}), {mem_gib:.1} GiB, load {load} at start"
    );
    let json = json!({ "cores": cores, "cpu": cpu, "mem_gib": mem_gib, "build": build,
                       "load_at_start": load, "git": git });
    (summary, json)
}

/// 243912.4 → "243.9k".
fn human(rate: f64) -> String {
    if rate >= 1000.0 {
        format!("{:.1}k", rate / 1000.0)
    } else {
        format!("{rate:.0}")
    }
}
