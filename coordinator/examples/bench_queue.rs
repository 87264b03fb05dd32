//! Queue-path benchmark (docs/benchmarks.md, "Queue path"): no-op diagnostic
//! jobs end to end — publish (with confirms), execute, commit to Redis, ack — on the real
//! RabbitMQ and Redis, with W workers.
//!
//!     cargo run --release -p mll-coordinator --example bench_queue -- --jobs 2000 --workers 2
//!
//! What runs: the coordinator's own `plan` + `RunControl::submit` (meta, the
//! expected set, then publishes in confirm batches of `coordinator.publish_batch`)
//! and W `WorkerLoop`s, each a tokio task with its own AMQP connection and its
//! own Redis connection (as W worker processes would have), all in this process.
//! Every run uses fresh queue names and a fresh key prefix and deletes them at
//! the end, so it never touches a real run.
//!
//! Timing: the queue and the store are wrapped in decorators. A job's publish
//! time is the start of the `publish` call of its batch (so a job late in a
//! batch is charged the whole batch); its commit time is when the store's
//! atomic commit returned (the ack follows right after). Throughput = N / (last
//! commit − first publish). A second, unloaded phase sends one job at a time
//! and waits for its commit, which gives the latency of the path itself rather
//! than of the backlog.
//!
//! `--prefetch N` sets the workers' prefetch (broker.prefetch, 1 by default):
//! how many unacked deliveries the broker lets a worker hold. The worker still
//! runs one job at a time and acks each only after its commit; a second
//! delivery in hand only saves the wait for the next one after an ack.
//!
//! `--floor` measures what lies under the path instead, with no worker loop:
//! the broker's receive+ack cycle at the given prefetch and the Redis round
//! trips a job needs (docs/benchmarks.md quotes both).
//!
//! `scripts/bench-queue` runs this beside the same workload through Celery.

