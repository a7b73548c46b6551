//! How fast the console's pages answer on a big ledger: a fresh database is filled by SQL
//! with `--ledger-rows` ledger rows (36 periods × 6 DSPs, one report each, with control
//! totals, one of them short of a line; a report's rows stored together, as `run` books a
//! report's lines as they arrive), `--dead-letters` dead letters (a third resolved,
//! mixed classes, DSPs and periods) and `--drifts` drift events; the console is served
//! in-process and every page fetched `--rounds` times over HTTP after a warm-up. Prints
//! each page's median and slowest time (the figures in BENCHMARKS.md).
//!
//!   eval "$(scripts/services env)"; export KAFKA_BROKERS DATABASE_URL
//!   cargo run --release --example console_bench -- --ledger-rows 1000000 --dead-letters 100000
//!
//! `--keep` leaves the database for a look (its name is printed; `scripts/services
//! drop-test-dbs` drops it).

use std::time::{Duration, Instant};

use anyhow::Context;
use royalty_ingest::config::{DatabaseArgs, KafkaArgs, SchemaArgs};
use royalty_ingest::console::auth::{Role, put_user};
use royalty_ingest::console::{ServeArgs, serve};
use tokio_util::sync::CancellationToken;

fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const FILL_LEDGER: &str = "
INSERT INTO royalty_ledger (line_key, dsp_name, report_period, transaction_id, isrc, upc,
       stream_count, royalty_amount, currency, territory, usage_type, line_type, label, artist,
       report_id, source_topic, source_partition, source_offset, source_timestamp)
SELECT sha256(int8send(n)), d.dsp, p.period, 'TX-' || n,
       'GBQZA' || (24 + n % 3) || lpad((n % 100000)::text, 5, '0'), NULL, 1 + n % 50000,
       round((n % 1000003) * 0.0000037, 13), 'USD', 'US', 'stream', 'sale', 'Harbor Records',
       'Mira Kade', lower(replace(d.dsp, ' ', '')) || '-' || to_char(p.period, 'YYYYMM'),
       'bench.raw', 0, n, timestamptz '2026-01-01'
  FROM generate_series($1::bigint, $2::bigint) AS n
 CROSS JOIN LATERAL (SELECT (ARRAY['Spotify','Apple Music','YouTube','Deezer','Amazon Music',
                                   'TIDAL'])[1 + (n * 216 / ($3 + 1)) % 6] AS dsp) d
 CROSS JOIN LATERAL (SELECT (date '2023-07-01' + make_interval(months => ((n * 216 / ($3 + 1)) / 6)::int))::date
                            AS period) p";

const FILL_SUMMARIES: &str = "
INSERT INTO report_summaries (report_id, dsp_name, report_period, currency, lines, quantity,
       amount, source, created_at, source_topic, source_partition, source_offset)
SELECT report_id, dsp_name, report_period, currency,
       count(*) + CASE WHEN row_number() OVER (ORDER BY report_id) = 1 THEN 1 ELSE 0 END,
       sum(stream_count), sum(royalty_amount), 'bench', timestamptz '2025-12-01',
       'bench.summaries', 0, row_number() OVER (ORDER BY report_id)
  FROM royalty_ledger GROUP BY report_id, dsp_name, report_period, currency";

const FILL_QUARANTINE: &str = "
INSERT INTO quarantine (source_topic, source_partition, source_offset, source_timestamp,
       consumer_group, record_key, record_value, error_stage, error_class, reason,
       dead_letter_id, quarantined_at, resolved_at, resolved_note, resolved_by_user, dsp_name,
       report_period, report_id)
