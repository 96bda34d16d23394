//! The two-lane batching queue the model workers pull from.
//!
//! Handlers push prepared complaints; worker threads block until there is
//! work and take the next batch, cut by a padded-token budget. The
//! interactive lane (single-complaint calls) always goes first; an express
//! worker serves only that lane, so an intake call never waits for a bulk
//! forward pass to finish.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

/// Which lane a complaint waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Single-complaint calls from intake systems: latency first.
    Interactive,
    /// Batch calls: throughput first, served when the interactive lane is empty.
    Bulk,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Bulk => "bulk",
        }
    }
}

/// How batches are cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most complaints in one forward pass.
    pub max_items: usize,
    /// Most padded tokens (longest × count) in one forward pass.
    pub max_tokens: usize,
}

/// Anything with a token count can be queued.
pub trait TokenCount {
    fn tokens(&self) -> usize;
}

#[derive(Debug)]
struct Lanes<T> {
    interactive: VecDeque<T>,
    bulk: VecDeque<T>,
    closed: bool,
}

/// A blocking two-lane queue (`Mutex` + `Condvar`: its consumers are OS threads).
#[derive(Debug)]
pub struct BatchQueue<T> {
    lanes: Mutex<Lanes<T>>,
    ready: Condvar,
    interactive: BatchLimits,
    bulk: BatchLimits,
}

impl<T: TokenCount> BatchQueue<T> {
    pub fn new(interactive: BatchLimits, bulk: BatchLimits) -> Self {
        let sane = |l: BatchLimits| BatchLimits {
            max_items: l.max_items.max(1),
            max_tokens: l.max_tokens.max(1),
        };
        Self {
            lanes: Mutex::new(Lanes {
                interactive: VecDeque::new(),
                bulk: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            interactive: sane(interactive),
            bulk: sane(bulk),
        }
    }

    /// Append items to a lane (kept together and in order); false once closed.
    pub fn push(&self, lane: Lane, items: impl IntoIterator<Item = T>) -> bool {
        let mut lanes = self.lock();
        if lanes.closed {
            return false;
        }
        match lane {
            Lane::Interactive => lanes.interactive.extend(items),
            Lane::Bulk => lanes.bulk.extend(items),
        }
        drop(lanes);
        self.ready.notify_all();
        true
    }

    /// Items waiting in a lane.
    pub fn depth(&self, lane: Lane) -> usize {
        let lanes = self.lock();
        match lane {
            Lane::Interactive => lanes.interactive.len(),
            Lane::Bulk => lanes.bulk.len(),
        }
    }

    /// Block until a batch is ready and take it. An express worker takes
    /// only interactive work. `None` once the queue is closed and drained.
    pub fn next_batch(&self, express: bool) -> Option<(Lane, Vec<T>)> {
        let mut lanes = self.lock();
        loop {
            if !lanes.interactive.is_empty() {
                return Some((
                    Lane::Interactive,
                    cut(&mut lanes.interactive, self.interactive),
                ));
            }
            if !express && !lanes.bulk.is_empty() {
                return Some((Lane::Bulk, cut(&mut lanes.bulk, self.bulk)));
            }
            if lanes.closed && (express || lanes.bulk.is_empty()) {
                return None;
            }
            lanes = self
                .ready
                .wait(lanes)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Refuse new work; workers finish what is queued, then stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes<T>> {
        // A worker that panicked mid-batch leaves consistent lanes behind
        // (they are only touched under the lock, never across a call out).
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Take items from the front while the padded batch stays within the limits
/// (always at least one, so an over-budget text still runs, alone).
fn cut<T: TokenCount>(lane: &mut VecDeque<T>, limits: BatchLimits) -> Vec<T> {
    let mut batch = Vec::new();
    let mut longest = 0;
    while let Some(next) = lane.front() {
        let candidate = longest.max(next.tokens());
        let fits =
            batch.len() < limits.max_items && candidate * (batch.len() + 1) <= limits.max_tokens;
        if !batch.is_empty() && !fits {
            break;
        }
        longest = candidate;
        batch.push(lane.pop_front().expect("front() was Some"));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl TokenCount for usize {
        fn tokens(&self) -> usize {
            *self
        }
    }

    fn queue(max_items: usize, max_tokens: usize) -> BatchQueue<usize> {
        let limits = BatchLimits {
            max_items,
            max_tokens,
        };
        BatchQueue::new(limits, limits)
    }

    #[test]
    fn batches_are_cut_by_padded_tokens_and_count() {
        let q = queue(3, 100);
        q.push(Lane::Bulk, [10, 20, 30, 40, 200, 5]);
        // 10,20,30 → 3 × 30 = 90 ≤ 100, and max_items = 3.
        assert_eq!(q.next_batch(false).unwrap().1, vec![10, 20, 30]);
        // 40 then 200 would pad to 400.
        assert_eq!(q.next_batch(false).unwrap().1, vec![40]);
        // Over budget alone still runs.
        assert_eq!(q.next_batch(false).unwrap().1, vec![200]);
        assert_eq!(q.next_batch(false).unwrap().1, vec![5]);
    }

    #[test]
    fn each_lane_has_its_own_cut() {
        let q = BatchQueue::new(
            BatchLimits {
                max_items: 8,
                max_tokens: 1000,
            },
            BatchLimits {
                max_items: 8,
                max_tokens: 100,
            },
        );
        q.push(Lane::Bulk, [50, 50, 50]);
        q.push(Lane::Interactive, [50, 50, 50]);
        assert_eq!(q.next_batch(false).unwrap().1.len(), 3);
        assert_eq!(q.next_batch(false).unwrap().1.len(), 2);
        assert_eq!(q.next_batch(false).unwrap().1.len(), 1);
    }

    #[test]
    fn interactive_goes_first_and_express_skips_bulk() {
        let q = queue(8, 1000);
        q.push(Lane::Bulk, [1, 2]);
        q.push(Lane::Interactive, [7]);
        assert_eq!(q.next_batch(true), Some((Lane::Interactive, vec![7])));
        q.close();
        // The express worker stops; bulk work is still drained by the others.
        assert_eq!(q.next_batch(true), None);
        assert_eq!(q.next_batch(false), Some((Lane::Bulk, vec![1, 2])));
        assert_eq!(q.next_batch(false), None);
        assert!(!q.push(Lane::Interactive, [3]));
    }

    #[test]
    fn a_waiting_worker_wakes_on_push() {
        let q = Arc::new(queue(8, 1000));
        let worker = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.next_batch(false))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.push(Lane::Bulk, [4, 5]);
        assert_eq!(worker.join().unwrap(), Some((Lane::Bulk, vec![4, 5])));
        assert_eq!(q.depth(Lane::Bulk), 0);
    }
}
