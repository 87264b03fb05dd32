//! The worker loop: one delivery at a time (one process per GPU), from
//! delivery to ack:
//!
//! decode (size-checked) → skip if the run is cancelled or the job is already
//! done → execute on a blocking thread under a hard timeout → commit the result
//! atomically → ack. Failures: transient ones are requeued after a backoff until
//! `max_attempts` deliveries have failed; permanent ones, undecodable messages
//! and exhausted retries are dead-lettered with their reason and recorded.
//!
//! Nothing is acked before its result is committed, so a crash at any point
//! leaves the message with the broker, which delivers it again.

use crate::executor::{ExecContext, ExecError, Executor};
use mll_common::queue::{Consumer, DeadLetter, Delivery, JobQueue};
use mll_common::store::{CommitOutcome, ResultStore, RunState};
use mll_common::telemetry::metrics;
use mll_common::{wire, Job, Stage};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// How often a running job's run state is read, so `coordinator cancel`
/// stops work in flight within about this long plus one batch.
const CANCEL_POLL: Duration = Duration::from_secs(1);

/// Executors by the stage they serve.
#[derive(Clone, Default)]
pub struct Executors {
    by_stage: HashMap<Stage, Arc<dyn Executor>>,
}

impl Executors {
    pub fn with(mut self, stage: Stage, ex: Arc<dyn Executor>) -> Self {
        self.by_stage.insert(stage, ex);
        self
    }
    pub fn get(&self, stage: Stage) -> Option<&Arc<dyn Executor>> {
        self.by_stage.get(&stage)
    }
}

#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub consumer_tag: String,
    pub max_message_bytes: usize,
    /// Hard limit for one job; below RabbitMQ's consumer_timeout.
    pub job_timeout: Duration,
    /// Deliveries of a job that may fail transiently before it is dead-lettered.
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    /// After SIGTERM, how long the job in hand may still run before it is requeued.
    pub shutdown_grace: Duration,
    /// Exit when no delivery arrived for this long (queue-driven batch pods).
    pub exit_when_idle: Option<Duration>,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            consumer_tag: "worker".into(),
            max_message_bytes: 1 << 20,
            job_timeout: Duration::from_secs(1500),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(60),
            exit_when_idle: None,
        }
    }
}

/// What one loop did, for tests, logs and the queue benchmark.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoopStats {
    pub committed: u64,
    pub duplicates: u64,
    pub requeued: u64,
    pub dead_lettered: u64,
    pub cancelled: u64,
    pub ack_false: u64,
}

enum Verdict {
    Ack,
    Requeue,
    DeadLetter(DeadLetter),
}

pub struct WorkerLoop {
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn ResultStore>,
    pub executors: Executors,
    pub ctx: ExecContext,
    pub opts: LoopOptions,
}

