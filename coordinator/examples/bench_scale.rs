//! Scale benchmark: a hub of `--models` models on `--datasets`
//! target datasets, planned, published and run to completion through the real
//! RabbitMQ and Redis by `--workers` simulated worker processes.
//!
//!     cargo run --release -p mll-coordinator --example bench_scale -- --models 1000 --datasets 100 --workers 2
//!
//! What is real: the planner's job shapes and ids (`plan::hub_jobs`: label
//! jobs over the graph's image shards, evaluate jobs over each dataset's
//! sample shards, `execution.shard_size` images each), `RunControl::submit`
//! (meta, expected sets, confirmed publishes), the worker loop
//! (`WorkerLoop`: delivery, run-state reads, commit, ack) in separate worker
//! processes with their own connections, and `RunControl::status`, read every
//! second while the run goes on, as `coordinator submit --wait` does.
//!
//! What is simulated: the datasets (the 17 target datasets' class counts and
//! test sizes, cycled; class names of 12 characters, 18 templates) and the
//! executors, which sleep `--work-ms` and commit a result of the real shape
//! and size (per-class counts; artifact references for probabilities and
//! labels, whose files are not written).
//!
//! Reported: plan time, submit time (register + publish) and publish rate,
//! jobs/s completed, Redis `used_memory` per finished job, `status` latency at
//! full size, the time to read every result back (aggregation's first step),
//! this (coordinator) process's peak RSS. Every run uses fresh
//! queue names and a fresh key prefix and deletes them at the end.
//!
//! `scripts/bench-scale` builds and runs this.

use anyhow::{bail, Context};
use clap::Parser;
use mll_common::artifact::{ArtifactRef, ArtifactStore};
use mll_common::config::Settings;
use mll_common::ids::sha256_hex;
use mll_common::output::{ClassCounts, EvaluateOutput, JobOutput, LabelOutput};
use mll_common::queue::amqp::AmqpQueue;
use mll_common::queue::JobQueue;
use mll_common::store::redis::RedisStore;
use mll_common::store::{Committer, Ledger, RunState};
use mll_common::{Job, JobPayload, RunId, Stage};
use mll_coordinator::control::{RunControl, Submission};
use mll_coordinator::plan::{self, GraphJobs, Plan, PlannedDataset};
use mll_coordinator::spec::{BenchmarkSpec, TargetDataset};
use mll_worker::consume::{Executors, LoopOptions, WorkerLoop};
use mll_worker::executor::{ExecContext, ExecError, Executor};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "A hub of --models × --datasets planned, published and run through RabbitMQ + Redis by simulated workers")]
struct Args {
    /// Hub models.
    #[arg(long, default_value_t = 1000)]
    models: usize,
    /// Target datasets (the 17 real sizes, cycled).
    #[arg(long, default_value_t = 100)]
    datasets: usize,
    /// Simulated worker processes, each with its own AMQP and Redis connections.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Images per job (`execution.shard_size`; the spec's default is 2000).
    #[arg(long, default_value_t = 2000)]
    shard_size: u64,
    /// Graph images each model labels (0: no label jobs).
    #[arg(long, default_value_t = 300_000)]
    graph_images: u64,
    /// What each simulated job sleeps, in milliseconds.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
    /// Stop after planning and submitting (no workers; the run is deleted).
    #[arg(long)]
    submit_only: bool,
    /// Give up when the run has not finished after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_s: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Internal: run as simulated worker number N (started by the benchmark itself).
    #[arg(long, hide = true)]
    worker_process: Option<usize>,
}

#[path = "support/targets.rs"]
mod targets;
use targets::DATASET_SHAPES;

const TEMPLATES: usize = 18;

/// The simulated executor: the real result shape and size, no model.
struct SimExecutor {
    work: Duration,
}

fn fake_ref(job: &Job, what: &str, size: u64) -> ArtifactRef {
    ArtifactRef { sha256: sha256_hex(format!("{}:{what}", job.id).as_bytes()), size }
}

