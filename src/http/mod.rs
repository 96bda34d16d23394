//! The HTTP service: router, state, and serving with graceful shutdown.
//!
//! `app(state)` builds the whole router without a socket (tests drive it with
//! `oneshot`); `serve` runs it on a listener the caller bound (port 0 in tests).

pub mod analyze;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod ops;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::feed::RiskFeed;
use crate::infer::Infer;
pub use error::{ApiError, ErrorResponse};
pub use metrics::Metrics;

/// Resolved HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Most complaints in one `/v1/analyze/batch` call.
    pub max_batch_items: usize,
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Bearer key required on everything but `/healthz` and `/readyz`.
    pub api_key: Option<String>,
    /// SSE keep-alive comment interval.
    pub keep_alive: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_batch_items: 256,
            max_body_bytes: 4 << 20,
            api_key: None,
            keep_alive: Duration::from_secs(15),
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Set once the model has loaded (`/readyz`); until then analysis is 503.
    infer: Arc<OnceLock<Infer>>,
    pub feed: Arc<RiskFeed>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<HttpSettings>,
    shutdown: watch::Receiver<bool>,
}

/// Tells everything long-lived (SSE streams) that the server is stopping.
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl AppState {
    /// State with no model yet; see [`AppState::set_infer`].
    pub fn new(
        settings: HttpSettings,
        feed: Arc<RiskFeed>,
        metrics: Arc<Metrics>,
    ) -> (Self, ShutdownTrigger) {
        let (tx, rx) = watch::channel(false);
        (
            Self {
                infer: Arc::new(OnceLock::new()),
                feed,
                metrics,
                settings: Arc::new(settings),
                shutdown: rx,
            },
            ShutdownTrigger(tx),
        )
    }

    /// The model is loaded: start answering analysis calls.
    pub fn set_infer(&self, infer: Infer) {
        if self.infer.set(infer).is_err() {
            tracing::warn!("model already set; ignoring the second one");
        }
    }

    /// The inference handle, or 503 while the model loads.
    pub fn infer(&self) -> Result<&Infer, ApiError> {
        self.infer.get().ok_or_else(ApiError::not_ready)
    }

    /// Resolves when shutdown begins.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = self.shutdown.clone();
        async move {
            // An error means the trigger is gone: treat it as shutdown too.
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The whole router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/analyze", post(analyze::analyze_complaint))
        .route("/v1/analyze/batch", post(analyze::analyze_batch))
        .route("/v1/risk/feed", get(feed::get_feed))
        .route("/metrics", get(metrics::get_metrics))
        .route("/openapi.json", get(ops::get_openapi))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ops::require_key,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(ops::get_healthz))
        .route("/readyz", get(ops::get_readyz))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ops::panic_response,
        ))
        .with_state(state)
}

/// Serve until `stop` resolves, then stop accepting, end the SSE streams and
/// finish the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    trigger: ShutdownTrigger,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down: finishing requests in flight");
            trigger.trigger();
        })
        .await
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