SELECT 'bench.raw', 1, n, now(), 'royalty-ingest', convert_to('key-' || n, 'UTF8'),
       decode('c301' || lpad(to_hex(n), 16, '0') || '00', 'hex'), c.stage, c.class,
       c.class || ': refused line ' || n, 'dl-' || md5(n::text),
       timestamptz '2026-01-01' + make_interval(secs => n::double precision),
       CASE WHEN n % 3 = 0 THEN now() END, CASE WHEN n % 3 = 0 THEN 'bench' END,
       CASE WHEN n % 3 = 0 THEN 'bench' END,
       CASE WHEN c.stage = 'decode' THEN NULL ELSE
         (ARRAY['Spotify','Apple Music','YouTube','Deezer','Amazon Music','TIDAL'])[1 + n % 6] END,
       CASE WHEN c.stage = 'decode' THEN NULL ELSE
         (date '2023-07-01' + make_interval(months => (n % 36)::int))::date END,
       NULL
  FROM generate_series(1, $1::bigint) AS n
 CROSS JOIN LATERAL (SELECT (ARRAY['decode','validate','validate','validate'])[1 + n % 4] AS stage,
                            (ARRAY['unknown_fingerprint','gs1_check_digit','isrc_format',
                                   'currency_unknown'])[1 + n % 4] AS class) c";

const FILL_DRIFT: &str = "
INSERT INTO drift_events (drift_id, dsp_name, isrc, kind, expected, received, occurrences,
       first_report_id, first_source)