impl Executor for SimExecutor {
    fn execute(&self, job: &Job, _ctx: &ExecContext) -> Result<JobOutput, ExecError> {
        std::thread::sleep(self.work);
        Ok(match &job.payload {
            JobPayload::Evaluate(e) => {
                let (classes, images) = (e.classnames.len(), e.shard.end - e.shard.start);
                let mut counts = ClassCounts::zeros(classes);
                for i in 0..images {
                    let c = (i as usize * 7 + e.shard.start as usize) % classes;
                    counts.n[c] += 1;
                    counts.top5[c] += u64::from(i % 10 != 0);
                    counts.top1[c] += u64::from(i % 10 > 3);
                }
                let probabilities = e.keep_probabilities.then(|| fake_ref(job, "probs", images * (classes as u64 * 4 + 16)));
                JobOutput::Evaluate(EvaluateOutput { counts, protocol: e.protocol.as_str().into(), probabilities, images })
            }
            JobPayload::Label(l) => {
                let images = l.shard.end - l.shard.start;
                JobOutput::Label(LabelOutput {
                    images: fake_ref(job, "images", images * (768 * 4 + 8 + 32 * 4)),
                    node_texts: l.encode_node_texts.then(|| fake_ref(job, "node_texts", 9000 * 768 * 4)),
                    count: images,
                })
            }
            _ => return Err(ExecError::permanent(format!("the scale benchmark runs no {} jobs", job.stage()))),
        })
    }
}

/// The spec text of the simulated hub (what `submit` saves).
fn spec_text(args: &Args, run: &RunId) -> String {
    let mut t = format!("name = \"{run}\"\n[execution]\nshard_size = {}\n", args.shard_size);
    if args.graph_images > 0 {
        t.push_str("[graph]\npath = \"graph.json\"\n");
    }
    for m in 0..args.models {
        t.push_str(&format!("[[hub]]\nkey = \"sim/model-{m:04}\"\nartifact = \"models/sim/model-{m:04}\"\n"));
    }
    for d in 0..args.datasets {
        t.push_str(&format!("[[datasets]]\nname = \"sim-{d:03}\"\nformat = \"webdataset\"\npath = \"datasets/sim-{d:03}\"\n"));
    }
    t
}

fn planned_dataset(spec: &TargetDataset, index: usize) -> PlannedDataset {
    let (classes, samples) = DATASET_SHAPES[index % DATASET_SHAPES.len()];
    let classnames: Vec<String> = (0..classes).map(|c| format!("class {c:06}")).collect();
    let templates: Vec<String> = (0..TEMPLATES).map(|t| format!("a photo of the {{c}}, template {t:02}.")).collect();
    PlannedDataset { spec: spec.clone(), prompt_names: classnames.clone(), classnames, templates, samples, caption_fallbacks: Vec::new() }
}

/// This process's resident memory now and at its peak, in MiB (Linux).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn redis_used_memory(url: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url).context("the store URL")?;
    let mut c = client.get_multiplexed_async_connection().await.context("connecting to Redis for INFO")?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).context("INFO memory has no used_memory")
}

fn settings_for(tag: &str) -> anyhow::Result<(Settings, HashMap<String, String>)> {
    let mut env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("MLL__")).collect();
    for (k, v) in mll_common::config::isolated_env(tag) {
        env.insert(k.to_string(), v);
    }
    Ok((Settings::load_with_env(None, Some(env.clone()))?, env))
}

/// A simulated worker process: the real worker loop until SIGTERM.
async fn worker_process(index: usize, args: &Args) -> anyhow::Result<()> {
    let settings = Settings::load_with_env(None, None)?;
    let queue: Arc<dyn JobQueue> = Arc::new(AmqpQueue::connect(&settings.broker).await?);
    let store: Arc<dyn Ledger> = Arc::new(RedisStore::connect(&settings.store).await?);
    let dir = tempfile::tempdir()?;
    let ctx = ExecContext::new(ArtifactStore::new(dir.path().join("artifacts")), dir.path().to_path_buf());
    let w = &settings.worker;
    let opts = LoopOptions {
        consumer_tag: format!("bench-scale-worker-{index}"),
        max_message_bytes: settings.broker.max_message_bytes,
        job_timeout: Duration::from_secs(w.job_timeout_s),
        max_attempts: w.max_attempts,
        retry_backoff: Duration::from_millis(w.retry_backoff_ms),
        shutdown_grace: Duration::from_secs(5),
        exit_when_idle: None,
        ..LoopOptions::default()
    };
    let sim: Arc<dyn Executor> = Arc::new(SimExecutor { work: Duration::from_millis(args.work_ms) });
    let executors = Executors::default().with(Stage::Label, sim.clone()).with(Stage::Evaluate, sim);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let wl = WorkerLoop { queue, store, executors, ctx, opts };
    let handle = tokio::spawn(async move { wl.run(stop_rx).await });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    term.recv().await;
    let _ = stop.send(true);
    let stats = handle.await??;
    eprintln!("bench-scale worker {index}: {stats:?}");
    Ok(())
}

