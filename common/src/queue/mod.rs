//! Job queue backends. The worker loop and the coordinator see only these
//! traits; `amqp` (RabbitMQ through lapin) serves the cluster and `memory` the
//! embedded local mode.
//!
//! Semantics every backend keeps: delivery is at least once; a delivery stays
//! in hand until it is acked, requeued or dead-lettered; a publish returns only
//! once the broker has taken responsibility for the message.

pub mod amqp;
pub mod lanes;
pub mod memory;

pub use lanes::{Lane, LaneLoad};

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue: cannot connect to the broker at {url}: {reason} (is RabbitMQ running and is broker.url right?)")]
    Connect { url: String, reason: String },
    #[error("queue: authentication failed for user {user} at {url}: check the user and password in broker.url (or broker.password_file) ({reason})")]
    Auth { url: String, user: String, reason: String },
    #[error("queue: publish of job {job} failed: {reason}")]
    Publish { job: String, reason: String },
    #[error("queue: message for job {job} was returned as unroutable (does the queue '{queue}' exist?)")]
    Unroutable { job: String, queue: String },
    #[error("queue: the broker refused (nacked) job {job}")]
    Nacked { job: String },
    #[error("queue: {op} failed: {reason}")]
    Operation { op: &'static str, reason: String },
    #[error("queue: the consumer stream ended: {0}")]
    Closed(String),
}

impl QueueError {
    /// Connection-level failures that a reconnect can fix.
    pub fn is_transient(&self) -> bool {
        !matches!(self, QueueError::Unroutable { .. } | QueueError::Auth { .. })
    }
}

/// A message to publish: the encoded envelope plus the job id it carries (used
/// as the AMQP message id and in error messages), and the lane it travels in
/// (its model's; None: the main work queue).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub job_id: String,
    pub body: Vec<u8>,
    pub lane: Option<Lane>,
}

impl Outgoing {
    /// A job's message: its envelope, in the lane of the model it loads (a
    /// worker caches models by their artifact folder, so the lane follows it).
    pub fn for_job(job: &crate::Job) -> Result<Outgoing, crate::wire::WireError> {
        Ok(Outgoing { job_id: job.id.to_string(), body: crate::wire::encode(job)?, lane: job.model().map(|m| Lane::of_model(&m.artifact)) })
    }
}

/// Why a delivery is being dead-lettered; recorded with the message.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub job_id: Option<String>,
    pub reason: String,
}

/// How the reason of a refused job starts: a job a worker would not run at
/// all (its run is unknown or finished, or its id is not its payload's). Its
/// dead letter is kept for the operator to see, but the coordinator records
/// no failure for it: that would change the state of a run the message only
/// claims to belong to.
pub const REFUSED: &str = "refused: ";

impl DeadLetter {
    /// The dead letter of a refused job ([`REFUSED`]).
    pub fn refused(job_id: Option<String>, reason: &str) -> DeadLetter {
        DeadLetter { job_id, reason: format!("{REFUSED}{reason}") }
    }
}

/// One message in hand.
#[async_trait]
pub trait Delivery: Send + Sync {
    fn body(&self) -> &[u8];
    /// How many times the broker delivered this message before (0 on first delivery).
    fn previous_deliveries(&self) -> u32;
    /// Acknowledge: the job's result is committed. Returns `false` when the
    /// broker will redeliver anyway (the channel the delivery came on is gone).
    async fn ack(&self) -> Result<bool, QueueError>;
    /// Give the message back for another try, by this or another worker.
    async fn requeue(&self) -> Result<bool, QueueError>;
    /// Move the message to the dead-letter queue with a reason, then drop it
    /// from the work queue. The reason travels in the `x-mll-reason` header.
    async fn dead_letter(&self, dl: DeadLetter) -> Result<bool, QueueError>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Waits for the next delivery. Backends reconnect transparently: a
    /// `None` means the consumer was shut down.
    async fn next(&mut self) -> Option<Result<Box<dyn Delivery>, QueueError>>;
    /// Stops taking new deliveries (SIGTERM); deliveries in hand stay valid.
    async fn cancel(&mut self) -> Result<(), QueueError>;
    /// The lane this consumer takes deliveries from (None: the main queue).
    fn lane(&self) -> Option<&Lane>;
    /// Moves to another lane: stops taking deliveries from the current one,
    /// then consumes `lane`. Deliveries the broker sent before the move are
    /// still returned by [`next`](Self::next), so none is left unacked.
    async fn switch_to(&mut self, lane: Option<Lane>) -> Result<(), QueueError>;
}

/// A message found in the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLettered {
    pub body: Vec<u8>,
    pub job_id: Option<String>,
    pub reason: String,
}

impl DeadLettered {
    /// A job a worker refused to run ([`REFUSED`]): no failure is recorded for it.
    pub fn is_refusal(&self) -> bool {
        self.reason.starts_with(REFUSED)
    }
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Publishes all messages with confirms; fails if any was nacked or returned.
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError>;
    async fn consumer(&self, tag: &str) -> Result<Box<dyn Consumer>, QueueError>;
    /// Takes every message now in the dead-letter queue (acked after the caller
    /// has seen it, so call this only when the caller records them durably).
    async fn drain_dead_letters(&self) -> Result<Vec<DeadLettered>, QueueError>;
    /// Messages ready in the work queue and the given lanes together, and in
    /// the dead-letter queue.
    async fn depths(&self, lanes: &[Lane]) -> Result<(u64, u64), QueueError>;
    /// Ready messages and consumers of the main queue (first) and of each of
    /// `lanes` (a lane never published to reads as empty).
    async fn lane_loads(&self, lanes: &[Lane]) -> Result<Vec<LaneLoad>, QueueError>;
}
