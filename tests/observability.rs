//! The alert rules and the dashboard against a real Prometheus (Debian's package, started
//! by this test) scraping a live `run`: every rule loads, and every query of the dashboard
//! and of the rules (its threshold taken off) returns data.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::pipeline::{
    ChildGuard, mixed_stream, publish_records, run_flags_with_metrics, spawn_run, terminate,
    wait_for_rows,
};

/// The rule expressions without their `> threshold`.
fn rule_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts.yml"
    ))
    .expect("alerts.yml");
    let mut out = Vec::new();
    let mut alert = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let (query, threshold) = expr
                .trim()
                .rsplit_once(" > ")
                .expect("`<query> > <threshold>`");
            assert!(threshold.trim().parse::<f64>().is_ok(), "{alert}: {expr}");
            out.push((alert.clone(), query.to_string()));
        }
    }
    out
}

/// Every query of the dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/dashboards/royalty-ingest.json"
        ))
        .expect("dashboard"),
    )
    .expect("dashboard json");
    let mut out = Vec::new();
    for panel in json["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push((
                panel["title"].as_str().unwrap_or("?").to_string(),
                target["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    out
}

async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Option<usize> {
    let body: serde_json::Value = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())?;
    body["data"]["result"].as_array().map(Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_and_dashboard_query_returns_data_from_a_live_run() {
    let (url, pool) = common::fresh_database().await;
    let topic = common::fresh_topic("it.obs.raw", 2).await;
    let dlq = common::fresh_topic("it.obs.dlq", 1).await;
    let (records, _) = mixed_stream(81, 500, 50, 5);
    publish_records(&common::producer(), &topic, &records).await;

    let metrics = format!("127.0.0.1:{}", common::free_port());
    let mut run = spawn_run(
        &run_flags_with_metrics(&topic, &dlq, "it-obs", &metrics),
        &url,
    );
    wait_for_rows(&pool, 500, Duration::from_secs(120), "lines booked").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/deploy/prometheus/alerts.yml\nscrape_configs:\n  - job_name: royalty-ingest\n    static_configs:\n      - targets: [\"{metrics}\"]\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .expect("write config");
    let web = format!("127.0.0.1:{}", common::free_port());
    let _prometheus = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (scripts/services install puts Debian's package in place)"),
    );
    let base = format!("http://{web}");
    let client = reqwest::Client::new();

    // Every rule loads and evaluates without error.
    let expected_rules = rule_queries().len();
    common::wait_until(
        Duration::from_secs(60),
        "rules loaded and evaluated",
        || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let Ok(response) = client.get(format!("{base}/api/v1/rules")).send().await else {
                    return false;
                };
                let Some(body) = response
                    .text()
                    .await
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                else {
                    return false;
                };
                let rules: Vec<&serde_json::Value> = body["data"]["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                    .collect();
                rules.len() == expected_rules
                    && rules.iter().all(|r| {
                        r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z"
                    })
            }
        },
    )
    .await;

    // Every query returns data (rates and subqueries need a few scrapes first).
    for (name, expr) in dashboard_queries().into_iter().chain(rule_queries()) {
        common::wait_until(Duration::from_secs(90), &format!("{name}: {expr}"), || {
            let (client, base, expr) = (client.clone(), base.clone(), expr.clone());
            async move { query(&client, &base, &expr).await.is_some_and(|n| n > 0) }
        })
        .await;
    }
    terminate(&mut run).await;
}
