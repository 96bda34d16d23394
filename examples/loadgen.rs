//! Load generator for `kesu serve`: N concurrent clients posting single
//! complaints to `/v1/analyze` for a fixed time, optionally while a batch job
//! keeps `/v1/analyze/batch` busy. Prints one JSON line of figures:
//! latency percentiles, complaints per second, status counts.
//!
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 \
//!     --texts texts.jsonl --concurrency 8 --seconds 20

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// JSON Lines with a "text" field: the complaints to send, round robin.
    #[arg(long)]
    texts: Option<std::path::PathBuf>,
    /// Send only this text (e.g. one typical complaint).
    #[arg(long)]
    text: Option<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Send every text exactly once instead of running for --seconds
    /// (throughput over a fixed set, comparable with the offline scorer).
    #[arg(long)]
    all: bool,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Warm-up requests per client, not measured.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Keep a batch job running meanwhile: items per /v1/analyze/batch call (0: none).
    #[arg(long, default_value_t = 0)]
    background_batch: usize,
    /// Bearer API key.
    #[arg(long, env = "KESU_API_KEY")]
    api_key: Option<String>,
    /// Label echoed in the output line.
    #[arg(long, default_value = "")]
    label: String,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Target {
    client: HttpClient,
    url: String,
    key: Option<String>,
}

impl Target {
    async fn post(&self, path: &str, body: String) -> anyhow::Result<u16> {
        let mut req = hyper::Request::post(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some(key) = &self.key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let res = self
            .client
            .request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = res.status().as_u16();
        // Read the whole answer: latency includes the body.
        res.into_body().collect().await?;
        Ok(status)
    }
}

fn load_texts(args: &Args) -> anyhow::Result<Vec<String>> {
    if let Some(text) = &args.text {
        return Ok(vec![text.clone()]);
    }
    let Some(path) = &args.texts else {
        bail!("give --texts FILE.jsonl or --text");
    };
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut texts = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        match v["text"].as_str() {
            Some(t) => texts.push(t.to_string()),
            None => bail!("{}:{}: no \"text\" string", path.display(), i + 1),
        }
    }
    if texts.is_empty() {
        bail!("{}: no texts", path.display());
    }
    Ok(texts)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let texts = Arc::new(load_texts(&args)?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let target = Arc::new(Target {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(args.concurrency + 4)
            .build(connector),
        url: args.url.trim_end_matches('/').to_string(),
        key: args.api_key.clone(),
    });
    let body_for = |i: usize| json!({"text": texts[i % texts.len()]}).to_string();

    // Warm-up (connections, caches), unmeasured.
    for i in 0..args.warmup * args.concurrency {
        target.post("/v1/analyze", body_for(i)).await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let batch_done = Arc::new(AtomicUsize::new(0));
    let background = (args.background_batch > 0).then(|| {
        let (target, texts, stop, done) = (
            Arc::clone(&target),
            Arc::clone(&texts),
            Arc::clone(&stop),
            Arc::clone(&batch_done),
        );
        let size = args.background_batch;
        tokio::spawn(async move {
            let mut offset = 0;
            while !stop.load(Ordering::Relaxed) {
                let items: Vec<_> = (0..size)
                    .map(|k| json!({"text": texts[(offset + k) % texts.len()]}))
                    .collect();
                offset += size;
                if let Ok(200) = target
                    .post("/v1/analyze/batch", json!({ "items": items }).to_string())
                    .await
                {
                    done.fetch_add(size, Ordering::Relaxed);
                }
            }
        })
    });
    if background.is_some() {
        // Let the batch job get going before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let batch_before = batch_done.load(Ordering::Relaxed);
    let mut clients = Vec::new();
    let all = args.all;
    for _ in 0..args.concurrency {
        let (target, texts, next) = (Arc::clone(&target), Arc::clone(&texts), Arc::clone(&next));
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if (all && i >= texts.len()) || (!all && Instant::now() >= deadline) {
                    break;
                }
                let body = json!({"text": texts[i % texts.len()]}).to_string();
                let t = Instant::now();
                let status = match target.post("/v1/analyze", body).await {
                    Ok(s) => s.to_string(),
                    Err(_) => "error".to_string(),
                };
                if status == "200" {
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                }
                *statuses.entry(status).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for c in clients {
        let (l, s) = c.await?;
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let batch_complaints = batch_done.load(Ordering::Relaxed) - batch_before;
    stop.store(true, Ordering::Relaxed);
    if let Some(bg) = background {
        bg.await?;
    }
    latencies.sort_by(f64::total_cmp);
    let ok = latencies.len();
    let line = json!({
        "label": args.label,
        "concurrency": args.concurrency,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "ok": ok,
        "statuses": statuses,
        "per_second": (ok as f64 / elapsed * 10.0).round() / 10.0,
        "p50_ms": (percentile(&latencies, 50.0) * 10.0).round() / 10.0,
        "p90_ms": (percentile(&latencies, 90.0) * 10.0).round() / 10.0,
        "p99_ms": (percentile(&latencies, 99.0) * 10.0).round() / 10.0,
        "max_ms": (latencies.last().copied().unwrap_or(f64::NAN) * 10.0).round() / 10.0,
        "background_batch_per_second": (batch_complaints as f64 / elapsed * 10.0).round() / 10.0,
    });
    println!("{line}");
    Ok(())
}
