//! `POST /v1/analyze` and `POST /v1/analyze/batch`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiJson, ErrorResponse};
use crate::analyze::Analysis;
use crate::feed::FeedComplaint;
use crate::infer::{Complaint, Lane};
use crate::taxonomy::Label;

/// One complaint to analyse.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AnalyzeRequest {
    /// Echoed in the Analysis record.
    #[serde(default)]
    pub id: Option<String>,
    /// The complaint text (not empty; texts longer than the model's window
    /// are truncated and the record says `"truncated": true`).
    pub text: String,
    /// Intake channel, e.g. `hotline`, `app`, `weibo`.
    #[serde(default)]
    pub channel: Option<String>,
    /// When the complaint was received (RFC 3339).
    #[serde(default)]
    pub received_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub customer_id: Option<String>,
}

/// Many complaints in one call (served after single-complaint calls).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AnalyzeBatchRequest {
    pub items: Vec<AnalyzeRequest>,
}

/// Analysis records in request order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalyzeBatchResponse {
    pub items: Vec<Analysis>,
}

fn validate(req: &AnalyzeRequest, at: Option<usize>) -> Result<(), ApiError> {
    if req.text.trim().is_empty() {
        let field = at.map_or_else(|| "text".to_string(), |i| format!("items[{i}].text"));
        return Err(ApiError::invalid(format!("{field} is empty")));
    }
    Ok(())
}

/// Analyse one complaint (interactive lane).
#[utoipa::path(post, path = "/v1/analyze", tag = "analyze",
    request_body = AnalyzeRequest,
    responses(
        (status = 200, body = Analysis),
        (status = 400, description = "malformed JSON", body = ErrorResponse),
        (status = 413, description = "body too large", body = ErrorResponse),
        (status = 415, description = "not application/json", body = ErrorResponse),
        (status = 422, description = "missing, empty or mistyped field", body = ErrorResponse),
        (status = 429, description = "queue full; see Retry-After", body = ErrorResponse),
        (status = 503, description = "model loading or shutting down", body = ErrorResponse),
    ),
    security((), ("bearer" = [])))]
pub async fn analyze_complaint(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AnalyzeRequest>,
) -> Result<Json<Analysis>, ApiError> {
    validate(&req, None)?;
    let infer = state.infer()?;
    let complaint = Complaint {
        id: req.id.clone(),
        text: req.text.clone(),
    };
    let record = infer
        .analyze(Lane::Interactive, vec![complaint])
        .await?
        .pop()
        .ok_or_else(|| ApiError::from(crate::infer::InferError::Analyze("no record".into())))?;
    publish(&state, req, &record);
    Ok(Json(record))
}

/// Analyse many complaints (bulk lane); records in request order.
#[utoipa::path(post, path = "/v1/analyze/batch", tag = "analyze",
    request_body = AnalyzeBatchRequest,
    responses(
        (status = 200, body = AnalyzeBatchResponse),
        (status = 400, description = "malformed JSON", body = ErrorResponse),
        (status = 413, description = "body too large or too many items", body = ErrorResponse),
        (status = 415, description = "not application/json", body = ErrorResponse),
        (status = 422, description = "missing, empty or mistyped field", body = ErrorResponse),
        (status = 429, description = "queue full; see Retry-After", body = ErrorResponse),
        (status = 503, description = "model loading or shutting down", body = ErrorResponse),
    ),
    security((), ("bearer" = [])))]
pub async fn analyze_batch(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AnalyzeBatchRequest>,
) -> Result<Json<AnalyzeBatchResponse>, ApiError> {
    let limit = state.settings.max_batch_items;
    if req.items.is_empty() {
        return Err(ApiError::invalid("items is empty"));
    }
    if req.items.len() > limit {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_items",
            format!("{} items; at most {limit} per call", req.items.len()),
        ));
    }
    for (i, item) in req.items.iter().enumerate() {
        validate(item, Some(i))?;
    }
    let infer = state.infer()?;
    let complaints = req
        .items
        .iter()
        .map(|r| Complaint {
            id: r.id.clone(),
            text: r.text.clone(),
        })
        .collect();
    let records = infer.analyze(Lane::Bulk, complaints).await?;
    for (item, record) in req.items.into_iter().zip(&records) {
        publish(&state, item, record);
    }
    Ok(Json(AnalyzeBatchResponse { items: records }))
}

/// Flagged analyses go to the risk feed.
fn publish(state: &AppState, req: AnalyzeRequest, record: &Analysis) {
    if !record.risk.flagged {
        return;
    }
    state.metrics.observe_flagged(record.risk.level);
    let id = state.feed.publish(
        FeedComplaint {
            text: req.text,
            channel: req.channel,
            received_at: req.received_at,
            customer_id: req.customer_id,
        },
        record.clone(),
    );
    tracing::info!(
        event = id,
        level = record.risk.level.id(),
        "risk feed event"
    );
}