use anyhow::{bail, Context};
use async_trait::async_trait;
use clap::Parser;
use mll_common::artifact::ArtifactStore;
use mll_common::config::Settings;
use mll_common::job::{DiagnosticBehavior, DiagnosticJob};
use mll_common::queue::amqp::AmqpQueue;
use mll_common::queue::{Consumer, DeadLettered, JobQueue, Lane, LaneLoad, Outgoing, QueueError};
use mll_common::store::redis::RedisStore;
use mll_common::store::{CommitOutcome, Committer, JobCheck, Ledger, RunMeta, RunState, StoreError};
use mll_common::{Job, JobId, JobPayload, RunId, Stage};
use mll_coordinator::control::{RunControl, Submission};
use mll_coordinator::plan;
use mll_coordinator::spec::BenchmarkSpec;
use mll_worker::consume::{Executors, LoopOptions, LoopStats, WorkerLoop};
use mll_worker::executor::ExecContext;
use mll_worker::executors::diagnostic::DiagnosticExecutor;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Parser, Debug)]
#[command(about = "No-op jobs end to end through RabbitMQ + Redis: throughput and latency")]
struct Args {
    /// Jobs in the measured (throughput) phase.
    #[arg(long, default_value_t = 2000)]
    jobs: u32,
    /// Worker loops, each with its own AMQP and Redis connections.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Jobs of the unloaded-latency phase (one in flight at a time); 0 skips it.
    #[arg(long, default_value_t = 200)]
    latency_jobs: u32,
    /// Jobs run before measuring, to open connections and warm caches.
    #[arg(long, default_value_t = 50)]
    warmup_jobs: u32,
    /// Give up when a phase has not finished after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// The workers' prefetch (unacked deliveries a worker holds; jobs still
    /// run one at a time). Default: broker.prefetch of the configuration (1).
    #[arg(long)]
    prefetch: Option<u16>,
    /// Instead of the benchmark, measure the floor under it with one
    /// connection each and no worker loop: the broker's consume+ack cycle
    /// (--jobs messages published first, then received and acked one at a
    /// time at --prefetch) and the Redis round trips of the worker's
    /// pre-execution read, its execution count and its commit.
    #[arg(long)]
    floor: bool,
    /// Also write the results as JSON here (read by scripts/bench-queue).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One commit as seen by the timing store.
struct CommitEvent {
    run: RunId,
    job: JobId,
    at: Instant,
}

/// The real store, plus a timestamp per first commit.
struct TimingStore {
    inner: Arc<dyn Committer>,
    tx: mpsc::UnboundedSender<CommitEvent>,
}

#[async_trait]
impl Committer for TimingStore {
    async fn meta(&self, run: &RunId) -> Result<Option<RunMeta>, StoreError> {
        self.inner.meta(run).await
    }
    async fn commit(&self, run: &RunId, stage: Stage, job: &JobId, result: &[u8]) -> Result<CommitOutcome, StoreError> {
        let out = self.inner.commit(run, stage, job, result).await?;
        if out == CommitOutcome::Committed {
            // The receiver outlives every worker; a send error only means the
            // benchmark is already tearing down.
            let _ = self.tx.send(CommitEvent { run: run.clone(), job: job.clone(), at: Instant::now() });
        }
        Ok(out)
    }
    async fn check_job(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<JobCheck, StoreError> {
        self.inner.check_job(run, stage, job).await
    }
    async fn record_failure(&self, run: &RunId, stage: Stage, job: &JobId, reason: &str) -> Result<(), StoreError> {
        self.inner.record_failure(run, stage, job, reason).await
    }
    async fn count_execution(&self, run: &RunId, job: &JobId) -> Result<u64, StoreError> {
        self.inner.count_execution(run, job).await
    }
    async fn lanes(&self) -> Result<Vec<(Lane, String)>, StoreError> {
        self.inner.lanes().await
    }
}

/// The real queue, plus the start time of the publish call that carried each job.
struct TimingQueue {
    inner: Arc<AmqpQueue>,
    published: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl JobQueue for TimingQueue {
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        let at = Instant::now();
        {
            let mut p = self.published.lock().expect("publish-time map poisoned");
            for m in messages {
                p.entry(m.job_id.clone()).or_insert(at);
            }
        }
        self.inner.publish(messages).await
    }
    async fn consumer(&self, tag: &str) -> Result<Box<dyn Consumer>, QueueError> {
        self.inner.consumer(tag).await
    }
    async fn drain_dead_letters(&self) -> Result<Vec<DeadLettered>, QueueError> {
        self.inner.drain_dead_letters().await
    }
    async fn depths(&self, lanes: &[Lane]) -> Result<(u64, u64), QueueError> {
        self.inner.depths(lanes).await
    }
    async fn lane_loads(&self, lanes: &[Lane]) -> Result<Vec<LaneLoad>, QueueError> {
        self.inner.lane_loads(lanes).await
    }
}

#[derive(Debug, Serialize)]
struct Report {
    system: &'static str,
    workers: usize,
    prefetch: u16,
    jobs: u32,
    publish: String,
    seconds: f64,
    jobs_per_s: f64,
    load_p50_ms: f64,
    load_p99_ms: f64,
    latency_jobs: u32,
    unloaded_p50_ms: Option<f64>,
    unloaded_p99_ms: Option<f64>,
    per_worker_committed: Vec<u64>,
    duplicate_executions: u64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits until every job in `want` of `run` has a commit event; returns their times.
async fn wait_commits(
    rx: &mut mpsc::UnboundedReceiver<CommitEvent>,
    run: &RunId,
    want: &HashSet<JobId>,
    deadline: Instant,
    phase: &str,
) -> anyhow::Result<HashMap<JobId, Instant>> {
    let mut got = HashMap::with_capacity(want.len());
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(ev)) => {
                if &ev.run == run && want.contains(&ev.job) {
                    got.entry(ev.job).or_insert(ev.at);
                }
            }
            Ok(None) => bail!("{phase}: every worker stopped before all jobs were committed ({} of {})", got.len(), want.len()),
            Err(_) => bail!(
                "{phase}: only {} of {} jobs were committed before the deadline (--timeout-s); are the workers \
                 consuming? check RabbitMQ and Redis on the configured URLs",
                got.len(),
                want.len()
            ),
        }
    }
    Ok(got)
}

fn diagnostic_job(run: &RunId, index: u32) -> anyhow::Result<(JobId, Outgoing)> {
    // Each phase has a run of its own; workers refuse a job whose id is not
    // its payload's, so the id is derived as the planner derives it.
    let job = Job::new(run.clone(), JobPayload::Diagnostic(DiagnosticJob { index, work_ms: 0, behavior: DiagnosticBehavior::Succeed }));
    let id = job.id.clone();
    Ok((id.clone(), Outgoing::for_job(&job)?))
}

struct Bench {
    args: Args,
    settings: Settings,
    queue: Arc<TimingQueue>,
    store: Arc<TimingStore>,
    redis: RedisStore,
    dir: tempfile::TempDir,
}

struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<anyhow::Result<LoopStats>>>,
}

