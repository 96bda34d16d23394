//! The HTTP service: every status code through `oneshot` with a fake engine,
//! the risk feed over SSE, and one end-to-end run with the real model on port 0.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kesu::analyze::{
    Analysis, AnalyzeError, IntensityResult, Job, ModelInfo, Prepared, Risk, Scored,
};
use kesu::feed::RiskFeed;
use kesu::http::{AppState, HttpSettings, Metrics, ShutdownTrigger, app};
use kesu::infer::{BatchLimits, Engine, Infer, InferSettings};
use kesu::model::Tokenized;
use kesu::taxonomy::{Category, Intensity, Motive, RiskFlag, RiskLevel};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Deterministic stand-in for the model: "12315" raises `regulator` (high),
/// the number of '!' is the intensity. With a gate, `analyze` blocks until
/// the test sends on it.
struct FakeEngine {
    info: ModelInfo,
    entered: AtomicUsize,
    gate: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl FakeEngine {
    fn new() -> Self {
        Self {
            info: ModelInfo {
                name: "fake".into(),
                version: "0".into(),
                taxonomy: "v1".into(),
            },
            entered: AtomicUsize::new(0),
            gate: None,
        }
    }
}

impl Engine for FakeEngine {
    fn prepare(&self, text: &str) -> Result<Prepared, AnalyzeError> {
        let n = text.chars().count() + 2;
        Ok(Prepared {
            tokenized: Tokenized {
                ids: vec![0; n.min(512)],
                truncated: n > 512,
            },
            hits: vec![],
            features: vec![],
        })
    }

    fn analyze(&self, jobs: &[Job<'_>]) -> Result<Vec<Analysis>, AnalyzeError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.lock().unwrap().recv().unwrap();
        }
        Ok(jobs
            .iter()
            .map(|job| {
                let bangs = job.text.matches('!').count().min(3);
                let intensity = Intensity::from_level(bangs as u8).unwrap();
                let flags: Vec<RiskFlag> = if job.text.contains("12315") {
                    vec![RiskFlag::Regulator]
                } else {
                    vec![]
                };
                let level = RiskLevel::from_flags(&flags, intensity);
                Analysis {
                    id: job.id.map(str::to_string),
                    category: Scored {
                        label: Category::Other,
                        score: 0.9,
                    },
                    intensity: IntensityResult {
                        level: intensity.level(),
                        label: intensity,
                        score: 0.9,
                    },
                    motive: Scored {
                        label: Motive::Resolution,
                        score: 0.9,
                    },
                    risk: Risk {
                        level,
                        flagged: level.is_flagged(),
                        flags: flags
                            .into_iter()
                            .map(|flag| kesu::analyze::FlagResult {
                                flag,
                                score: 0.99,
                                evidence: vec![],
                            })
                            .collect(),
                    },
                    model: self.info.clone(),
                    truncated: job.prepared.tokenized.truncated,
                }
            })
            .collect())
    }

