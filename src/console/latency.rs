//! `run`'s end-to-end latency p99 for the overview, read from its Prometheus endpoint
//! (`run --metrics-addr`): the histogram `royalty_ingest_latency_seconds` is cumulative
//! since that `run` started, so the p99 is over its lifetime, to the bucket's bound.

use std::time::Duration;

use anyhow::Context;

/// The histogram `run` records each ledgered line's latency in.
const HISTOGRAM: &str = "royalty_ingest_latency_seconds_bucket";

/// Fetches `url` (bounded by `timeout`) and returns the p99's upper bucket bound in
/// seconds (`None` when no line was recorded yet; `f64::INFINITY` beyond the last bound).
pub async fn p99_from(url: &str, timeout: Duration) -> anyhow::Result<Option<f64>> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("cannot build an HTTP client")?;
    let text = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("cannot read run's metrics at {url}"))?
        .text()
        .await
        .with_context(|| format!("cannot read run's metrics at {url}"))?;
    Ok(p99_of(&text))
}

/// The p99's bucket bound from Prometheus text exposition (buckets of every label set
/// summed per bound).
pub fn p99_of(exposition: &str) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(HISTOGRAM) else {
            continue;
        };
        let Some(le_at) = rest.find("le=\"") else {
            continue;
        };
        let le_text = &rest[le_at + 4..];
        let Some(le_end) = le_text.find('"') else {
            continue;
        };
        let bound = match &le_text[..le_end] {
            "+Inf" => f64::INFINITY,
            other => match other.parse::<f64>() {
                Ok(bound) => bound,
                Err(_) => continue,
            },
        };
        let Some(count) = rest
            .rsplit(' ')
            .next()
            .and_then(|c| c.trim().parse::<f64>().ok())
        else {
            continue;
        };
        match buckets.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, sum)) => *sum += count,
            None => buckets.push((bound, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|(_, n)| *n)?;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, cumulative)| *cumulative >= total * 0.99)
        .map(|(bound, _)| *bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p99_is_the_first_bucket_holding_99_percent() {
        let text = "# TYPE royalty_ingest_latency_seconds histogram\n\
            royalty_ingest_latency_seconds_bucket{le=\"0.01\"} 10\n\
            royalty_ingest_latency_seconds_bucket{le=\"0.1\"} 980\n\
            royalty_ingest_latency_seconds_bucket{le=\"1\"} 995\n\
            royalty_ingest_latency_seconds_bucket{le=\"+Inf\"} 1000\n\
            royalty_ingest_latency_seconds_sum 12.5\n\
            royalty_ingest_latency_seconds_count 1000\n";
        assert_eq!(p99_of(text), Some(1.0));
        assert_eq!(
            p99_of("royalty_ingest_latency_seconds_bucket{le=\"+Inf\"} 0\n"),
            None
        );
        assert_eq!(p99_of("nothing here\n"), None);
        let beyond = "royalty_ingest_latency_seconds_bucket{le=\"1\"} 1\n\
                      royalty_ingest_latency_seconds_bucket{le=\"+Inf\"} 10\n";
        assert_eq!(p99_of(beyond), Some(f64::INFINITY));
    }
}