impl WorkerLoop {
    /// Consumes until `shutdown` turns true (then finishes or requeues the job in
    /// hand), the consumer closes, or the idle limit passes.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<LoopStats> {
        let mut consumer: Box<dyn Consumer> = self.queue.consumer(&self.opts.consumer_tag).await?;
        let mut stats = LoopStats::default();
        info!(tag = %self.opts.consumer_tag, "worker consuming");
        loop {
            let idle = async {
                match self.opts.exit_when_idle {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                biased;
                _ = wait_true(&mut shutdown) => { info!("shutdown requested: no new jobs"); break; }
                _ = idle => { info!("no job for {:?}: exiting", self.opts.exit_when_idle.unwrap_or_default()); break; }
                n = consumer.next() => n,
            };
            let delivery = match next {
                None => break,
                Some(Err(e)) => {
                    warn!(error = %e, "consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Some(Ok(d)) => d,
            };
            self.handle(delivery, &mut shutdown, &mut stats).await;
        }
        let _ = consumer.cancel().await;
        Ok(stats)
    }

    async fn handle(&self, delivery: Box<dyn Delivery>, shutdown: &mut watch::Receiver<bool>, stats: &mut LoopStats) {
        let m = metrics();
        m.worker_jobs_in_flight.inc();
        if delivery.previous_deliveries() > 0 {
            m.worker_redeliveries.inc();
        }
        let (verdict, kind) = self.decide(delivery.as_ref(), shutdown, stats).await;
        let outcome = match verdict {
            Verdict::Ack => delivery.ack().await,
            Verdict::Requeue => {
                stats.requeued += 1;
                m.worker_jobs.with_label_values(&[kind, "requeued"]).inc();
                delivery.requeue().await
            }
            Verdict::DeadLetter(dl) => {
                stats.dead_lettered += 1;
                m.worker_jobs.with_label_values(&[kind, "dead_lettered"]).inc();
                warn!(job = dl.job_id.as_deref().unwrap_or("?"), reason = %dl.reason, "dead-lettering");
                delivery.dead_letter(dl).await
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                // The channel the delivery came on is gone; the broker redelivers.
                stats.ack_false += 1;
                m.worker_ack_false.inc();
                warn!("the broker did not take the ack/requeue (channel gone): the job will be redelivered");
            }
            Err(e) => {
                stats.ack_false += 1;
                m.worker_ack_false.inc();
                warn!(error = %e, "ack/requeue failed: the job will be redelivered");
            }
        }
        m.worker_jobs_in_flight.dec();
    }

    async fn decide(
        &self,
        delivery: &dyn Delivery,
        shutdown: &mut watch::Receiver<bool>,
        stats: &mut LoopStats,
    ) -> (Verdict, &'static str) {
        let m = metrics();
        let job = match wire::decode(delivery.body(), self.opts.max_message_bytes) {
            Ok(j) => j,
            Err(e) => {
                m.worker_dead_letters.with_label_values(&["malformed"]).inc();
                let reason = format!("malformed message: {e}");
                return (Verdict::DeadLetter(DeadLetter { job_id: None, reason }), "unknown");
            }
        };
        let stage = job.stage();
        let kind = stage.as_str();
        let jid = job.id.to_string();

        // A cancelled run's jobs are dropped; a missing meta (Redis lost data) is not a cancel.
        let Some(meta) = self.store_retrying(&jid, shutdown, || self.store.meta(&job.run)).await else {
            return (Verdict::Requeue, kind);
        };
        if meta.is_some_and(|meta| meta.state == RunState::Cancelled) {
            stats.cancelled += 1;
            m.worker_jobs.with_label_values(&[kind, "cancelled"]).inc();
            return (Verdict::Ack, kind);
        }
        let Some(done) = self.store_retrying(&jid, shutdown, || self.store.is_done(&job.run, stage, &job.id)).await else {
            return (Verdict::Requeue, kind);
        };
        if done {
            stats.duplicates += 1;
            m.worker_jobs.with_label_values(&[kind, "duplicate"]).inc();
            debug!(job = %jid, "already done; acking the redelivery");
            return (Verdict::Ack, kind);
        }
        let Some(executor) = self.executors.get(stage).cloned() else {
            m.worker_dead_letters.with_label_values(&["no_executor"]).inc();
            return (self.fail(&job, format!("this worker has no executor for '{kind}' jobs")).await, kind);
        };
        for p in job.payload.paths() {
            if let Err(e) = self.ctx.resolve(p) {
                m.worker_dead_letters.with_label_values(&["bad_path"]).inc();
                return (self.fail(&job, e.to_string()).await, kind);
            }
        }
        if let Err(e) = self.store.count_execution(&job.run, &job.id).await {
            warn!(job = %jid, error = %e, "could not count the execution (continuing)");
        }

        info!(job = %jid, what = %job.payload.describe(), attempt = delivery.previous_deliveries() + 1, "executing");
        let started = Instant::now();
        let (result, run_cancelled) = self.execute(executor, job.clone(), shutdown).await;
        m.worker_job_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        if run_cancelled {
            // `coordinator cancel` while it ran: stopped at its next batch boundary, dropped.
            stats.cancelled += 1;
            m.worker_jobs.with_label_values(&[kind, "cancelled"]).inc();
            info!(job = %jid, secs = started.elapsed().as_secs_f64(), "run cancelled: stopped the job in flight and dropped it");
            return (Verdict::Ack, kind);
        }

        match result {
            Ok(output) => {
                let execution = mll_common::output::Execution { seconds: started.elapsed().as_secs_f64() };
                let bytes = match mll_common::output::encode_result(&output, execution) {
                    Ok(b) => b,
                    Err(e) => return (self.fail(&job, format!("result cannot be encoded: {e}")).await, kind),
                };
                match self.commit_with_retry(&job, &bytes).await {
                    Some(CommitOutcome::Committed) => {
                        stats.committed += 1;
                        m.worker_jobs.with_label_values(&[kind, "committed"]).inc();
                        info!(job = %jid, secs = started.elapsed().as_secs_f64(), "committed");
                        (Verdict::Ack, kind)
                    }
                    Some(CommitOutcome::Duplicate) => {
                        stats.duplicates += 1;
                        m.worker_jobs.with_label_values(&[kind, "duplicate"]).inc();
                        info!(job = %jid, "ran again after a redelivery; the first result stands");
                        (Verdict::Ack, kind)
                    }
                    // Store unreachable: keep the message with the broker.
                    None => (Verdict::Requeue, kind),
                }
            }
            Err(e) if e.is_permanent() => {
                m.worker_dead_letters.with_label_values(&["permanent"]).inc();
                (self.fail(&job, e.to_string()).await, kind)
            }
            Err(e) => {
                if *shutdown.borrow() {
                    // Interrupted by shutdown: not the job's fault, give it back untouched.
                    return (Verdict::Requeue, kind);
                }
                let attempt = delivery.previous_deliveries() + 1;
                if attempt >= self.opts.max_attempts {
                    m.worker_dead_letters.with_label_values(&["attempts_exhausted"]).inc();
                    let reason =
                        format!("failed on {attempt} of {} attempts (worker.max_attempts); last error: {e}", self.opts.max_attempts);
                    (self.fail(&job, reason).await, kind)
                } else {
                    // Exponential backoff before giving it back, so a flapping
                    // dependency is not hammered.
                    let backoff = self.retry_policy().delay(attempt);
                    warn!(job = %jid, error = %e, attempt, ?backoff, "transient failure; requeueing");
                    tokio::time::sleep(backoff).await;
                    (Verdict::Requeue, kind)
                }
            }
        }
    }

    /// Runs the executor on a blocking thread under the hard timeout; on
    /// shutdown it waits up to the grace period, then asks the job to stop.
    /// Every [`CANCEL_POLL`] it reads the run's state: when the run was
    /// cancelled it asks the job to stop and returns `true` beside the result.
    async fn execute(
        &self,
        executor: Arc<dyn Executor>,
        job: Job,
        shutdown: &mut watch::Receiver<bool>,
    ) -> (Result<mll_common::JobOutput, ExecError>, bool) {
        let mut ctx = self.ctx.clone();
        ctx.cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cancel = ctx.cancel.clone();
        let run = job.run.clone();
        let mut handle = tokio::task::spawn_blocking(move || executor.execute(&job, &ctx));
        let timeout = tokio::time::sleep(self.opts.job_timeout);
        tokio::pin!(timeout);
        // The first read one period in: the state was read just before the
        // job started, and an immediate tick would cost every job a Redis
        // round trip (a third of a no-op job's queue path).
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + CANCEL_POLL, CANCEL_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            tokio::select! {
                r = &mut handle => {
                    return (match r {
                        Ok(r) => r,
                        Err(e) if e.is_panic() => Err(ExecError::Permanent(format!("the executor panicked: {}", panic_message(e)))),
                        Err(e) => Err(ExecError::Transient(format!("the executor thread failed: {e}"))),
                    }, false);
                }
                _ = poll.tick() => {
                    // A store error is not a cancel: the job goes on.
                    if let Ok(Some(meta)) = self.store.meta(&run).await {
                        if meta.state == RunState::Cancelled {
                            cancel.store(true, Ordering::Relaxed);
                            let r = (&mut handle).await;
                            // A job that finished before it saw the flag is dropped all the same.
                            drop(r);
                            return (Err(ExecError::Cancelled("run cancelled".into())), true);
                        }
                    }
                }
                _ = &mut timeout => {
                    cancel.store(true, Ordering::Relaxed);
                    error!(timeout = ?self.opts.job_timeout, "job exceeded worker.job_timeout_s; stopping it");
                    let _ = (&mut handle).await;
                    return (Err(ExecError::Transient(format!("timed out after {:?} (worker.job_timeout_s)", self.opts.job_timeout))), false);
                }
                _ = wait_true(shutdown), if grace.is_none() => {
                    info!(grace = ?self.opts.shutdown_grace, "shutdown: finishing the job in hand within the grace period");
                    grace = Some(Box::pin(tokio::time::sleep(self.opts.shutdown_grace)));
                }
                _ = async { grace.as_mut().unwrap().await }, if grace.is_some() => {
                    cancel.store(true, Ordering::Relaxed);
                    warn!("grace period over: stopping the job; it goes back to the queue");
                    let _ = (&mut handle).await;
                    return (Err(ExecError::Cancelled("worker shutting down".into())), false);
                }
            }
        }
    }

    /// Requeue and commit retries: `worker.retry_backoff_ms` doubling up to
    /// 10 s, jittered (mll_common::backoff).
    /// A store read the job cannot go on without, retried with backoff while
    /// the delivery is held. Requeueing instead would count towards the
    /// broker's delivery limit, so an outage of a few seconds would get
    /// healthy jobs dead-lettered. None: shutdown was asked for (requeue).
    async fn store_retrying<T, F, Fut>(&self, jid: &str, shutdown: &mut watch::Receiver<bool>, read: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, mll_common::store::StoreError>>,
    {
        let mut attempt = 0;
        loop {
            match read().await {
                Ok(v) => return Some(v),
                Err(e) => {
                    attempt += 1;
                    warn!(job = %jid, error = %e, attempt, "store unavailable before execution; holding the job and retrying");
                    let policy = self.retry_policy();
                    tokio::select! {
                        biased;
                        _ = wait_true(shutdown) => return None,
                        _ = policy.sleep(attempt) => {}
                    }
                }
            }
        }
    }

    fn retry_policy(&self) -> mll_common::backoff::Backoff {
        mll_common::backoff::Backoff::new(self.opts.retry_backoff, Duration::from_secs(10))
    }

    /// Commits with retries: the commit is idempotent, so retrying after an
    /// unknown outcome (a timed-out response) is safe. `None` = gave up.
    async fn commit_with_retry(&self, job: &Job, bytes: &[u8]) -> Option<CommitOutcome> {
        for attempt in 1..=8 {
            match self.store.commit(&job.run, job.stage(), &job.id, bytes).await {
                Ok(o) => return Some(o),
                Err(e) => {
                    warn!(job = %job.id, attempt, error = %e, "commit failed; retrying");
                    self.retry_policy().sleep(attempt).await;
                }
            }
        }
        error!(job = %job.id, "could not commit the result; requeueing the job");
        None
    }

    /// Records a permanent failure and returns the dead-letter verdict.
    async fn fail(&self, job: &Job, reason: String) -> Verdict {
        if let Err(e) = self.store.record_failure(&job.run, job.stage(), &job.id, &reason).await {
            // The coordinator also records failures from the dead-letter queue.
            warn!(job = %job.id, error = %e, "could not record the failure in the store");
        }
        Verdict::DeadLetter(DeadLetter { job_id: Some(job.id.to_string()), reason })
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if *rx.borrow() {
        return;
    }
    while rx.changed().await.is_ok() {
        if *rx.borrow() {
            return;
        }
    }
    std::future::pending::<()>().await
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let p = e.into_panic();
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