    fn model_info(&self) -> &ModelInfo {
        &self.info
    }
}

struct Harness {
    router: Router,
    state: AppState,
    _trigger: ShutdownTrigger,
}

fn harness_with(settings: HttpSettings, engine: Arc<FakeEngine>, capacity: usize) -> Harness {
    let metrics = Arc::new(Metrics::new());
    let (state, trigger) = AppState::new(settings, Arc::new(RiskFeed::new(16)), metrics);
    let infer = Infer::start(
        engine,
        InferSettings {
            workers: 2,
            interactive: BatchLimits {
                max_items: 8,
                max_tokens: 4096,
            },
            bulk: BatchLimits {
                max_items: 8,
                max_tokens: 4096,
            },
            capacity,
        },
        Arc::new(|_, _, _| {}),
    )
    .unwrap();
    state.set_infer(infer);
    Harness {
        router: app(state.clone()),
        state,
        _trigger: trigger,
    }
}

fn harness() -> Harness {
    harness_with(HttpSettings::default(), Arc::new(FakeEngine::new()), 64)
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn post_json(uri: &str, body: Value) -> Request<Body> {
    post(uri, body.to_string())
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// The one error shape, with the expected code.
fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}

#[tokio::test]
async fn analyze_echoes_the_id_and_returns_a_record() {
    let h = harness();
    let (status, _, body) = send(
        &h.router,
        post_json(
            "/v1/analyze",
            json!({"id": "c-1", "text": "物流太慢了!", "channel": "app",
                   "received_at": "2026-11-20T08:00:00+08:00", "customer_id": "u9"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "c-1");
    assert_eq!(body["intensity"]["level"], 1);
    assert_eq!(body["risk"]["level"], "low");
    assert_eq!(body["model"]["name"], "fake");
    assert_eq!(body["truncated"], false);
}

#[tokio::test]
async fn batch_keeps_input_order() {
    let h = harness();
    let items: Vec<Value> = (0..20)
        .map(
            |i| json!({"id": format!("b{i}"), "text": "!".repeat(i % 4) + &"长".repeat(i * 7 + 1)}),
        )
        .collect();
    let (status, _, body) = send(
        &h.router,
        post_json("/v1/analyze/batch", json!({ "items": items })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = body["items"].as_array().unwrap();
    assert_eq!(got.len(), 20);
    for (i, record) in got.iter().enumerate() {
        assert_eq!(record["id"], format!("b{i}"));
        assert_eq!(record["intensity"]["level"], i % 4);
    }
}

#[tokio::test]
async fn over_long_text_says_truncated() {
    let h = harness();
    let (status, _, body) = send(
        &h.router,
        post_json("/v1/analyze", json!({"text": "长".repeat(2000)})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["truncated"], true);
}

#[tokio::test]
async fn bad_input_gets_4xx_in_one_shape() {
    let h = harness();
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post("/v1/analyze", "{\"text\": "),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Request::post("/v1/analyze")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{\"text\": \"hi\"}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Request::post("/v1/analyze")
                .body(Body::from("{\"text\": \"hi\"}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post_json("/v1/analyze", json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze", json!({"text": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze", json!({"text": " \n\t "})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze", json!({"text": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze", json!({"text": "hi", "id": ["x"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json(
                "/v1/analyze",
                json!({"text": "hi", "received_at": "yesterday"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze", json!(["text"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze/batch", json!({"items": []})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json(
                "/v1/analyze/batch",
                json!({"items": [{"text": "ok"}, {"text": "  "}]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post_json("/v1/analyze/batch", json!({"items": "nope"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            Request::get("/nowhere").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::get("/v1/analyze").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (req, want, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, _, body) = send(&h.router, req).await;
        assert_eq!(status, want, "{what}: {body}");
        assert_error(&body, code);
    }
    // The empty batch item is named.
    let (_, _, body) = send(
        &h.router,
        post_json(
            "/v1/analyze/batch",
            json!({"items": [{"text": "ok"}, {"text": ""}]}),
        ),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("items[1]")
    );
    // And nothing above disturbed a good request.
    let (status, _, _) = send(&h.router, post_json("/v1/analyze", json!({"text": "好的"}))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_and_batches_get_413() {
    let h = harness_with(
        HttpSettings {
            max_body_bytes: 1024,
            max_batch_items: 3,
            ..HttpSettings::default()
        },
        Arc::new(FakeEngine::new()),
        64,
    );
    let (status, _, body) = send(
        &h.router,
        post_json("/v1/analyze", json!({"text": "长".repeat(1000)})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    let items: Vec<Value> = (0..4).map(|_| json!({"text": "a"})).collect();
    let (status, _, body) = send(
        &h.router,
        post_json("/v1/analyze/batch", json!({ "items": items })),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "too_many_items");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let (open, gate) = std::sync::mpsc::channel();
    let engine = Arc::new(FakeEngine {
        gate: Some(Mutex::new(gate)),
        ..FakeEngine::new()
    });
    let h = harness_with(HttpSettings::default(), Arc::clone(&engine), 2);
    let first = tokio::spawn(
        h.router
            .clone()
            .oneshot(post_json("/v1/analyze", json!({"text": "第一条"}))),
    );
    // Wait until the first complaint is in a forward pass (holding its slot).
    while engine.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, headers, body) = send(
        &h.router,
        post_json(
            "/v1/analyze/batch",
            json!({"items": [{"text": "a"}, {"text": "b"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "queue_full");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    // Bigger than the whole queue can ever hold: 413, not a retry.
    let items: Vec<Value> = (0..3).map(|_| json!({"text": "a"})).collect();
    let (status, _, body) = send(
        &h.router,
        post_json("/v1/analyze/batch", json!({ "items": items })),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    open.send(()).unwrap();
    let res = first.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Capacity is back.
    open.send(()).unwrap();
    let (status, _, _) = send(&h.router, post_json("/v1/analyze", json!({"text": "再来"}))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn api_key_guards_everything_but_health() {
    let h = harness_with(
        HttpSettings {
            api_key: Some("s3cret".into()),
            ..HttpSettings::default()
        },
        Arc::new(FakeEngine::new()),
        64,
    );
    let (status, headers, body) =
        send(&h.router, post_json("/v1/analyze", json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    for uri in ["/metrics", "/openapi.json", "/v1/risk/feed"] {
        let (status, _, _) = send(&h.router, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let wrong = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::from("{\"text\":\"hi\"}"))
        .unwrap();
    assert_eq!(send(&h.router, wrong).await.0, StatusCode::UNAUTHORIZED);
    let right = Request::post("/v1/analyze")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::from("{\"text\":\"hi\"}"))
        .unwrap();
    assert_eq!(send(&h.router, right).await.0, StatusCode::OK);
    for uri in ["/healthz", "/readyz"] {
        let (status, _, _) = send(&h.router, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn readiness_follows_the_model() {
    let (state, _trigger) = AppState::new(
        HttpSettings::default(),
        Arc::new(RiskFeed::new(4)),
        Arc::new(Metrics::new()),
    );
    let router = app(state.clone());
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    assert_eq!(send(&router, get("/healthz")).await.0, StatusCode::OK);
    let (status, headers, body) = send(&router, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "not_ready");
    assert!(headers.contains_key(header::RETRY_AFTER));
    let (status, _, body) = send(&router, post_json("/v1/analyze", json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "not_ready");
    let infer = Infer::start(
        Arc::new(FakeEngine::new()),
        InferSettings {
            workers: 1,
            interactive: BatchLimits {
                max_items: 8,
                max_tokens: 1024,
            },
            bulk: BatchLimits {
                max_items: 8,
                max_tokens: 1024,
            },
            capacity: 8,
        },
        Arc::new(|_, _, _| {}),
    )
    .unwrap();
    state.set_infer(infer);
    let (status, _, body) = send(&router, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"]["name"], "fake");
}

#[tokio::test]
async fn metrics_and_openapi_describe_the_service() {
    let h = harness();
    send(
        &h.router,
        post_json("/v1/analyze", json!({"text": "我要打12315!!!"})),
    )
    .await;
    send(&h.router, post_json("/v1/analyze", json!({"text": ""}))).await;
    let res = h
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for needle in [
        r#"kesu_http_requests_total{method="POST",route="/v1/analyze",status="200"} 1"#,
        r#"kesu_http_requests_total{method="POST",route="/v1/analyze",status="422"} 1"#,
        "kesu_http_request_duration_seconds_bucket",
        r#"kesu_queue_depth{lane="interactive"} 0"#,
        r#"kesu_flagged_total{level="high"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let (status, _, doc) = send(
        &h.router,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/analyze",
        "/v1/analyze/batch",
        "/v1/risk/feed",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Analysis"].is_object());
    assert!(
        schemas["AnalyzeRequest"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("text"))
    );
}

/// Read SSE frames until `want` events have arrived (or fail after 5 s).
async fn read_events(body: &mut Body, want: usize) -> Vec<(String, String, Value)> {
    let mut buf = String::new();
    let mut events = Vec::new();
    while events.len() < want {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an SSE event within 5 s")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.into();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.into();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                events.push((
                    id,
                    event,
                    serde_json::from_str(&data).unwrap_or(Value::Null),
                ));
            }
        }
    }
    events
}

#[tokio::test]
async fn flagged_complaints_reach_the_feed_and_resume_works() {
    let h = harness();
    let res = h
        .router
        .clone()
        .oneshot(Request::get("/v1/risk/feed").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    // A low-risk complaint stays out of the feed; the two flagged ones arrive in order.
    send(&h.router, post_json("/v1/analyze", json!({"text": "谢谢"}))).await;
    send(
        &h.router,
        post_json(
            "/v1/analyze",
            json!({"id": "r1", "text": "不处理我就打12315", "channel": "hotline"}),
        ),
    )
    .await;
    send(
        &h.router,
        post_json(
            "/v1/analyze/batch",
            json!({"items": [{"id": "r2", "text": "已经打了12315!!!"}]}),
        ),
    )
    .await;
    let events = read_events(&mut body, 2).await;
    assert_eq!(events[0].0, "1");
    assert_eq!(events[0].1, "flagged");
    assert_eq!(events[0].2["analysis"]["id"], "r1");
    assert_eq!(events[0].2["analysis"]["risk"]["level"], "high");
    assert_eq!(events[0].2["complaint"]["channel"], "hotline");
    assert_eq!(events[1].2["analysis"]["id"], "r2");

    // Reconnect after event 1: event 2 is replayed.
    let res = h
        .router
        .clone()
        .oneshot(
            Request::get("/v1/risk/feed")
                .header("last-event-id", "1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = res.into_body();
    let replay = read_events(&mut body, 1).await;
    assert_eq!(replay[0].0, "2");
    assert_eq!(replay[0].2["analysis"]["id"], "r2");

    let bad = Request::get("/v1/risk/feed")
        .header("last-event-id", "abc")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&h.router, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_request");
    drop(h.state);
}

#[tokio::test]
async fn feed_streams_end_on_shutdown() {
    let metrics = Arc::new(Metrics::new());
    let (state, trigger) =
        AppState::new(HttpSettings::default(), Arc::new(RiskFeed::new(4)), metrics);
    let res = app(state)
        .oneshot(Request::get("/v1/risk/feed").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    trigger.trigger();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the SSE stream did not end on shutdown");
}
