//! End to end: the real model behind a real socket (port 0), the risk feed
//! over the wire, and graceful shutdown with a feed still open.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kesu::analyze::{Analyzer, default_heads_dir};
use kesu::feed::RiskFeed;
use kesu::http::{AppState, HttpSettings, Metrics};
use kesu::infer::{BatchLimits, Infer, InferSettings};
use kesu::model::{EncoderSettings, ModelSource};
use serde_json::{Value, json};

use crate::support::model_dir;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn request(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> hyper::Response<Incoming> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap()
}

async fn json_body(res: hyper::Response<Incoming>) -> Value {
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_model_over_a_socket_with_feed_and_graceful_shutdown() {
    let analyzer = Arc::new(
        Analyzer::load(
            &ModelSource::Dir(model_dir()),
            &default_heads_dir(),
            EncoderSettings::default(),
        )
        .expect("the committed artefact loads"),
    );
    let (state, trigger) = AppState::new(
        HttpSettings::default(),
        Arc::new(RiskFeed::new(64)),
        Arc::new(Metrics::new()),
    );
    let infer = Infer::start(
        Arc::clone(&analyzer) as Arc<dyn kesu::infer::Engine>,
        InferSettings {
            workers: 2,
            interactive: BatchLimits {
                max_items: 32,
                max_tokens: 4096,
            },
            bulk: BatchLimits {
                max_items: 32,
                max_tokens: 4096,
            },
            capacity: 64,
        },
        Arc::new(|_, _, _| {}),
    )
    .unwrap();
    state.set_infer(infer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kesu::http::serve(listener, state, trigger, async move {
        let _ = stop_rx.await;
    }));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let feed = request(&client, "GET", &format!("{base}/v1/risk/feed"), None).await;
    assert_eq!(feed.status(), 200);
    let mut feed_body = feed.into_body();

    let text = "你们的热水器漏电把我老婆电伤了，现在还在医院！再不给说法我就找律师起诉，还要发微博曝光你们！";
    let res = request(
        &client,
        "POST",
        &format!("{base}/v1/analyze"),
        Some(json!({"id": "e2e-1", "text": text, "channel": "hotline"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let record = json_body(res).await;
    assert_eq!(record["id"], "e2e-1");
    assert_eq!(record["risk"]["level"], "critical", "{record}");
    let flags: Vec<&str> = record["risk"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"safety_injury") && flags.contains(&"legal_action"),
        "{flags:?}"
    );

    // The same complaint analysed directly gives the same record.
    let direct = analyzer.analyze(&[(Some("e2e-1".into()), text)]).unwrap();
    let direct: Value = serde_json::from_str(&serde_json::to_string(&direct[0]).unwrap()).unwrap();
    assert_eq!(direct, record);

    // `kesu score` gives the same record for the same complaint.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("one.jsonl");
    let output = dir.path().join("one.scored.jsonl");
    std::fs::write(
        &input,
        json!({"id": "e2e-1", "text": text}).to_string() + "\n",
    )
    .unwrap();
    let scored = std::process::Command::new(env!("CARGO_BIN_EXE_kesu"))
        .args(["score", "--quiet", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .env("KESU_MODEL", model_dir())
        .output()
        .unwrap();
    assert!(
        scored.status.success(),
        "{}",
        String::from_utf8_lossy(&scored.stderr)
    );
    let from_score: Value =
        serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
    assert_eq!(from_score, record, "kesu score and the HTTP API agree");

    // Its feed event arrives over the wire.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\n\n") {
        let frame = tokio::time::timeout_at(deadline, feed_body.frame())
            .await
            .expect("the feed event within 10 s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    assert!(
        seen.contains("event: flagged") && seen.contains("id: 1"),
        "{seen}"
    );
    assert!(seen.contains("e2e-1"));

    // A long text is truncated and says so; a batch keeps its order.
    let long = "我要投诉快递一直不送货上门。".repeat(80);
    let res = request(
        &client,
        "POST",
        &format!("{base}/v1/analyze/batch"),
        Some(json!({"items": [{"id": "a", "text": long}, {"id": "b", "text": "谢谢你们的帮助"}]})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let batch = json_body(res).await;
    assert_eq!(batch["items"][0]["id"], "a");
    assert_eq!(batch["items"][0]["truncated"], true);
    assert_eq!(batch["items"][1]["id"], "b");
    assert_eq!(batch["items"][1]["truncated"], false);

    // Shutdown ends the open feed and the server returns.
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown within 10 s")
        .unwrap()
        .unwrap();
    tokio::task::spawn_blocking(move || infer.shutdown())
        .await
        .unwrap();
}
