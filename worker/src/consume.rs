//! The worker loop: one delivery at a time (one process per GPU), from
//! delivery to ack:
//!
//! decode (size-checked; run and job ids validated) → refuse a job whose id
//! is not the deterministic id of its payload → skip if the run is cancelled
//! or the job is already done, refuse it if its run is unknown to the store
//! or finished (one store read, [`Committer::check_job`]; held and retried
//! while the store is unreachable) → execute on a blocking thread under a hard
//! timeout, counting the execution meanwhile → commit the result atomically
//! → ack. Failures: transient ones are requeued after a backoff until
//! `max_attempts` deliveries have failed; permanent ones, undecodable messages
//! and exhausted retries are dead-lettered with their reason and recorded.
//!
//! A refused job is never executed: it is dead-lettered with a reason that
//! starts with [`mll_common::queue::REFUSED`] and nothing is written to the
//! store for it (no failure record, no execution count), so a message that
//! only claims to belong to a run cannot change that run.
//!
//! Nothing is acked before its result is committed, so a crash at any point
//! leaves the message with the broker, which delivers it again.
//!
//! `broker.prefetch` above 1 lets the broker push the next deliveries while a
//! job runs; they wait, not started, until the loop takes them (still one job
//! at a time, each acked after its own commit), which saves the wait for the
//! next delivery after each ack (a quorum queue's settle round trip, about a
//! millisecond). A delivery held that way is unacked from its arrival: it goes
//! back to the queue if the worker dies (the broker may count that as one of
//! its deliveries), is not started after a shutdown request (it goes back when
//! the connection closes), must be acked within RabbitMQ's `consumer_timeout`
//! counting the job ahead of it (so prefetch × `worker.job_timeout_s` must stay
//! below it), and is a job an idle worker cannot take meanwhile. Hence 1, the
//! default, for GPU jobs of minutes; 2 pays off for pools of short jobs.
//!
//! Placement (`mll_common::queue::lanes`): the loop consumes one lane at a
//! time, its model's jobs, and stays while deliveries come. After
//! [`LoopOptions::lane_idle`] without one it asks the store for the lanes and
//! the broker for their loads, and moves to the lane [`lanes::choose`] names
//! (backing off while there is no work anywhere).

use crate::executor::{ExecContext, ExecError, Executor};
use crate::placement::PlacementMemory;
use mll_common::queue::{lanes, Consumer, DeadLetter, Delivery, JobQueue};
use mll_common::store::{CommitOutcome, Committer, RunState};
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
    /// No delivery for this long on the lane in hand: look for a better one
    /// (doubling up to 4× while no lane has work).
    pub lane_idle: Duration,
    /// The model cache's size (what a move to a model held costs nothing).
    pub model_cache_bytes: u64,
    /// Model load rate from the data root, to weigh a move's load time.
    pub load_bytes_per_s: f64,
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
            lane_idle: Duration::from_millis(500),
            model_cache_bytes: 8 << 30,
            load_bytes_per_s: 1.5e9,
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
    /// Give the job back and stop the loop: a cause no retry can fix in this
    /// process (a full disk), which would otherwise burn every job's attempts.
    Stop(String),
}

/// Why a commit did not happen.
enum CommitFailure {
    /// The store stayed unreachable through every retry.
    GaveUp,
    /// The store cannot take it until a person acts (a full disk).
    Fatal(mll_common::store::StoreError),
}