impl Bench {
    async fn start_workers(&self) -> anyhow::Result<Workers> {
        let (stop, stop_rx) = watch::channel(false);
        let mut handles = Vec::new();
        for i in 0..self.args.workers {
            // Own connections per worker, like separate worker processes.
            let queue: Arc<dyn JobQueue> = Arc::new(AmqpQueue::connect(&self.settings.broker).await?);
            let store: Arc<dyn Committer> =
                Arc::new(TimingStore { inner: Arc::new(RedisStore::connect(&self.settings.store).await?), tx: self.store.tx.clone() });
            let ctx = ExecContext::new(ArtifactStore::new(self.dir.path().join("artifacts")), self.dir.path().to_path_buf());
            let w = &self.settings.worker;
            let opts = LoopOptions {
                consumer_tag: format!("bench-worker-{i}"),
                max_message_bytes: self.settings.broker.max_message_bytes,
                job_timeout: Duration::from_secs(w.job_timeout_s),
                max_attempts: w.max_attempts,
                retry_backoff: Duration::from_millis(w.retry_backoff_ms),
                shutdown_grace: Duration::from_secs(5),
                exit_when_idle: None,
                ..LoopOptions::default()
            };
            let executors = Executors::default().with(Stage::Diagnostic, Arc::new(DiagnosticExecutor));
            let wl = WorkerLoop { queue, store, executors, ctx, opts };
            let rx = stop_rx.clone();
            handles.push(tokio::spawn(async move { wl.run(rx).await }));
        }
        Ok(Workers { stop, handles })
    }

    /// Makes `run` known to the store as running (what `submit` does first).
    async fn register(&self, run: &RunId) -> anyhow::Result<()> {
        self.redis.put_meta(run, &RunMeta { state: RunState::Running, spec_digest: String::new() }).await?;
        Ok(())
    }

    /// Publishes `count` jobs of `run` in one confirmed batch and waits for them.
    async fn warm_up(&self, rx: &mut mpsc::UnboundedReceiver<CommitEvent>, run: &RunId, count: u32) -> anyhow::Result<()> {
        // Workers refuse the jobs of a run the store does not know.
        self.register(run).await?;
        let mut want = HashSet::new();
        let mut out = Vec::new();
        for i in 0..count {
            let (id, m) = diagnostic_job(run, i)?;
            want.insert(id);
            out.push(m);
        }
        self.queue.inner.publish(&out).await?;
        wait_commits(rx, run, &want, Instant::now() + Duration::from_secs(self.args.timeout_s), "warm-up").await?;
        Ok(())
    }

    /// The measured phase through the coordinator's own submit path.
    async fn throughput(&self, rx: &mut mpsc::UnboundedReceiver<CommitEvent>, run: &RunId) -> anyhow::Result<(f64, Vec<f64>)> {
        let toml = format!("name = \"{run}\"\n[diagnostic]\njobs = {}\nwork_ms = 0\n", self.args.jobs);
        let spec = BenchmarkSpec::from_toml(&toml, "bench_queue (generated)")?;
        let plan = plan::plan(&spec, self.dir.path())?;
        let want: HashSet<JobId> = plan.jobs.iter().map(|j| j.id.clone()).collect();
        let control = RunControl {
            queue: self.queue.clone(),
            // The coordinator's side needs no timing: the real store.
            store: Arc::new(self.redis.clone()),
            artifacts: ArtifactStore::new(self.dir.path().join("artifacts")),
            publish_batch: self.settings.coordinator.publish_batch,
        };
        let submission = Submission { spec_text: toml.clone(), spec_path: self.dir.path().join("bench.toml") };
        let published = control.submit(&plan, &submission, false).await.context("submitting the benchmark run")?;
        if published != want.len() {
            bail!("submit published {published} jobs, the plan has {}", want.len());
        }
        let deadline = Instant::now() + Duration::from_secs(self.args.timeout_s);
        let commits = wait_commits(rx, run, &want, deadline, "throughput phase").await?;
        let pubs = self.queue.published.lock().expect("publish-time map poisoned").clone();
        let first = want.iter().map(|id| pubs[id.as_str()]).min().context("no job was published")?;
        let last = *commits.values().max().context("no job was committed")?;
        let mut lat: Vec<f64> = want.iter().map(|id| ms(commits[id].saturating_duration_since(pubs[id.as_str()]))).collect();
        lat.sort_by(f64::total_cmp);
        Ok(((last - first).as_secs_f64(), lat))
    }

