//! Operations routes (`/healthz`, `/readyz`, `/openapi.json`), the API-key
//! check and the panic guard.

use std::any::Any;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;
use crate::analyze::ModelInfo;

/// `/healthz` and `/readyz` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// `ok` (process up) or `ready` (model loaded).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelInfo>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = HealthResponse)))]
pub async fn get_healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        model: None,
    })
}

/// The model is loaded and analysis calls will be answered.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = HealthResponse),
    (status = 503, description = "model still loading", body = super::ErrorResponse)))]
pub async fn get_readyz(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    let infer = state.infer()?;
    Ok(Json(HealthResponse {
        status: "ready".into(),
        model: Some(infer.model_info().clone()),
    }))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "kesu", description = "客诉 — Chinese customer-complaint analysis"),
    paths(
        super::analyze::analyze_complaint,
        super::analyze::analyze_batch,
        super::feed::get_feed,
        get_healthz,
        get_readyz,
        super::metrics::get_metrics,
        get_openapi,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// This API's OpenAPI 3.1 document, generated from the types.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI document")))]
pub async fn get_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Middleware: when an API key is set, require `Authorization: Bearer <key>`.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.settings.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
            let mut response = ApiError::unauthorized().into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    next.run(request).await
}

/// Compare without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A handler panicked: 500 in the usual shape (the panic is logged).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