pub struct WorkerLoop {
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn Committer>,
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
        let mut memory = PlacementMemory::new(self.ctx.data_root.clone(), self.opts.model_cache_bytes, self.opts.load_bytes_per_s);
        self.place(consumer.as_mut(), &mut memory).await;
        let mut last_job = tokio::time::Instant::now();
        let mut look_after = self.opts.lane_idle;
        loop {
            let idle = async {
                match self.opts.exit_when_idle {
                    Some(d) => tokio::time::sleep_until(last_job + d).await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                biased;
                _ = wait_true(&mut shutdown) => { info!("shutdown requested: no new jobs"); break; }
                _ = idle => {
                    // Idle here, but another lane may have work: exit only when none has.
                    if self.place(consumer.as_mut(), &mut memory).await {
                        last_job = tokio::time::Instant::now();
                        continue;
                    }
                    info!("no job for {:?}: exiting", self.opts.exit_when_idle.unwrap_or_default());
                    break;
                }
                _ = tokio::time::sleep(look_after) => {
                    // Nothing on this lane for a while: is there work elsewhere?
                    let moved = self.place(consumer.as_mut(), &mut memory).await;
                    look_after = if moved { self.opts.lane_idle } else { (look_after * 2).min(self.opts.lane_idle * 4) };
                    continue;
                }
                n = consumer.next() => n,
            };
            last_job = tokio::time::Instant::now();
            look_after = self.opts.lane_idle;
            let delivery = match next {
                None => break,
                Some(Err(e)) => {
                    warn!(error = %e, "consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Some(Ok(d)) => d,
            };
            let started = Instant::now();
            if let Some(reason) = self.handle(delivery, &mut shutdown, &mut stats).await {
                let _ = consumer.cancel().await;
                error!(%reason, "worker stopping");
                anyhow::bail!("{reason}");
            }
            if let Some(lane) = consumer.lane() {
                memory.served(lane, started.elapsed().as_secs_f64());
            }
        }
        let _ = consumer.cancel().await;
        Ok(stats)
    }

    /// Moves `consumer` to the lane with the most ready work per worker;
    /// whether it moved. A store or broker error leaves it where it is.
    async fn place(&self, consumer: &mut dyn Consumer, memory: &mut PlacementMemory) -> bool {
        let lanes = match self.store.lanes().await {
            Ok(l) => l,
            Err(e) => {
                debug!(error = %e, "cannot read the lanes; staying");
                return false;
            }
        };
        memory.learn(&lanes);
        let lanes: Vec<lanes::Lane> = lanes.into_iter().map(|(l, _)| l).collect();
        let mut loads = match self.queue.lane_loads(&lanes).await {
            Ok(l) => l,
            Err(e) => {
                debug!(error = %e, "cannot read the lanes' loads; staying");
                return false;
            }
        };
        memory.weigh(&mut loads);
        let current = consumer.lane().cloned();
        match lanes::choose(&current, &loads) {
            Some(next) if next != current => {
                let name = |l: &Option<lanes::Lane>| l.as_ref().map_or_else(|| "main".to_string(), |l| l.to_string());
                info!(from = %name(&current), to = %name(&next), "moving to the lane with the most work per worker");
                match consumer.switch_to(next).await {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(error = %e, "could not move to another lane; staying");
                        false
                    }
                }
            }
            _ => false,
        }
    }

    /// Settles one delivery; `Some(reason)` when the loop must stop.
    async fn handle(&self, delivery: Box<dyn Delivery>, shutdown: &mut watch::Receiver<bool>, stats: &mut LoopStats) -> Option<String> {
        let m = metrics();
        m.worker_jobs_in_flight.inc();
        if delivery.previous_deliveries() > 0 {
            m.worker_redeliveries.inc();
        }
        let (verdict, kind) = self.decide(delivery.as_ref(), shutdown, stats).await;
        let mut stop = None;
        let outcome = match verdict {
            Verdict::Ack => delivery.ack().await,
            Verdict::Stop(reason) => {
                stats.requeued += 1;
                m.worker_jobs.with_label_values(&[kind, "requeued"]).inc();
                stop = Some(reason);
                delivery.requeue().await
            }
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
        stop
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
        if let Err(expected) = job.check_id() {
            return (
                self.refuse(
                    &job,
                    format!(
                        "job id {jid} is not the id of its payload in run '{}' (that would be {expected}): \
                         the message was altered or built by hand; it is never run",
                        job.run
                    ),
                ),
                kind,
            );
        }

        // One store read before starting (one round trip on Redis): the run
        // state, so a cancelled run's jobs are dropped and those of an unknown
        // or finished run refused (a missing meta is not a cancel: Redis may
        // have lost it, and `resume` publishes the jobs again once it has
        // registered the run anew), and whether the job is done already (a
        // redelivery of a committed job).
        let Some(check) = self.store_retrying(&jid, shutdown, || self.store.check_job(&job.run, stage, &job.id)).await else {
            return (Verdict::Requeue, kind);
        };
        if check.cancelled() {
            stats.cancelled += 1;
            m.worker_jobs.with_label_values(&[kind, "cancelled"]).inc();
            return (Verdict::Ack, kind);
        }
        if check.done {
            stats.duplicates += 1;
            m.worker_jobs.with_label_values(&[kind, "duplicate"]).inc();
            debug!(job = %jid, "already done; acking the redelivery");
            return (Verdict::Ack, kind);
        }
        let run = &job.run;
        match check.meta.as_ref().map(|meta| meta.state) {
            None => {
                return (
                    self.refuse(
                        &job,
                        format!(
                            "run '{run}' is not known to the store (never submitted, deleted, or the store lost its data; \
                             `coordinator resume {run}` registers it again and republishes its jobs)"
                        ),
                    ),
                    kind,
                )
            }
            Some(state @ (RunState::Done | RunState::Failed)) => {
                return (
                    self.refuse(
                        &job,
                        format!(
                            "run '{run}' is finished ({state}); a job that arrives after its end is not run \
                             (`coordinator retry {run}` or `coordinator resume {run}` reopen the run for the jobs they publish)"
                        ),
                    ),
                    kind,
                )
            }
            Some(RunState::Running | RunState::Cancelled) => {}
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
        // The execution is counted while the job runs rather than before it:
        // join! polls the count first, so its command goes out ahead of the
        // job's commit on the same connection (Redis applies it first unless
        // it had to be retried), but the job does not wait a round trip for
        // it. It only feeds the duplicate-execution statistic; a failed count
        // is logged.
        let counting = async {
            if let Err(e) = self.store.count_execution(&job.run, &job.id).await {
                warn!(job = %jid, error = %e, "could not count the execution (continuing)");
            }
        };
        let ((), verdict) = tokio::join!(counting, self.run_and_commit(delivery, &job, executor, shutdown, stats));
        (verdict, kind)
    }

    /// Executes a job that passed its checks and commits its result; the
    /// verdict says what happens to the delivery.
    async fn run_and_commit(
        &self,
        delivery: &dyn Delivery,
        job: &Job,
        executor: Arc<dyn Executor>,
        shutdown: &mut watch::Receiver<bool>,
        stats: &mut LoopStats,
    ) -> Verdict {
        let m = metrics();
        let kind = job.stage().as_str();
        let jid = job.id.to_string();
        info!(job = %jid, what = %job.payload.describe(), attempt = delivery.previous_deliveries() + 1, "executing");
        let started = Instant::now();
        let (result, run_cancelled) = self.execute(executor, job.clone(), shutdown).await;
        m.worker_job_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        if run_cancelled {
            // `coordinator cancel` while it ran: stopped at its next batch boundary, dropped.
            stats.cancelled += 1;
            m.worker_jobs.with_label_values(&[kind, "cancelled"]).inc();
            info!(job = %jid, secs = started.elapsed().as_secs_f64(), "run cancelled: stopped the job in flight and dropped it");
            return Verdict::Ack;
        }

        match result {
            Ok(output) => {
                let execution = mll_common::output::Execution { seconds: started.elapsed().as_secs_f64() };
                let bytes = match mll_common::output::encode_result(&output, execution) {
                    Ok(b) => b,
                    Err(e) => return self.fail(job, format!("result cannot be encoded: {e}")).await,
                };
                match self.commit_with_retry(job, &bytes).await {
                    Ok(CommitOutcome::Committed) => {
                        stats.committed += 1;
                        m.worker_jobs.with_label_values(&[kind, "committed"]).inc();
                        info!(job = %jid, secs = started.elapsed().as_secs_f64(), "committed");
                        Verdict::Ack
                    }
                    Ok(CommitOutcome::Duplicate) => {
                        stats.duplicates += 1;
                        m.worker_jobs.with_label_values(&[kind, "duplicate"]).inc();
                        info!(job = %jid, "ran again after a redelivery; the first result stands");
                        Verdict::Ack
                    }
                    // Store unreachable: keep the message with the broker.
                    Err(CommitFailure::GaveUp) => Verdict::Requeue,
                    Err(CommitFailure::Fatal(e)) => Verdict::Stop(stop_reason(&e)),
                }
            }
            Err(e) if e.is_disk_full() => Verdict::Stop(stop_reason(&e)),
            Err(e) if e.is_permanent() => {
                m.worker_dead_letters.with_label_values(&["permanent"]).inc();
                self.fail(job, e.to_string()).await
            }
            Err(e) => {
                if *shutdown.borrow() {
                    // Interrupted by shutdown: not the job's fault, give it back untouched.
                    return Verdict::Requeue;
                }
                let attempt = delivery.previous_deliveries() + 1;
                if attempt >= self.opts.max_attempts {
                    m.worker_dead_letters.with_label_values(&["attempts_exhausted"]).inc();
                    let reason =
                        format!("failed on {attempt} of {} attempts (worker.max_attempts); last error: {e}", self.opts.max_attempts);
                    self.fail(job, reason).await
                } else {
                    // Exponential backoff before giving it back, so a flapping
                    // dependency is not hammered.
                    let backoff = self.retry_policy().delay(attempt);
                    warn!(job = %jid, error = %e, attempt, ?backoff, "transient failure; requeueing");
                    tokio::time::sleep(backoff).await;
                    Verdict::Requeue
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
    /// unknown outcome (a timed-out response) is safe. A store that cannot
    /// take it until a person acts (a full disk) is not retried.
    async fn commit_with_retry(&self, job: &Job, bytes: &[u8]) -> Result<CommitOutcome, CommitFailure> {
        for attempt in 1..=8 {
            match self.store.commit(&job.run, job.stage(), &job.id, bytes).await {
                Ok(o) => return Ok(o),
                Err(e) if !e.is_retriable() => return Err(CommitFailure::Fatal(e)),
                Err(e) => {
                    warn!(job = %job.id, attempt, error = %e, "commit failed; retrying");
                    self.retry_policy().sleep(attempt).await;
                }
            }
        }
        error!(job = %job.id, "could not commit the result; requeueing the job");
        Err(CommitFailure::GaveUp)
    }

    /// Refuses a job without running it: dead-lettered with a reason that
    /// says so, nothing written to the store.
    fn refuse(&self, job: &Job, reason: String) -> Verdict {
        metrics().worker_dead_letters.with_label_values(&["refused"]).inc();
        warn!(job = %job.id, run = %job.run, %reason, "refusing a job");
        Verdict::DeadLetter(DeadLetter::refused(Some(job.id.to_string()), &reason))
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

/// Why the loop stops on a full disk, and what to do.
fn stop_reason(e: &dyn std::fmt::Display) -> String {
    format!(
        "stopping: {e}. No retry can help until space is freed, so the job went back to the queue unspent; \
         free space, then start the worker again (local mode: run the same command again; finished jobs are kept)"
    )
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

#[cfg(test)]
mod tests {
    //! The loop's guarantees on the in-process queue and store: what is read
    //! before a job starts, what is counted and committed, and that nothing
    //! is acked before its commit.
    use super::*;
    use crate::executors::diagnostic::DiagnosticExecutor;
    use async_trait::async_trait;
    use mll_common::artifact::ArtifactStore;
    use mll_common::job::{DiagnosticBehavior, DiagnosticJob};
    use mll_common::queue::memory::MemoryQueue;
    use mll_common::queue::Lane;
    use mll_common::queue::Outgoing;
    use mll_common::store::embedded::EmbeddedStore;
    use mll_common::store::{JobCheck, Ledger, RunMeta, StoreError};
    use mll_common::{JobId, JobPayload, RunId};
    use std::sync::atomic::{AtomicBool, AtomicU32};
    use std::sync::Mutex;

    /// The embedded store behind a switchboard of faults, logging the calls
    /// the loop makes.
    struct Probe {
        inner: EmbeddedStore,
        /// check_job fails this many more times (a store outage).
        failing_checks: AtomicU32,
        /// Every commit fails.
        failing_commits: AtomicBool,
        /// check_job says "not done" even for a done job (a redelivery that
        /// raced the first commit).
        hide_done: AtomicBool,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Probe {
        fn new() -> Self {
            Probe {
                inner: EmbeddedStore::in_memory(),
                failing_checks: AtomicU32::new(0),
                failing_commits: AtomicBool::new(false),
                hide_done: AtomicBool::new(false),
                calls: Mutex::new(Vec::new()),
            }
        }
        fn log(&self, call: &'static str) {
            self.calls.lock().unwrap().push(call);
        }
        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().clone()
        }
        fn down(op: &'static str) -> StoreError {
            StoreError::Operation { op, reason: "connection refused (test)".into() }
        }
    }

    #[async_trait]
    impl Committer for Probe {
        async fn meta(&self, run: &RunId) -> Result<Option<RunMeta>, StoreError> {
            self.log("meta");
            self.inner.meta(run).await
        }
        async fn commit(&self, run: &RunId, stage: Stage, job: &JobId, result: &[u8]) -> Result<CommitOutcome, StoreError> {
            self.log("commit");
            if self.failing_commits.load(Ordering::SeqCst) {
                return Err(Probe::down("commit"));
            }
            self.inner.commit(run, stage, job, result).await
        }
        async fn check_job(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<JobCheck, StoreError> {
            self.log("check_job");
            let left = self.failing_checks.load(Ordering::SeqCst);
            if left > 0 {
                self.failing_checks.store(left - 1, Ordering::SeqCst);
                return Err(Probe::down("check_job"));
            }
            let mut c = self.inner.check_job(run, stage, job).await?;
            if self.hide_done.load(Ordering::SeqCst) {
                c.done = false;
            }
            Ok(c)
        }
        async fn record_failure(&self, run: &RunId, stage: Stage, job: &JobId, reason: &str) -> Result<(), StoreError> {
            self.log("record_failure");
            self.inner.record_failure(run, stage, job, reason).await
        }
        async fn count_execution(&self, run: &RunId, job: &JobId) -> Result<u64, StoreError> {
            self.log("count_execution");
            self.inner.count_execution(run, job).await
        }
        async fn lanes(&self) -> Result<Vec<(mll_common::queue::Lane, String)>, StoreError> {
            self.inner.lanes().await
        }
    }

    struct World {
        queue: MemoryQueue,
        store: Arc<Probe>,
        dir: tempfile::TempDir,
        run: RunId,
    }

    impl World {
        /// A running run with `n` diagnostic jobs in the queue.
        async fn new(n: u32, work_ms: u64, behavior: DiagnosticBehavior) -> (World, Vec<JobId>) {
            let w = World {
                queue: MemoryQueue::new(5),
                store: Arc::new(Probe::new()),
                dir: tempfile::tempdir().unwrap(),
                run: RunId::new("consume-test").unwrap(),
            };
            w.store.inner.put_meta(&w.run, &RunMeta { state: RunState::Running, spec_digest: "d".into() }).await.unwrap();
            let mut ids = Vec::new();
            let mut out = Vec::new();
            for index in 0..n {
                let job = Job::new(w.run.clone(), JobPayload::Diagnostic(DiagnosticJob { index, work_ms, behavior }));
                out.push(Outgoing::for_job(&job).unwrap());
                ids.push(job.id);
            }
            w.store.inner.expect(&w.run, Stage::Diagnostic, &ids).await.unwrap();
            w.queue.publish(&out).await.unwrap();
            (w, ids)
        }

        fn worker(&self) -> WorkerLoop {
            WorkerLoop {
                queue: Arc::new(self.queue.clone()),
                store: self.store.clone(),
                executors: Executors::default().with(Stage::Diagnostic, Arc::new(DiagnosticExecutor)),
                ctx: ExecContext::new(ArtifactStore::new(self.dir.path().join("artifacts")), self.dir.path().to_path_buf()),
                opts: LoopOptions {
                    consumer_tag: "test".into(),
                    retry_backoff: Duration::from_millis(1),
                    shutdown_grace: Duration::from_secs(1),
                    exit_when_idle: Some(Duration::from_millis(300)),
                    ..LoopOptions::default()
                },
            }
        }

        /// Runs one worker until the queue has been idle for a while.
        async fn drain(&self) -> LoopStats {
            let (_tx, rx) = watch::channel(false);
            self.worker().run(rx).await.unwrap()
        }
    }

    #[tokio::test]
    async fn each_job_is_read_once_counted_committed_then_acked() {
        let (w, ids) = World::new(3, 0, DiagnosticBehavior::Succeed).await;
        let stats = w.drain().await;
        assert_eq!(stats, LoopStats { committed: 3, ..LoopStats::default() });
        assert_eq!(w.queue.depths(&[]).await.unwrap(), (0, 0), "every delivery was acked");
        let executions = w.store.inner.executions(&w.run).await.unwrap();
        for id in &ids {
            assert!(w.store.inner.result(&w.run, id).await.unwrap().is_some());
            assert_eq!(executions.get(id), Some(&1));
        }
        // One pre-execution read per job (meta and done-ness together), and
        // the execution counted ahead of the commit.
        assert_eq!(w.store.calls(), ["check_job", "count_execution", "commit"].repeat(3));
    }

    #[tokio::test]
    async fn a_cancelled_run_or_a_done_job_is_acked_without_running() {
        let (w, ids) = World::new(2, 0, DiagnosticBehavior::Succeed).await;
        w.store.commit(&w.run, Stage::Diagnostic, &ids[0], b"first").await.unwrap();
        let stats = w.drain().await;
        assert_eq!(stats, LoopStats { committed: 1, duplicates: 1, ..LoopStats::default() });
        assert_eq!(w.store.inner.result(&w.run, &ids[0]).await.unwrap().as_deref(), Some(&b"first"[..]), "the first result stands");
        assert_eq!(w.store.inner.executions(&w.run).await.unwrap().get(&ids[0]), None, "a done job does not run again");

        let (w, _) = World::new(2, 0, DiagnosticBehavior::Succeed).await;
        w.store.inner.set_state(&w.run, RunState::Cancelled).await.unwrap();
        let stats = w.drain().await;
        assert_eq!(stats, LoopStats { cancelled: 2, ..LoopStats::default() });
        assert_eq!(w.queue.depths(&[]).await.unwrap(), (0, 0), "a cancelled run's jobs are dropped");
        assert!(w.store.inner.executions(&w.run).await.unwrap().is_empty());
        assert_eq!(w.store.calls(), ["check_job", "check_job"]);
    }

    #[tokio::test]
    async fn a_worker_moves_between_lanes_until_every_lane_is_drained() {
        let (w, _) = World::new(0, 0, DiagnosticBehavior::Succeed).await;
        let lanes = [Lane::of_model("models/a"), Lane::of_model("models/b")];
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for index in 0..6u32 {
            let job =
                Job::new(w.run.clone(), JobPayload::Diagnostic(DiagnosticJob { index, work_ms: 0, behavior: DiagnosticBehavior::Succeed }));
            let id = job.id.clone();
            let mut m = Outgoing::for_job(&job).unwrap();
            // Four jobs in lane a, two in b.
            m.lane = Some(lanes[usize::from(index >= 4)].clone());
            out.push(m);
            ids.push(id);
        }
        w.store.inner.expect(&w.run, Stage::Diagnostic, &ids).await.unwrap();
        w.store.inner.add_lanes(&[(lanes[0].clone(), "models/a".into()), (lanes[1].clone(), "models/b".into())]).await.unwrap();
        w.queue.publish(&out).await.unwrap();
        let stats = w.drain().await;
        assert_eq!(stats.committed, 6, "{stats:?}");
        assert_eq!(w.queue.depths(&lanes).await.unwrap(), (0, 0), "both lanes drained");
        let loads = w.queue.lane_loads(&lanes).await.unwrap();
        assert!(loads.iter().all(|l| l.consumers == 0), "the worker left when it stopped: {loads:?}");
    }

    /// Jobs of a run the store does not know (never submitted, or its meta
    /// is gone) or of a finished run are refused: dead-lettered with the
    /// reason, never run, nothing written to the store for them.
    #[tokio::test]
    async fn jobs_of_an_unknown_or_finished_run_are_refused_unrun() {
        let (w, ids) = World::new(1, 0, DiagnosticBehavior::Succeed).await;
        let fresh = World { store: Arc::new(Probe::new()), ..w };
        let stats = fresh.drain().await;
        assert_eq!(stats, LoopStats { dead_lettered: 1, ..LoopStats::default() });
        let dead = fresh.queue.drain_dead_letters().await.unwrap();
        assert!(dead[0].is_refusal() && dead[0].reason.contains("is not known to the store"), "{}", dead[0].reason);
        assert_eq!(dead[0].job_id.as_deref(), Some(ids[0].as_str()));
        assert_eq!(fresh.store.inner.result(&fresh.run, &ids[0]).await.unwrap(), None);
        assert_eq!(fresh.store.calls(), ["check_job"], "no count, no commit, no failure record");
        assert!(fresh.store.inner.runs().await.unwrap().is_empty(), "the unknown run was not created");

        for state in [RunState::Done, RunState::Failed] {
            let (w, ids) = World::new(2, 0, DiagnosticBehavior::Succeed).await;
            w.store.inner.commit(&w.run, Stage::Diagnostic, &ids[0], b"first").await.unwrap();
            w.store.inner.set_state(&w.run, state).await.unwrap();
            let stats = w.drain().await;
            // The done job's redelivery is a duplicate as ever; the other is refused.
            assert_eq!(stats, LoopStats { duplicates: 1, dead_lettered: 1, ..LoopStats::default() }, "{state}");
            let dead = w.queue.drain_dead_letters().await.unwrap();
            assert!(dead[0].is_refusal() && dead[0].reason.contains(&format!("is finished ({state})")), "{}", dead[0].reason);
            assert_eq!(w.store.inner.result(&w.run, &ids[1]).await.unwrap(), None);
            assert!(w.store.inner.executions(&w.run).await.unwrap().is_empty());
            assert!(w.store.inner.failures(&w.run, Stage::Diagnostic).await.unwrap().is_empty(), "no failure recorded");
        }
    }

    /// A job whose id is not its payload's (the run rewritten, the shard
    /// changed, or built by hand) is refused before the store is read.
    #[tokio::test]
    async fn a_job_whose_id_is_not_its_payloads_is_refused() {
        let (w, _) = World::new(0, 0, DiagnosticBehavior::Succeed).await;
        let other = RunId::new("someone-else").unwrap();
        let payload = JobPayload::Diagnostic(DiagnosticJob { index: 7, work_ms: 0, behavior: DiagnosticBehavior::Succeed });
        // Another run's job with this run written in, and a job under a made-up id.
        let moved = Job { run: w.run.clone(), ..Job::new(other, payload.clone()) };
        let made_up = Job { id: JobId::derive(&w.run, &["anything"]), ..Job::new(w.run.clone(), payload) };
        let out: Vec<Outgoing> = [&moved, &made_up].iter().map(|j| Outgoing::for_job(j).unwrap()).collect();
        w.queue.publish(&out).await.unwrap();
        let stats = w.drain().await;
        assert_eq!(stats, LoopStats { dead_lettered: 2, ..LoopStats::default() });
        for d in w.queue.drain_dead_letters().await.unwrap() {
            assert!(d.is_refusal() && d.reason.contains("is not the id of its payload"), "{}", d.reason);
        }
        assert!(w.store.calls().is_empty(), "refused before any store call: {:?}", w.store.calls());
        assert!(w.store.inner.done(&w.run, Stage::Diagnostic).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_outage_before_the_job_holds_the_delivery() {
        let (w, ids) = World::new(1, 0, DiagnosticBehavior::Succeed).await;
        w.store.failing_checks.store(3, Ordering::SeqCst);
        let stats = w.drain().await;
        // Held and retried in hand, not requeued: no delivery was used up.
        assert_eq!(stats, LoopStats { committed: 1, ..LoopStats::default() });
        assert_eq!(w.store.calls().iter().filter(|c| **c == "check_job").count(), 4);
        assert_eq!(w.store.inner.executions(&w.run).await.unwrap().get(&ids[0]), Some(&1));
    }

    #[tokio::test]
    async fn shutdown_during_a_store_outage_gives_the_job_back() {
        let (w, _) = World::new(1, 0, DiagnosticBehavior::Succeed).await;
        w.store.failing_checks.store(u32::MAX, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        let worker = w.worker();
        let run = tokio::spawn(async move { worker.run(rx).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(true).unwrap();
        let stats = run.await.unwrap();
        assert_eq!(stats, LoopStats { requeued: 1, ..LoopStats::default() });
        assert_eq!(w.queue.depths(&[]).await.unwrap(), (1, 0), "the job is back in the queue");
        assert!(w.store.inner.executions(&w.run).await.unwrap().is_empty(), "it never started");
    }

    #[tokio::test]
    async fn nothing_is_acked_before_its_commit() {
        let (w, _) = World::new(1, 0, DiagnosticBehavior::Succeed).await;
        w.store.failing_commits.store(true, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        let worker = w.worker();
        let run = tokio::spawn(async move { worker.run(rx).await.unwrap() });
        // Eight commit attempts (about 0.3 s of backoff) end in a requeue.
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.store.calls().iter().filter(|c| **c == "commit").count() < 8 {
            assert!(Instant::now() < deadline, "the worker stopped committing: {:?}", w.store.calls());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tx.send(true).unwrap();
        let stats = run.await.unwrap();
        assert_eq!(stats.committed, 0);
        assert!(stats.requeued >= 1, "{stats:?}");
        let (ready, dead) = w.queue.depths(&[]).await.unwrap();
        assert_eq!((ready, dead), (1, 0), "the job stays with the queue: {stats:?}");
    }

    #[tokio::test]
    async fn a_second_run_of_a_done_job_is_refused_by_the_commit() {
        let (w, ids) = World::new(1, 0, DiagnosticBehavior::Succeed).await;
        w.store.inner.commit(&w.run, Stage::Diagnostic, &ids[0], b"first").await.unwrap();
        w.store.hide_done.store(true, Ordering::SeqCst);
        let stats = w.drain().await;
        assert_eq!(stats, LoopStats { duplicates: 1, ..LoopStats::default() });
        assert_eq!(w.store.inner.result(&w.run, &ids[0]).await.unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(w.queue.depths(&[]).await.unwrap(), (0, 0), "the duplicate is acked");
        assert_eq!(w.store.inner.executions(&w.run).await.unwrap().get(&ids[0]), Some(&1), "it ran, and that run was counted");
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_with_its_reason() {
        let (w, ids) = World::new(1, 0, DiagnosticBehavior::FailPermanently).await;
        let stats = w.drain().await;
        assert_eq!(stats, LoopStats { dead_lettered: 1, ..LoopStats::default() });
        let dead = w.queue.drain_dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("fails permanently"), "{}", dead[0].reason);
        assert_eq!(dead[0].job_id.as_deref(), Some(ids[0].as_str()));
        let failures = w.store.inner.failures(&w.run, Stage::Diagnostic).await.unwrap();
        assert!(failures[&ids[0]].contains("fails permanently"), "{failures:?}");
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_then_dead_lettered() {
        let (w, ids) = World::new(1, 0, DiagnosticBehavior::FailAlways).await;
        let stats = w.drain().await;
        let attempts = LoopOptions::default().max_attempts;
        assert_eq!(stats, LoopStats { requeued: u64::from(attempts) - 1, dead_lettered: 1, ..LoopStats::default() });
        let dead = w.queue.drain_dead_letters().await.unwrap();
        assert!(dead[0].reason.contains(&format!("failed on {attempts} of {attempts} attempts")), "{}", dead[0].reason);
        assert_eq!(w.store.inner.executions(&w.run).await.unwrap().get(&ids[0]), Some(&u64::from(attempts)));
    }

    #[tokio::test]
    async fn a_cancel_stops_the_job_in_flight() {
        let (w, ids) = World::new(1, 30_000, DiagnosticBehavior::Succeed).await;
        let (_tx, rx) = watch::channel(false);
        let worker = w.worker();
        let started = Instant::now();
        let run = tokio::spawn(async move { worker.run(rx).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        w.store.inner.set_state(&w.run, RunState::Cancelled).await.unwrap();
        let stats = run.await.unwrap();
        assert_eq!(stats, LoopStats { cancelled: 1, ..LoopStats::default() });
        assert!(started.elapsed() < Duration::from_secs(5), "stopped within about a poll period: {:?}", started.elapsed());
        assert_eq!(w.store.inner.result(&w.run, &ids[0]).await.unwrap(), None, "nothing committed");
        assert_eq!(w.queue.depths(&[]).await.unwrap(), (0, 0), "dropped");
    }
}
