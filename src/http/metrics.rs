//! Prometheus metrics and the request middleware that records them (and the
//! one log line per request, which never carries complaint text).

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::AppState;
use crate::infer::Lane;
use crate::taxonomy::Label;
use crate::taxonomy::RiskLevel;

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    queue_depth: IntGaugeVec,
    batch_size: HistogramVec,
    batch_seconds: HistogramVec,
    flagged: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "kesu_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "kesu_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.002, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("valid metric definition");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "kesu_queue_depth",
                "Complaints waiting for the model, by lane",
            ),
            &["lane"],
        )
        .expect("valid metric definition");
        let batch_size = HistogramVec::new(
            HistogramOpts::new("kesu_batch_size", "Complaints per forward pass, by lane")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            &["lane"],
        )
        .expect("valid metric definition");
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "kesu_batch_duration_seconds",
                "Time of one batch on a model worker, by lane",
            )
            .buckets(prometheus::exponential_buckets(0.005, 2.0, 12).expect("valid buckets")),
            &["lane"],
        )
        .expect("valid metric definition");
        let flagged = IntCounterVec::new(
            Opts::new(
                "kesu_flagged_total",
                "Flagged (high or critical) analyses, by risk level",
            ),
            &["level"],
        )
        .expect("valid metric definition");
        let registry = Registry::new();
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(queue_depth.clone()),
            Box::new(batch_size.clone()),
            Box::new(batch_seconds.clone()),
            Box::new(flagged.clone()),
        ] {
            registry
                .register(metric)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            requests,
            latency,
            queue_depth,
            batch_size,
            batch_seconds,
            flagged,
        }
    }

    /// A forward pass finished on a model worker.
    pub fn observe_batch(&self, lane: Lane, size: usize, took: Duration) {
        self.batch_size
            .with_label_values(&[lane.as_str()])
            .observe(size as f64);
        self.batch_seconds
            .with_label_values(&[lane.as_str()])
            .observe(took.as_secs_f64());
    }

    pub fn observe_flagged(&self, level: RiskLevel) {
        self.flagged.with_label_values(&[level.id()]).inc();
    }

    fn observe_request(&self, route: &str, method: &str, status: StatusCode, took: Duration) {
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    fn render(&self, depths: [(Lane, usize); 2]) -> String {
        for (lane, depth) in depths {
            self.queue_depth
                .with_label_values(&[lane.as_str()])
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: count and time every request; one info line without any body.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status();
    state
        .metrics
        .observe_request(&route, method.as_str(), status, took);
    tracing::info!(
        %method,
        route,
        status = status.as_u16(),
        ms = took.as_secs_f64() * 1e3,
        "request"
    );
    response
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depths = match state.infer() {
        Ok(infer) => [
            (Lane::Interactive, infer.depth(Lane::Interactive)),
            (Lane::Bulk, infer.depth(Lane::Bulk)),
        ],
        Err(_) => [(Lane::Interactive, 0), (Lane::Bulk, 0)],
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(depths),
    )
}
