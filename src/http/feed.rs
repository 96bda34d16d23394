//! `GET /v1/risk/feed`: the risk feed as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::AppState;
use super::error::{ApiError, ErrorResponse};
use crate::feed::FeedEvent;

fn to_event(event: &FeedEvent) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .json_data(event)
        .unwrap_or_else(|e| {
            tracing::error!(event = event.id, error = %e, "feed event not serialisable");
            Event::default().comment("unserialisable event skipped")
        })
}

/// Live flagged complaints. Each event's `id` is its sequence number; on
/// reconnect send `Last-Event-ID` to replay what was missed (a `gap` event
/// first says how many are no longer held). A subscriber that falls too far
/// behind is disconnected and resumes the same way.
#[utoipa::path(get, path = "/v1/risk/feed", tag = "risk",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event id")),
    responses(
        (status = 200, description = "text/event-stream of `flagged` events", body = FeedEvent, content_type = "text/event-stream"),
        (status = 422, description = "Last-Event-ID is not an event id", body = ErrorResponse),
    ),
    security((), ("bearer" = [])))]
pub async fn get_feed(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be an event id (an integer)")
                })?,
        ),
    };
    let sub = state.feed.subscribe(after);
    let gap = (sub.missed > 0).then(|| {
        Event::default()
            .event("gap")
            .data(format!("{{\"missed\":{}}}", sub.missed))
    });
    let last_replayed = sub.backlog.last().map(|e| e.id);
    let backlog = stream::iter(
        gap.into_iter()
            .chain(sub.backlog.iter().map(|e| to_event(e)))
            .collect::<Vec<_>>(),
    );
    let live = BroadcastStream::new(sub.live)
        // Lagged: end the stream; the client resumes from the ring.
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(move |item| {
            std::future::ready(match item {
                Ok(event) if Some(event.id) > last_replayed => Some(to_event(&event)),
                _ => None,
            })
        });
    let shutdown = state.shutdown_signal();
    let events = backlog
        .chain(live)
        .map(Ok::<_, Infallible>)
        .take_until(shutdown);
    let keep_alive = state.settings.keep_alive;
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive)))
}