    /// One job in flight at a time: publish, wait for its commit, next.
    async fn unloaded(&self, rx: &mut mpsc::UnboundedReceiver<CommitEvent>, run: &RunId) -> anyhow::Result<Vec<f64>> {
        self.register(run).await?;
        let mut lat = Vec::new();
        for i in 0..self.args.latency_jobs {
            let (id, m) = diagnostic_job(run, i)?;
            let t = Instant::now();
            self.queue.inner.publish(std::slice::from_ref(&m)).await?;
            let want = HashSet::from([id.clone()]);
            let got = wait_commits(rx, run, &want, Instant::now() + Duration::from_secs(30), "latency phase").await?;
            lat.push(ms(got[&id] - t));
        }
        lat.sort_by(f64::total_cmp);
        Ok(lat)
    }
}

async fn stop_workers(w: Workers) -> anyhow::Result<Vec<LoopStats>> {
    let _ = w.stop.send(true);
    let mut stats = Vec::new();
    for h in w.handles {
        match tokio::time::timeout(Duration::from_secs(15), h).await {
            Ok(Ok(Ok(s))) => stats.push(s),
            Ok(Ok(Err(e))) => bail!("a worker loop failed: {e:#}"),
            Ok(Err(e)) => bail!("a worker task panicked: {e}"),
            Err(_) => bail!("a worker loop did not stop within 15 s of the shutdown signal"),
        }
    }
    Ok(stats)
}

/// Microseconds per item of `n` items done in `d`.
fn us_each(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1e6 / f64::from(n)
}

