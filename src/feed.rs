//! The live risk feed: every flagged (high or critical) analysis becomes an
//! event with a sequential id, kept in a ring buffer for `Last-Event-ID`
//! resume and broadcast to live subscribers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::analyze::Analysis;

/// The complaint behind a feed event, as the caller sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedComplaint {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<FixedOffset>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// One event of the risk feed (the SSE `data:` payload; its id is the SSE id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEvent {
    pub id: u64,
    /// `flagged`: a new high or critical complaint.
    pub kind: String,
    pub at: DateTime<Utc>,
    pub complaint: FeedComplaint,
    pub analysis: Analysis,
}

/// Ring buffer + broadcast channel.
pub struct RiskFeed {
    state: Mutex<Ring>,
    live: broadcast::Sender<Arc<FeedEvent>>,
}

struct Ring {
    events: VecDeque<Arc<FeedEvent>>,
    capacity: usize,
    next_id: u64,
}

/// What a new subscriber gets: missed events to replay, then the live stream.
pub struct Subscription {
    pub backlog: Vec<Arc<FeedEvent>>,
    pub live: broadcast::Receiver<Arc<FeedEvent>>,
    /// Events after `Last-Event-ID` that have already left the ring.
    pub missed: u64,
}

impl RiskFeed {
    /// A feed remembering the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity),
                capacity,
                next_id: 1,
            }),
            live: broadcast::channel(capacity).0,
        }
    }

    /// Publish a flagged analysis; returns its event id.
    pub fn publish(&self, complaint: FeedComplaint, analysis: Analysis) -> u64 {
        let mut ring = self.lock();
        let event = Arc::new(FeedEvent {
            id: ring.next_id,
            kind: "flagged".to_string(),
            at: Utc::now(),
            complaint,
            analysis,
        });
        ring.next_id += 1;
        if ring.events.len() == ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // Sent under the lock so live order matches id order. No subscriber is fine.
        let _ = self.live.send(Arc::clone(&event));
        event.id
    }

    /// Subscribe; with `after`, first replay the remembered events after that id.
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let ring = self.lock();
        // Subscribing under the lock: nothing published in between is lost or doubled.
        let live = self.live.subscribe();
        let (backlog, missed) = match after {
            None => (Vec::new(), 0),
            Some(after) => {
                let backlog: Vec<_> = ring
                    .events
                    .iter()
                    .filter(|e| e.id > after)
                    .cloned()
                    .collect();
                let first_kept = ring.events.front().map_or(ring.next_id, |e| e.id);
                (backlog, first_kept.saturating_sub(after + 1))
            }
        };
        Subscription {
            backlog,
            live,
            missed,
        }
    }

    /// Id of the latest event (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.lock().next_id - 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{IntensityResult, ModelInfo, Risk, Scored};
    use crate::taxonomy::{Category, Intensity, Motive, RiskLevel};

    fn analysis() -> Analysis {
        Analysis {
            id: None,
            category: Scored {
                label: Category::Other,
                score: 1.0,
            },
            intensity: IntensityResult {
                level: 3,
                label: Intensity::Extreme,
                score: 1.0,
            },
            motive: Scored {
                label: Motive::Vent,
                score: 1.0,
            },
            risk: Risk {
                level: RiskLevel::High,
                flagged: true,
                flags: vec![],
            },
            model: ModelInfo {
                name: "t".into(),
                version: "0".into(),
                taxonomy: "v1".into(),
            },
            truncated: false,
        }
    }

    fn complaint(text: &str) -> FeedComplaint {
        FeedComplaint {
            text: text.into(),
            channel: None,
            received_at: None,
            customer_id: None,
        }
    }

    #[test]
    fn resume_replays_what_the_ring_still_holds() {
        let feed = RiskFeed::new(3);
        for i in 0..5 {
            feed.publish(complaint(&i.to_string()), analysis());
        }
        assert_eq!(feed.last_id(), 5);
        let sub = feed.subscribe(Some(3));
        assert_eq!(
            sub.backlog.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(sub.missed, 0);
        // Events 2 (and 1) fell out of a 3-slot ring: one missed after id 1.
        let sub = feed.subscribe(Some(1));
        assert_eq!(sub.backlog.len(), 3);
        assert_eq!(sub.missed, 1);
        assert!(feed.subscribe(None).backlog.is_empty());
    }

    #[tokio::test]
    async fn live_subscribers_get_new_events_in_order() {
        let feed = RiskFeed::new(8);
        let mut sub = feed.subscribe(None);
        feed.publish(complaint("a"), analysis());
        feed.publish(complaint("b"), analysis());
        assert_eq!(sub.live.recv().await.unwrap().complaint.text, "a");
        assert_eq!(sub.live.recv().await.unwrap().id, 2);
    }
}
