//! Inference for the service: a small synchronous model trait, a two-lane
//! batching queue, and model worker threads (never tokio workers).
//!
//! Handlers call [`Infer::analyze`]: it reserves queue capacity (full → the
//! caller answers 429), prepares the texts on tokio's blocking pool, queues
//! them and awaits the replies. Worker threads cut batches by a token budget
//! and run the forward passes.

pub mod queue;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot};

use crate::analyze::{Analysis, AnalyzeError, Analyzer, Job, ModelInfo, Prepared};
pub use queue::{BatchLimits, BatchQueue, Lane, TokenCount};

/// What the queue needs from a model: cheap preparation, then batched analysis.
pub trait Engine: Send + Sync + 'static {
    /// Segment, scan and tokenize (no forward pass).
    fn prepare(&self, text: &str) -> Result<Prepared, AnalyzeError>;
    /// Analyse a batch; one record per job, in order.
    fn analyze(&self, jobs: &[Job<'_>]) -> Result<Vec<Analysis>, AnalyzeError>;
    fn model_info(&self) -> &ModelInfo;
}

impl Engine for Analyzer {
    fn prepare(&self, text: &str) -> Result<Prepared, AnalyzeError> {
        Analyzer::prepare(self, text)
    }

    fn analyze(&self, jobs: &[Job<'_>]) -> Result<Vec<Analysis>, AnalyzeError> {
        self.analyze_prepared(jobs)
    }

    fn model_info(&self) -> &ModelInfo {
        Analyzer::model_info(self)
    }
}

/// Resolved settings of the inference queue.
#[derive(Debug, Clone, Copy)]
pub struct InferSettings {
    /// Model worker threads. The first only serves the interactive lane
    /// (when there are two or more), so intake calls never wait for a bulk batch.
    pub workers: usize,
    /// Batch cut for single-complaint calls.
    pub interactive: BatchLimits,
    /// Batch cut for batch calls (small: an interactive call may wait for one).
    pub bulk: BatchLimits,
    /// Complaints queued or running at once; beyond it callers get 429.
    pub capacity: usize,
}

/// Why a complaint got no analysis.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("the queue is full ({capacity} complaints waiting or running)")]
    QueueFull { capacity: usize },
    #[error("{requested} complaints exceed the queue's capacity of {capacity}")]
    TooLarge { requested: usize, capacity: usize },
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error("analysis failed: {0}")]
    Analyze(String),
}

/// Called after every forward pass: lane, complaints in the batch, time taken.
pub type BatchObserver = Arc<dyn Fn(Lane, usize, Duration) + Send + Sync>;

/// One queued complaint and where its answer goes.
struct Pending {
    id: Option<String>,
    text: String,
    prepared: Prepared,
    reply: oneshot::Sender<Result<Analysis, InferError>>,
}

impl TokenCount for Pending {
    fn tokens(&self) -> usize {
        self.prepared.tokens()
    }
}

/// A complaint as handed to [`Infer::analyze`].
#[derive(Debug, Clone)]
pub struct Complaint {
    pub id: Option<String>,
    pub text: String,
}

/// Cloneable handle to the queue and its workers.
#[derive(Clone)]
pub struct Infer {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    queue: Arc<BatchQueue<Pending>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Infer {
    /// Start the worker threads.
    pub fn start(
        engine: Arc<dyn Engine>,
        settings: InferSettings,
        observer: BatchObserver,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(BatchQueue::new(settings.interactive, settings.bulk));
        let workers = settings.workers.max(1);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let express = workers > 1 && w == 0;
            let (engine, queue, observer) = (
                Arc::clone(&engine),
                Arc::clone(&queue),
                Arc::clone(&observer),
            );
            handles.push(
                std::thread::Builder::new()
                    .name(format!("kesu-model-{w}"))
                    .spawn(move || work(engine.as_ref(), &queue, express, &observer))?,
            );
        }
        let capacity = settings.capacity.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                queue,
                permits: Arc::new(Semaphore::new(capacity)),
                capacity,
                workers: Mutex::new(handles),
            }),
        })
    }

    pub fn model_info(&self) -> &ModelInfo {
        self.inner.engine.model_info()
    }

    /// Complaints waiting in a lane.
    pub fn depth(&self, lane: Lane) -> usize {
        self.inner.queue.depth(lane)
    }

    /// Analyse complaints in a lane; records in input order.
    pub async fn analyze(
        &self,
        lane: Lane,
        complaints: Vec<Complaint>,
    ) -> Result<Vec<Analysis>, InferError> {
        let inner = &self.inner;
        let n = u32::try_from(complaints.len()).unwrap_or(u32::MAX);
        if complaints.len() > inner.capacity {
            return Err(InferError::TooLarge {
                requested: complaints.len(),
                capacity: inner.capacity,
            });
        }
        // Held until every answer is in: capacity covers queued and running work.
        let _permit = Arc::clone(&inner.permits)
            .try_acquire_many_owned(n)
            .map_err(|_| InferError::QueueFull {
                capacity: inner.capacity,
            })?;
        let engine = Arc::clone(&inner.engine);
        let prepared = tokio::task::spawn_blocking(move || {
            complaints
                .into_iter()
                .map(|c| engine.prepare(&c.text).map(|p| (c, p)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| InferError::Analyze(format!("preparation panicked: {e}")))?
        .map_err(|e| InferError::Analyze(e.to_string()))?;
        let mut replies = Vec::with_capacity(prepared.len());
        let pending: Vec<Pending> = prepared
            .into_iter()
            .map(|(c, prepared)| {
                let (reply, rx) = oneshot::channel();
                replies.push(rx);
                Pending {
                    id: c.id,
                    text: c.text,
                    prepared,
                    reply,
                }
            })
            .collect();
        if !inner.queue.push(lane, pending) {
            return Err(InferError::ShuttingDown);
        }
        let mut records = Vec::with_capacity(replies.len());
        for rx in replies {
            records.push(rx.await.map_err(|_| InferError::ShuttingDown)??);
        }
        Ok(records)
    }

    /// Stop taking work, let the workers finish what is queued, and join them.
    pub fn shutdown(&self) {
        self.inner.queue.close();
        let handles = std::mem::take(
            &mut *self
                .inner
                .workers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for handle in handles {
            if handle.join().is_err() {
                tracing::error!("a model worker panicked");
            }
        }
    }
}

/// A model worker: take batches until the queue closes.
fn work(engine: &dyn Engine, queue: &BatchQueue<Pending>, express: bool, observer: &BatchObserver) {
    while let Some((lane, batch)) = queue.next_batch(express) {
        let started = Instant::now();
        let jobs: Vec<Job<'_>> = batch
            .iter()
            .map(|p| Job {
                id: p.id.as_deref(),
                text: &p.text,
                prepared: &p.prepared,
            })
            .collect();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.analyze(&jobs)));
        drop(jobs);
        observer(lane, batch.len(), started.elapsed());
        match outcome {
            Ok(Ok(records)) if records.len() == batch.len() => {
                for (p, record) in batch.into_iter().zip(records) {
                    // The caller may have gone away; nothing to do then.
                    let _ = p.reply.send(Ok(record));
                }
            }
            other => {
                let message = match other {
                    Ok(Ok(records)) => format!(
                        "the model returned {} records for {} complaints",
                        records.len(),
                        batch.len()
                    ),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "the model worker panicked".to_string(),
                };
                tracing::error!(lane = lane.as_str(), size = batch.len(), %message, "batch failed");
                for p in batch {
                    let _ = p.reply.send(Err(InferError::Analyze(message.clone())));
                }
            }
        }
    }
}