SELECT 'drift-' || n, (ARRAY['Spotify','Apple Music','YouTube'])[1 + n % 3],
       'GBQZA24' || lpad(n::text, 5, '0'), (ARRAY['upc_mismatch','label_mismatch',
       'artist_mismatch','unknown_isrc'])[1 + n % 4], 'expected-' || n, 'received-' || n,
       1 + n % 40, 'bench', 'bench.raw[0]@' || n
  FROM generate_series(1, $1::bigint) AS n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ledger_rows = flag("--ledger-rows", 1_000_000);
    let dead_letters = flag("--dead-letters", 100_000);
    let drifts = flag("--drifts", 10_000);
    let rounds = flag("--rounds", 20) as usize;
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://royalty:royalty@127.0.0.1:5432/royalty".to_string());
    let name = format!("ri_test_console_bench_{}", std::process::id());
    let admin_pool = royalty_ingest::db::connect(&admin, 1).await?;
    // A generated name, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin_pool)
        .await
        .context("cannot create the bench database")?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let pool = royalty_ingest::db::connect(&url, 2).await?;
    royalty_ingest::db::migrate(&pool).await?;

    let started = Instant::now();
    const CHUNK: u64 = 200_000;
    let mut done = 0;
    while done < ledger_rows {
        let upto = (done + CHUNK).min(ledger_rows);
        sqlx::query(FILL_LEDGER)
            .bind(done as i64 + 1)
            .bind(upto as i64)
            .bind(ledger_rows as i64)
            .execute(&pool)
            .await
            .context("cannot fill the ledger")?;
        done = upto;
    }
    sqlx::query(FILL_SUMMARIES)
        .execute(&pool)
        .await
        .context("summaries")?;
    sqlx::query(FILL_QUARANTINE)
        .bind(dead_letters as i64)
        .execute(&pool)
        .await
        .context("quarantine")?;
    sqlx::query(FILL_DRIFT)
        .bind(drifts as i64)
        .execute(&pool)
        .await
        .context("drift")?;
    for table in [
        "royalty_ledger",
        "report_summaries",
        "quarantine",
        "drift_events",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&pool)
            .await?;
    }
    eprintln!(
        "[console-bench] filled {ledger_rows} ledger rows, {dead_letters} dead letters, {drifts} drifts in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    put_user(&pool, "bench", Role::Operator, "bench password 1").await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let args = ServeArgs {
        listen: format!("127.0.0.1:{port}").parse()?,
        secure_cookies: false,
        tls_cert: None,
        tls_key: None,
        reconcile_interval_secs: 60,
        session_hours: 1,
        database: DatabaseArgs {
            database_url: url.clone(),
            database_url_file: None,
        },
        kafka: KafkaArgs {
            brokers: std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
            properties: Vec::new(),
        },
        schemas: SchemaArgs::default(),
        dlq_topic: "royalty.events.dlq".into(),
        run_metrics_url: None,
        group: "royalty-ingest".into(),
        // A topic of its own that does not exist: a fresh database has no stored offsets,
        // so the shared summaries topic would be read whole, as `run` never leaves it.
        summaries_topic: format!("console-bench.summaries.{}", std::process::id()),
    };
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(args, stop.clone()));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let session = sign_in(&http, &base).await?;

    let deep: i64 = sqlx::query_scalar(
        "SELECT quarantine_id FROM quarantine ORDER BY quarantine_id OFFSET 100 LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let letter: String =
        sqlx::query_scalar("SELECT dead_letter_id FROM quarantine WHERE quarantine_id = $1")
            .bind(deep)
            .fetch_one(&pool)
            .await?;
    let pages = [
        ("overview", "/".to_string()),
        (
            "dead letters, open, first page",
            "/dead-letters?status=open".to_string(),
        ),
        (
            "dead letters, open, page at the end (keyset)",
            format!("/dead-letters?status=open&before={deep}"),
        ),
        (
            "dead letters, class + DSP + period",
            "/dead-letters?class=gs1_check_digit&dsp=Spotify&period=2024-01&status=all".to_string(),
        ),
        (
            "dead letters, text search",
            "/dead-letters?q=refused+line+99999".to_string(),
        ),
        (
            "dead letters, superseded (none match)",
            "/dead-letters?status=superseded".to_string(),
        ),
        ("one dead letter", format!("/dead-letters/{letter}")),
        ("drift, open", "/drift?status=open".to_string()),
        ("track history", "/tracks/GBQZA2400001".to_string()),
        ("reports (reconcile, 216 reports)", "/reports".to_string()),
        (
            "reports, one report",
            "/reports?report=spotify-202307".to_string(),
        ),
        // Every report reconciled now (the cache bypassed): reads the whole ledger.
        (
            "reports, reconcile now (uncached)",
            "/reports?fresh=1".to_string(),
        ),
    ];
    println!("| page | median | slowest of {rounds} (3 uncached) |");
    println!("|---|---:|---:|");
    for (label, path) in &pages {
        // The uncached reconciliation takes seconds: three rounds tell enough.
        let rounds = if path.contains("fresh") {
            rounds.min(3)
        } else {
            rounds
        };
        let mut times: Vec<Duration> = Vec::with_capacity(rounds);
        for round in 0..=rounds {
            let at = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .header("cookie", &session)
                .send()
                .await?;
            let status = response.status();
            let _ = response.text().await?;
            anyhow::ensure!(status.is_success(), "{path}: {status}");
            if round > 0 {
                times.push(at.elapsed());
            }
        }
        times.sort();
        println!(
            "| {label} | {:.0} ms | {:.0} ms |",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        );
    }
    stop.cancel();
    let _ = server.await;
    pool.close().await;
    if std::env::args().any(|a| a == "--keep") {
        eprintln!("[console-bench] kept database {name}");
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin_pool)
    .await?;
    Ok(())
}

async fn sign_in(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    // The server binds after it hashed its decoy password: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        match http.get(format!("{base}/sign-in")).send().await {
            Ok(page) => break page,
            Err(err) if Instant::now() > deadline => return Err(err.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ri_console_sign_in="))
        .and_then(|v| v.split(';').next())
        .context("no sign-in cookie")?
        .to_string();
    let html = page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).context("no form token")? + marker.len();
    let csrf = html[at..].split('"').next().unwrap_or_default().to_string();
    let body = format!("csrf={csrf}&user=bench&password=bench+password+1");
    let response = http
        .post(format!("{base}/sign-in"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ri_console_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .context("sign-in failed")
}