/// `--floor`: what the queue path costs below the worker loop.
async fn floor(settings: &Settings, n: u32) -> anyhow::Result<()> {
    let store = RedisStore::connect(&settings.store).await?;
    let run = RunId::new("queue-floor").map_err(anyhow::Error::msg)?;
    let ids: Vec<JobId> = (0..n).map(|i| JobId::derive(&run, &["floor", &i.to_string()])).collect();
    let result = [7u8; 64];
    let redis = async {
        let t = Instant::now();
        for id in &ids {
            store.check_job(&run, Stage::Diagnostic, id).await?;
        }
        let check = t.elapsed();
        let t = Instant::now();
        for id in &ids {
            store.count_execution(&run, id).await?;
        }
        let count = t.elapsed();
        let t = Instant::now();
        for id in &ids {
            store.commit(&run, Stage::Diagnostic, id, &result).await?;
        }
        anyhow::Ok((check, count, t.elapsed()))
    }
    .await;
    store.delete_run(&run).await?;
    let (check, count, commit) = redis?;
    println!(
        "floor: Redis round trips, one at a time ({n} each): check_job {:.0} us, count_execution {:.0} us, commit {:.0} us",
        us_each(check, n),
        us_each(count, n),
        us_each(commit, n)
    );

    let queue = AmqpQueue::connect(&settings.broker).await?;
    let amqp = async {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(diagnostic_job(&run, i)?.1);
        }
        let t = Instant::now();
        for chunk in out.chunks(settings.coordinator.publish_batch.max(1)) {
            queue.publish(chunk).await?;
        }
        let published = t.elapsed();
        let mut consumer = queue.consumer("bench-floor").await?;
        let t = Instant::now();
        for _ in 0..n {
            let d = consumer.next().await.context("the consumer closed")??;
            if !d.ack().await? {
                bail!("an ack was not taken");
            }
        }
        let acked = t.elapsed();
        consumer.cancel().await?;
        anyhow::Ok((published, acked))
    }
    .await;
    let deleted = queue.delete_topology(&[]).await;
    let (published, acked) = amqp?;
    deleted?;
    println!(
        "floor: broker, {n} messages: publish {:.0} us each (confirmed batches of {}); receive + ack one at a time at \
         prefetch {}: {:.0} us each ({:.0} per second)",
        us_each(published, n),
        settings.coordinator.publish_batch,
        settings.broker.prefetch,
        us_each(acked, n),
        f64::from(n) / acked.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.workers == 0 || args.jobs == 0 {
        bail!("--workers and --jobs must be at least 1");
    }
    // Fresh names per run; the broker and store URLs still come from the usual
    // config layers (configs/default.toml, MLL__BROKER__URL, MLL__STORE__URL).
    let tag = format!("bench-q-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let mut env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("MLL__")).collect();
    for (k, v) in mll_common::config::isolated_env(&tag) {
        env.insert(k.to_string(), v);
    }
    if let Some(p) = args.prefetch {
        env.insert("MLL__BROKER__PREFETCH".to_string(), p.to_string());
        // A held delivery waits up to the job timeout behind the one in hand:
        // the configuration requires prefetch × job_timeout_s below RabbitMQ's
        // consumer_timeout (no-op jobs need far less).
        env.entry("MLL__WORKER__JOB_TIMEOUT_S".to_string())
            .or_insert_with(|| ((mll_common::config::RABBITMQ_CONSUMER_TIMEOUT_S - 1) / u64::from(p.max(1))).min(1500).to_string());
    }
    let settings = Settings::load_with_env(None, Some(env))?;
    if args.floor {
        return floor(&settings, args.jobs).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let amqp = Arc::new(AmqpQueue::connect(&settings.broker).await?);
    let redis = RedisStore::connect(&settings.store).await?;
    let bench = Bench {
        queue: Arc::new(TimingQueue { inner: amqp.clone(), published: Mutex::new(HashMap::new()) }),
        store: Arc::new(TimingStore { inner: Arc::new(redis.clone()), tx }),
        redis,
        dir: tempfile::tempdir().context("creating a temporary folder")?,
        settings,
        args,
    };
    let runs = [
        RunId::new("queue-bench-warmup").map_err(anyhow::Error::msg)?,
        RunId::new("queue-bench").map_err(anyhow::Error::msg)?,
        RunId::new("queue-bench-latency").map_err(anyhow::Error::msg)?,
    ];

    let workers = bench.start_workers().await?;
    let outcome = async {
        bench.warm_up(&mut rx, &runs[0], bench.args.warmup_jobs.max(bench.args.workers as u32)).await?;
        let (seconds, load) = bench.throughput(&mut rx, &runs[1]).await?;
        let unloaded = if bench.args.latency_jobs > 0 { Some(bench.unloaded(&mut rx, &runs[2]).await?) } else { None };
        let status = RunControl {
            queue: bench.queue.clone(),
            store: Arc::new(bench.redis.clone()),
            artifacts: ArtifactStore::new(bench.dir.path().join("artifacts")),
            publish_batch: 1,
        }
        .status(&runs[1])
        .await?;
        if status.state != RunState::Done {
            bail!("the benchmark run ended in state '{}', expected 'done': {status:?}", status.state);
        }
        anyhow::Ok((seconds, load, unloaded, status.duplicate_executions))
    }
    .await;

    // Tear down whatever happened: workers first (a live consumer would
    // re-declare the deleted queues), then the queues and the keys.
    let stats = stop_workers(workers).await;
    let mut cleanup_errors = Vec::new();
    if let Err(e) = amqp.delete_topology(&[]).await {
        cleanup_errors.push(format!("deleting queues {tag}.*: {e}"));
    }
    for run in &runs {
        if let Err(e) = bench.redis.delete_run(run).await {
            cleanup_errors.push(format!("deleting Redis keys {tag}:{{{run}}}:*: {e}"));
        }
    }
    for e in &cleanup_errors {
        eprintln!("bench_queue: clean-up failed: {e}");
    }
    let (seconds, load, unloaded, duplicate_executions) = outcome?;
    let stats = stats?;

    let a = &bench.args;
    let report = Report {
        system: "mll",
        workers: a.workers,
        prefetch: bench.settings.broker.prefetch,
        jobs: a.jobs,
        publish: format!("RunControl::submit, confirmed batches of {}", bench.settings.coordinator.publish_batch),
        seconds,
        jobs_per_s: a.jobs as f64 / seconds,
        load_p50_ms: percentile(&load, 50.0),
        load_p99_ms: percentile(&load, 99.0),
        latency_jobs: a.latency_jobs,
        unloaded_p50_ms: unloaded.as_ref().map(|l| percentile(l, 50.0)),
        unloaded_p99_ms: unloaded.as_ref().map(|l| percentile(l, 99.0)),
        per_worker_committed: stats.iter().map(|s| s.committed).collect(),
        duplicate_executions,
    };
    println!(
        "mll: {} no-op jobs, {} worker(s), prefetch {}: {:.0} jobs/s ({:.2} s first publish -> last commit); \
         publish->commit p50 {:.1} ms p99 {:.1} ms under load",
        report.jobs, report.workers, report.prefetch, report.jobs_per_s, report.seconds, report.load_p50_ms, report.load_p99_ms
    );
    if let (Some(p50), Some(p99)) = (report.unloaded_p50_ms, report.unloaded_p99_ms) {
        println!("mll: one job in flight ({} jobs): publish->commit p50 {p50:.2} ms p99 {p99:.2} ms", a.latency_jobs);
    }
    println!(
        "mll: commits per worker {:?} (warm-up and latency jobs included), duplicate executions {}",
        report.per_worker_committed, report.duplicate_executions
    );
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing the JSON report to {}", path.display()))?;
    }
    if !cleanup_errors.is_empty() {
        bail!("the benchmark ran but clean-up failed (see above); delete the queues and keys named there by hand");
    }
    Ok(())
}