#[derive(Debug, Serialize)]
struct Report {
    models: usize,
    datasets: usize,
    workers: usize,
    shard_size: u64,
    jobs: usize,
    label_jobs: usize,
    evaluate_jobs: usize,
    mean_message_bytes: f64,
    plan_s: f64,
    submit_s: f64,
    publish_jobs_per_s: f64,
    run_s: Option<f64>,
    completed_jobs_per_s: Option<f64>,
    redis_bytes_registered_per_job: f64,
    redis_bytes_per_finished_job: Option<f64>,
    status_ms_p50: Option<f64>,
    status_ms_max: Option<f64>,
    status_ms_while_running_max: Option<f64>,
    /// Every result read back from Redis and checked (aggregation's first step).
    results_load_s: Option<f64>,
    /// The same results read with one GET per job (the read before batches).
    results_one_get_per_job_s: Option<f64>,
    /// Before planning: the binary and its libraries (this example links
    /// libtorch through the worker crate; the cluster's coordinator does not).
    rss_at_start_mib: f64,
    coordinator_peak_rss_mib: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn bench(args: &Args, tag: &str, settings: &Settings, env: &HashMap<String, String>, control: &RunControl) -> anyhow::Result<Report> {
    let run = RunId::new("scale-bench").map_err(anyhow::Error::msg)?;
    let rss_at_start_mib = rss_mib().0;
    let text = spec_text(args, &run);
    let spec = BenchmarkSpec::from_toml(&text, "bench_scale (generated)")?;

    // Plan: the jobs as the planner makes them (datasets and graph simulated).
    let t = Instant::now();
    let datasets: Vec<PlannedDataset> = spec.datasets.iter().enumerate().map(|(i, d)| planned_dataset(d, i)).collect();
    let graph = (args.graph_images > 0).then(|| GraphJobs { images: args.graph_images, digest: sha256_hex(b"simulated graph") });
    let jobs = plan::hub_jobs(&run, &spec, graph.as_ref(), &datasets);
    let plan = Plan {
        run: run.clone(),
        spec: spec.clone(),
        data_root: std::env::temp_dir(),
        datasets,
        graph_node_ids: Vec::new(),
        graph_node_names: Vec::new(),
        graph_nodes: 9000,
        graph_images: args.graph_images,
        graph_construction: None,
        texts: Default::default(),
        jobs,
    };
    let plan_s = t.elapsed().as_secs_f64();
    let n = plan.jobs.len();
    let count = |s: Stage| plan.jobs_of(s).count();
    let (label_jobs, evaluate_jobs) = (count(Stage::Label), count(Stage::Evaluate));
    let mut message_bytes = 0usize;
    for j in &plan.jobs {
        message_bytes += mll_common::wire::encode(j)?.len();
    }
    let mean_message_bytes = message_bytes as f64 / n.max(1) as f64;
    println!(
        "plan: {n} jobs ({label_jobs} label, {evaluate_jobs} evaluate; {:.0} B per message on average) in {plan_s:.2} s; RSS {:.0} MiB",
        mean_message_bytes,
        rss_mib().0
    );

    // Workers start first, as a cluster's would be waiting.
    let mut children = Vec::new();
    if !args.submit_only {
        let exe = std::env::current_exe()?;
        for i in 0..args.workers {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["--worker-process", &i.to_string(), "--work-ms", &args.work_ms.to_string()]).envs(env);
            children.push(cmd.spawn().context("starting a simulated worker process")?);
        }
    }
    let result = async {
        let before = redis_used_memory(&settings.store.url).await?;
        let t = Instant::now();
        let submission = Submission { spec_text: text.clone(), spec_path: std::env::temp_dir().join(format!("{tag}.toml")) };
        let published = control.submit(&plan, &submission, false).await.context("submitting the simulated run")?;
        let submit_s = t.elapsed().as_secs_f64();
        if published != n {
            bail!("submit published {published} jobs, the plan has {n}");
        }
        let registered = redis_used_memory(&settings.store.url).await?;
        println!(
            "submit: registered and published {n} jobs in {submit_s:.2} s ({:.0} jobs/s); Redis +{:.0} B per registered job; RSS {:.0} MiB",
            n as f64 / submit_s,
            (registered as f64 - before as f64) / n as f64,
            rss_mib().0
        );
        let mut report = Report {
            models: args.models,
            datasets: args.datasets,
            workers: args.workers,
            shard_size: args.shard_size,
            jobs: n,
            label_jobs,
            evaluate_jobs,
            mean_message_bytes,
            plan_s,
            submit_s,
            publish_jobs_per_s: n as f64 / submit_s,
            run_s: None,
            completed_jobs_per_s: None,
            redis_bytes_registered_per_job: (registered as f64 - before as f64) / n as f64,
            redis_bytes_per_finished_job: None,
            status_ms_p50: None,
            status_ms_max: None,
            status_ms_while_running_max: None,
            results_load_s: None,
            results_one_get_per_job_s: None,
            rss_at_start_mib,
            coordinator_peak_rss_mib: f64::NAN,
        };
        if args.submit_only {
            return Ok(report);
        }
        // Watch it as `--wait` does: status every second.
        let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
        let mut running_max = 0.0f64;
        let mut last_print = Instant::now();
        loop {
            let s0 = Instant::now();
            let status = control.status(&run).await?;
            running_max = running_max.max(s0.elapsed().as_secs_f64() * 1000.0);
            let done: u64 = status.stages.values().map(|p| p.done + p.failed).sum();
            if status.state != RunState::Running {
                if status.state != RunState::Done {
                    bail!("the simulated run ended in state '{}': {:?}", status.state, status.failures.first());
                }
                break;
            }
            if last_print.elapsed() > Duration::from_secs(10) {
                last_print = Instant::now();
                println!("  {done}/{n} done after {:.0} s", t.elapsed().as_secs_f64());
            }
            if Instant::now() > deadline {
                bail!("only {done} of {n} jobs done after {} s (--timeout-s)", args.timeout_s);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let run_s = t.elapsed().as_secs_f64();
        let finished = redis_used_memory(&settings.store.url).await?;
        let mut lat = Vec::new();
        for _ in 0..20 {
            let s0 = Instant::now();
            control.status(&run).await?;
            lat.push(s0.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(f64::total_cmp);
        report.run_s = Some(run_s);
        report.completed_jobs_per_s = Some(n as f64 / run_s);
        report.redis_bytes_per_finished_job = Some((finished as f64 - before as f64) / n as f64);
        report.status_ms_p50 = Some(percentile(&lat, 50.0));
        report.status_ms_max = Some(percentile(&lat, 100.0));
        report.status_ms_while_running_max = Some(running_max);
        // The report's first step: every result read back and checked against its job.
        let t = Instant::now();
        let outputs = mll_coordinator::aggregate::Outputs::load(control, &plan).await?;
        let load_s = t.elapsed().as_secs_f64();
        if outputs.by_job.len() != n {
            bail!("{} of {n} results read back", outputs.by_job.len());
        }
        // What that read cost before batching: one GET per job.
        let t = Instant::now();
        for j in &plan.jobs {
            control.store.result(&run, &j.id).await?.context("a result disappeared")?;
        }
        let one_by_one_s = t.elapsed().as_secs_f64();
        println!(
            "results read back and checked: {n} in {load_s:.2} s (one GET per job instead: {one_by_one_s:.2} s); RSS {:.0} MiB",
            rss_mib().0
        );
        report.results_load_s = Some(load_s);
        report.results_one_get_per_job_s = Some(one_by_one_s);
        Ok(report)
    }
    .await;
    for mut c in children {
        // SIGTERM: the worker loop's own shutdown path.
        let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let _ = c.wait();
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(i) = args.worker_process {
        return worker_process(i, &args).await;
    }
    if args.models == 0 || args.workers == 0 {
        bail!("--models and --workers must be at least 1");
    }
    let tag = format!("bench-scale-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let (settings, env) = settings_for(&tag)?;
    let amqp = Arc::new(AmqpQueue::connect(&settings.broker).await?);
    let redis = RedisStore::connect(&settings.store).await?;
    let dir = tempfile::tempdir()?;
    let control = RunControl {
        queue: amqp.clone(),
        store: Arc::new(redis.clone()),
        artifacts: ArtifactStore::new(dir.path().join("artifacts")),
        publish_batch: settings.coordinator.publish_batch,
    };
    let outcome = bench(&args, &tag, &settings, &env, &control).await;
    // Tear down whatever happened: the queues and the run's keys.
    let mut cleanup = Vec::new();
    let lanes: Vec<_> = redis.lanes().await.unwrap_or_default().into_iter().map(|(l, _)| l).collect();
    if let Err(e) = amqp.delete_topology(&lanes).await {
        cleanup.push(format!("deleting queues {tag}.*: {e}"));
    }
    if let Err(e) = redis.delete_run(&RunId::new("scale-bench").map_err(anyhow::Error::msg)?).await {
        cleanup.push(format!("deleting keys {tag}:*: {e}"));
    }
    let mut report = outcome?;
    report.coordinator_peak_rss_mib = rss_mib().1;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if !cleanup.is_empty() {
        bail!("the benchmark finished but cleaning up failed: {}", cleanup.join("; "));
    }
    Ok(())
}
