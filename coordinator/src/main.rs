//! `coordinator`: plans MLL evaluation-cluster runs, drives them and reports.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use mll_common::artifact::ArtifactStore;
use mll_common::config::Settings;
use mll_common::queue::amqp::AmqpQueue;
use crate::spec::BenchmarkSpec;
use mll_common::store::redis::RedisStore;
use mll_common::{JobId, RunId};
use mll_coordinator::control::{read_submission, RunControl, RunStatus, Submission};
use mll_coordinator::drive::{self, DriveOptions};
use mll_coordinator::plan;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ABOUT: &str = "Plans, drives and reports MLL evaluation-cluster runs.";
const LONG_ABOUT: &str = "Plans, drives and reports MLL evaluation-cluster runs.

A run is a benchmark spec (configs/benchmarks/*.toml): a hub of models, target datasets, a semantic
graph and method options. The coordinator plans it into jobs with deterministic ids (embed, label,
evaluate), publishes them to RabbitMQ, and workers commit results to Redis exactly once. With --wait
it follows progress, records dead-lettered jobs, and writes the report: ground-truth rankings, MLL
selections, reuse ensembles, baselines and selection metrics.

Typical use:
  coordinator run --local --benchmark configs/benchmarks/toy.toml     # everything in one process
  coordinator submit --benchmark configs/benchmarks/mll-49x17.toml --wait --out out/mll
  coordinator status mll-49x17 --json
  coordinator resume mll-49x17          # republish exactly the jobs without a result
  coordinator report mll-49x17 --out out/mll

Configuration: configs/default.toml, an optional --config profile, then MLL__SECTION__KEY
environment variables (MLL__BROKER__URL, MLL__STORE__URL, MLL__ARTIFACTS__ROOT, ...).";

#[derive(Parser)]
#[command(name = "coordinator", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// Profile file layered over configs/default.toml (e.g. configs/cluster.toml).
    #[arg(long, global = true, env = "MLL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plan a benchmark spec and publish its jobs; prints the run id.
    ///
    /// Submitting a spec again continues its run: only jobs without a result are published, so
    /// adding a model or a dataset to the spec runs only the new jobs.
    Submit(SubmitArgs),
    /// Plan a benchmark spec and print it without publishing anything (a dry run).
    ///
    /// Prints the jobs per stage, the graph's node count and construction, every class whose
    /// captions are missing, and the method options the spec resolves to (its preset plus
    /// explicit keys). Where the data root lacks inputs it says which, and still reports the
    /// caption coverage of the datasets' class maps.
    Plan(PlanArgs),
    /// Show a run's progress per stage and its failed jobs.
    Status {
        /// Run id (the spec's `name`).
        run: String,
        /// One JSON object: {run, state, stages: {stage: {expected, done, failed}}, failures, duplicate_executions}.
        #[arg(long)]
        json: bool,
    },
    /// Republish exactly the jobs of a run whose results are missing.
    ///
    /// Use after a coordinator crash, lost messages, or a store that lost its data. The spec saved at
    /// submit time is used unless --benchmark is given.
    Resume(ResumeArgs),
    /// Publish failed jobs again, once the cause of their failure is fixed.
    ///
    /// Jobs that failed for good (dead-lettered: a broken model file, a missing dataset, a poison
    /// input) keep a failure record and are skipped by `resume`. `retry` first records what waits
    /// in the dead-letter queue, then clears the records of the chosen jobs (all, one stage's, or
    /// one job) and publishes exactly those; jobs in flight are not touched. Follow with `status`.
    Retry(RetryArgs),
    /// Check every committed result of a run and the artifacts it names.
    ///
    /// Lists each bad one (damaged result, missing or corrupt artifact, wrong shape) with job, stage,
    /// model and dataset; exits 1 if there are any. With --repair drops those results and publishes
    /// exactly those jobs again (locally: the next `run --local` computes them).
    Verify(VerifyArgs),
    /// Cancel a running run: workers drop its remaining jobs (a finished run cannot be cancelled).
    Cancel { run: String },
    /// Write or print a run's report.
    ///
    /// With --out DIR writes report.json, report.md, accuracy_matrix.csv and SVG charts into DIR.
    /// With --truth FILE.csv --benchmark SPEC, builds the report from an external accuracy table
    /// (open_clip's results CSV shape) instead of a run: no GPU needed. --experiments adds the
    /// paper's experiments (report.json `experiments`, report.md tables, charts).
    Report(ReportArgs),
    /// Run a benchmark end to end (embedded local mode with --local).
    Run(RunArgs),
    /// Semantic graph tools.
    Graph {
        #[command(subcommand)]
        command: GraphCommand,
    },
    /// Labelled hubs: finished runs that `select` and `adapt` serve new tasks from.
    Hub {
        #[command(subcommand)]
        command: mll_coordinator::adapt::cli::HubCommand,
    },
    /// Pick models for a new task from its class names alone (no GPU): the per-class
    /// top-k models of a hub, their class scores r_{m,y} and the predicted model ranking.
    Select(mll_coordinator::adapt::cli::SelectArgs),
    /// Serve a new task's images: select, evaluate only the selected models (an ordinary
    /// run: status, cancel, resumable), reuse them as an ensemble, and write
    /// predictions.csv and adapt.json.
    Adapt(mll_coordinator::adapt::cli::AdaptArgs),
    /// Print the effective configuration (passwords redacted).
    Config {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GraphCommand {
    /// Build graph.json from wnid-named sample dataset folders and WordNet 3.0.
    Build(mll_coordinator::graph::GraphBuildArgs),
    /// Print each construction's node count for a list of class wnids (no images needed).
    Count(mll_coordinator::graph::GraphCountArgs),
}

#[derive(Args)]
struct SubmitArgs {
    /// Benchmark spec (TOML).
    #[arg(long, value_name = "FILE")]
    benchmark: PathBuf,
    /// Follow the run to its end, then write the report. While waiting, the
    /// run keeps only priority × coordinator.window jobs queued and publishes
    /// the rest as they finish, so runs sharing the workers take turns.
    #[arg(long)]
    wait: bool,
    /// Report folder for --wait (default: out/<run>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also publish jobs that failed for good before.
    #[arg(long)]
    retry_failed: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// A class without captions is an error (exit 2), whatever the spec says
    /// (the `paper` preset already makes it one).
    #[arg(long)]
    strict_captions: bool,
    /// With --wait: keep serving /metrics this long after the run ends, so
    /// Prometheus records the final state before the process exits.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    linger: u64,
}

#[derive(Args)]
struct PlanArgs {
    /// Benchmark spec (TOML).
    #[arg(long, value_name = "FILE")]
    benchmark: PathBuf,
    /// Use this data root instead of the spec's `data_root`.
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// A class without captions is an error (exit 2), whatever the spec says.
    #[arg(long)]
    strict_captions: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ResumeArgs {
    /// Run id (the spec's `name`).
    run: String,
    /// Use this spec instead of the one saved at submit time.
    #[arg(long, value_name = "FILE")]
    benchmark: Option<PathBuf>,
    /// Also publish jobs that failed for good before (their failure records are cleared).
    #[arg(long)]
    retry_failed: bool,
    /// Follow the run to its end, then write the report. While waiting, the
    /// run keeps only priority × coordinator.window jobs queued and publishes
    /// the rest as they finish, so runs sharing the workers take turns.
    #[arg(long)]
    wait: bool,
    /// Report folder for --wait (default: out/<run>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the result as JSON: {run, republished}, or the final status with --wait.
    #[arg(long)]
    json: bool,
    /// A class without captions is an error (exit 2), whatever the spec says.
    #[arg(long)]
    strict_captions: bool,
}

#[derive(Args)]
struct RetryArgs {
    /// Run id (the spec's `name`).
    run: String,
    /// Only this stage's failed jobs: embed, label, evaluate or diagnostic.
    #[arg(long, value_name = "STAGE")]
    stage: Option<mll_common::Stage>,
    /// Only this job (an id from `coordinator status RUN`).
    #[arg(long, value_name = "ID")]
    job: Option<String>,
    /// The fixed spec (e.g. a corrected model path), saved as the run's spec from now on;
    /// default: the spec saved at submit time. It must name the same run.
    #[arg(long, value_name = "FILE")]
    benchmark: Option<PathBuf>,
    /// Print {run, cleared: [{stage, job, reason}], published} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Run id (the spec's `name`).
    run: String,
    /// Drop the bad results and publish exactly those jobs again.
    #[arg(long)]
    repair: bool,
    /// Print {run, checked, bad: [{job, stage, model, dataset, what, reason}], republished} as JSON.
    #[arg(long)]
    json: bool,
    /// Check a local run (`coordinator run --local`) instead: its --out folder.
    #[arg(long, value_name = "DIR", requires = "local")]
    out: Option<PathBuf>,
    /// Local mode: read the journal and artifacts under --out (default out/<run>).
    #[arg(long)]
    local: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
    Markdown,
}

#[derive(Args)]
struct ReportArgs {
    /// Run id; not needed with --truth.
    run: Option<String>,
    /// Print this format to stdout (when --out is not given).
    #[arg(long, value_enum, default_value = "markdown")]
    format: ReportFormat,
    /// Write every format into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// External accuracy table to use as ground truth (needs --benchmark).
    #[arg(long, value_name = "FILE.csv", requires = "benchmark")]
    truth: Option<PathBuf>,
    /// Benchmark spec (for --truth, or to replan a run whose saved spec is gone).
    #[arg(long, value_name = "FILE")]
    benchmark: Option<PathBuf>,
    /// Add the paper's experiments, computed from the committed results without
    /// GPU work: α sweep (0.5–0.9), k sweep (1–6) with its reuse cost, hub growth
    /// (30 seeded orders). With --truth only hub growth (INB, oracle) is possible.
    #[arg(long)]
    experiments: bool,
}

#[derive(Args)]
struct RunArgs {
    /// Embedded mode: in-process queue and store, no RabbitMQ or Redis.
    #[arg(long, required = true)]
    local: bool,
    #[arg(long, value_name = "FILE")]
    benchmark: PathBuf,
    /// Output folder: report, artifacts and the resumable state (default: out/<run>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// In-process workers.
    #[arg(long, default_value_t = 1, value_name = "N")]
    workers: usize,
    #[arg(long)]
    json: bool,
    /// Add the paper's experiments to the report (see `report --experiments`).
    #[arg(long)]
    experiments: bool,
    /// A class without captions is an error (exit 2), whatever the spec says.
    #[arg(long)]
    strict_captions: bool,
}

#[cfg(feature = "local")]
async fn run_local(settings: &Settings, args: &RunArgs, out: &std::path::Path) -> anyhow::Result<mll_coordinator::control::RunStatus> {
    mll_coordinator::local::run(
        settings,
        mll_coordinator::local::LocalOptions {
            spec_path: &args.benchmark,
            out,
            workers: args.workers,
            progress: std::io::stderr().is_terminal(),
            experiments: args.experiments,
            strict_captions: args.strict_captions,
        },
    )
    .await
}

/// Cluster images build without libtorch (`--no-default-features`), so they
/// have no in-process workers.
#[cfg(not(feature = "local"))]
async fn run_local(_: &Settings, _: &RunArgs, _: &std::path::Path) -> anyhow::Result<mll_coordinator::control::RunStatus> {
    anyhow::bail!(
        "this coordinator was built without local mode (cargo feature `local`, which links libtorch); \
         use `coordinator submit` against RabbitMQ and Redis, or rebuild with the default features"
    )
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli).await {
        eprintln!("error: {}", mll_common::telemetry::error_report(&e));
        // 2 = fix the input (config, spec, missing or changed data); 130 = interrupted (see exit.rs).
        std::process::exit(mll_coordinator::exit::code(&e));
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    mll_common::telemetry::init_logging(settings.log.format, &settings.log.level);
    match cli.command {
        Command::Config { json } => {
            println!("{}", settings.render(json));
            Ok(())
        }
        Command::Graph { command: GraphCommand::Build(args) } => mll_coordinator::graph::run_graph_build(&args),
        Command::Graph { command: GraphCommand::Count(args) } => mll_coordinator::graph::run_graph_count(&args),
        Command::Run(args) => {
            let spec = BenchmarkSpec::load(&args.benchmark)?;
            let out = args.out.clone().unwrap_or_else(|| PathBuf::from("out").join(&spec.name));
            if !cfg!(feature = "local") {
                return run_local(&settings, &args, &out).await.map(|_| ());
            }
            prepare_world(&args.benchmark)?;
            let status = run_local(&settings, &args, &out).await?;
            finish(&status, &out, args.json)
        }
        Command::Submit(args) => {
            serve_metrics(&settings).await;
            let ctl = cluster(&settings).await?;
            let submission = read_submission(&args.benchmark)?;
            let p = plan_of(&submission, args.strict_captions)?;
            mll_coordinator::inputs::verify(&p)?;
            let (published, mut backlog) =
                ctl.submit_windowed(&p, &submission, args.retry_failed, window(&settings, &p, args.wait)).await?;
            if !args.wait {
                if args.json {
                    println!("{}", serde_json::json!({"run": p.run.as_str(), "jobs": p.jobs.len(), "published": published}));
                } else {
                    eprintln!("run {}: {} jobs planned, {published} published", p.run, p.jobs.len());
                    println!("{}", p.run);
                }
                return Ok(());
            }
            let out = args.out.unwrap_or_else(|| PathBuf::from("out").join(p.run.as_str()));
            held_back(&p, published, &backlog);
            let status = drive::wait_publishing_and_report(&ctl, &p, &out, &drive_options(&settings), &mut backlog).await?;
            let result = finish(&status, &out, args.json);
            if args.linger > 0 {
                tracing::info!(seconds = args.linger, "run finished; serving /metrics a while longer (--linger)");
                tokio::time::sleep(Duration::from_secs(args.linger)).await;
            }
            result
        }
        Command::Retry(args) => {
            let ctl = cluster(&settings).await?;
            let run = run_id(&args.run)?;
            let job = match &args.job {
                Some(j) => Some(JobId::parse(j).map_err(|e| mll_common::exit::InputError(format!("--job '{j}': {e}")))?),
                None => None,
            };
            let submission = match &args.benchmark {
                Some(path) => read_submission(path)?,
                None => ctl.saved_submission(&run)?,
            };
            let p = plan_of(&submission, false)?;
            if p.run != run {
                return Err(mll_common::exit::InputError(format!("--benchmark names run '{}', not '{run}'", p.run)).into());
            }
            if args.benchmark.is_some() {
                ctl.save_submission(&run, &submission)?;
            }
            let outcome = ctl.retry(&p, args.stage, job.as_ref()).await?;
            if args.json {
                println!("{}", serde_json::json!({"run": run.as_str(), "cleared": outcome.cleared, "published": outcome.published}));
            } else if outcome.cleared.is_empty() {
                println!(
                    "run {run}: no failed jobs{}; nothing published",
                    args.stage.map(|s| format!(" in stage {s}")).unwrap_or_default()
                );
            } else {
                for c in &outcome.cleared {
                    println!("  {} job {} (had failed: {})", c.stage, c.job, c.reason);
                }
                println!("run {run}: published {} failed jobs again; `coordinator status {run}` follows them", outcome.published);
            }
            Ok(())
        }
        Command::Resume(args) => {
            serve_metrics(&settings).await;
            let ctl = cluster(&settings).await?;
            let run = run_id(&args.run)?;
            let submission = match &args.benchmark {
                Some(path) => read_submission(path)?,
                None => ctl.saved_submission(&run)?,
            };
            let p = plan_of(&submission, args.strict_captions)?;
            anyhow::ensure!(p.run == run, "the spec names run '{}', not '{run}'", p.run);
            mll_coordinator::inputs::verify(&p)?;
            // submit() re-registers meta and expected sets (lost if the store lost its data).
            let (published, mut backlog) =
                ctl.submit_windowed(&p, &submission, args.retry_failed, window(&settings, &p, args.wait)).await?;
            if !args.wait {
                if args.json {
                    println!("{}", serde_json::json!({"run": run.as_str(), "republished": published}));
                } else {
                    println!("run {run}: republished {published} jobs without a result");
                }
                return Ok(());
            }
            let out = args.out.unwrap_or_else(|| PathBuf::from("out").join(run.as_str()));
            held_back(&p, published, &backlog);
            let status = drive::wait_publishing_and_report(&ctl, &p, &out, &drive_options(&settings), &mut backlog).await?;
            finish(&status, &out, args.json)
        }
        Command::Plan(args) => dry_run(&args),
        Command::Status { run, json } => {
            let ctl = cluster(&settings).await?;
            let run = run_id(&run)?;
            // Read only: the coordinator driving the run drains the dead letters.
            let status = ctl.status(&run).await?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        Command::Cancel { run } => {
            let ctl = cluster(&settings).await?;
            let run = run_id(&run)?;
            ctl.cancel(&run).await?;
            println!("run {run} cancelled: workers drop its remaining jobs");
            Ok(())
        }
        Command::Report(args) => report(&settings, args).await,
        Command::Hub { command: mll_coordinator::adapt::cli::HubCommand::List(args) } => {
            let ctl = if args.local { None } else { Some(cluster(&settings).await?) };
            mll_coordinator::adapt::cli::hub_list(&settings, &args, ctl).await
        }
        Command::Select(args) => {
            let ctl = if args.at.local { None } else { Some(cluster(&settings).await?) };
            mll_coordinator::adapt::cli::select(&settings, &args, drive_options(&settings), ctl).await
        }
        Command::Adapt(args) => {
            let ctl = if args.at.local { None } else { Some(cluster(&settings).await?) };
            mll_coordinator::adapt::cli::adapt_cmd(&settings, &args, drive_options(&settings), ctl).await
        }
        Command::Verify(args) => {
            use mll_coordinator::verify::{command, Target};
            let run = run_id(&args.run)?;
            if args.local {
                let out = args.out.clone().unwrap_or_else(|| PathBuf::from("out").join(run.as_str()));
                command(Target::Local(&out), &run, args.repair, args.json).await
            } else {
                command(Target::Cluster(cluster(&settings).await?), &run, args.repair, args.json).await
            }
        }
    }
}

fn run_id(run: &str) -> anyhow::Result<RunId> {
    RunId::new(run).map_err(|e| mll_common::exit::InputError(format!("run id '{run}': {e}")).into())
}

async fn report(settings: &Settings, args: ReportArgs) -> anyhow::Result<()> {
    let experiments = args.experiments.then(mll_method::experiments::ExperimentOptions::default);
    let report = if let Some(truth) = &args.truth {
        let spec = BenchmarkSpec::load(args.benchmark.as_deref().expect("clap requires --benchmark"))?;
        mll_coordinator::aggregate::truth::report_from_truth_with(truth, &spec, experiments.as_ref())?
    } else {
        let run = args.run.as_deref().context("give a run id, or --truth FILE.csv --benchmark SPEC")?;
        let run = run_id(run)?;
        let ctl = cluster(settings).await?;
        let submission = match &args.benchmark {
            Some(path) => read_submission(path)?,
            None => ctl.saved_submission(&run)?,
        };
        let p = plan_of(&submission, false)?;
        match mll_coordinator::aggregate::build_with(&ctl, &p, experiments.as_ref()).await {
            Ok(r) => r,
            Err(e) => return Err(mll_coordinator::verify::explain_report_error(&ctl, &p, e).await),
        }
    };
    match &args.out {
        Some(out) => {
            for path in mll_method::report::write_report(&report, out)? {
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let text = match args.format {
                ReportFormat::Json => mll_method::report::report_json(&report),
                ReportFormat::Csv => mll_method::report::accuracy_matrix_csv(&report),
                ReportFormat::Markdown => mll_method::report::report_markdown(&report),
            };
            print!("{text}");
        }
    }
    Ok(())
}

fn plan_of(sub: &Submission, strict_captions: bool) -> anyhow::Result<plan::Plan> {
    Ok(sub.plan_strict(strict_captions)?)
}

/// `coordinator plan`: plans and prints, publishes nothing, needs no broker or store.
fn dry_run(args: &PlanArgs) -> anyhow::Result<()> {
    let spec = BenchmarkSpec::load(&args.benchmark)?;
    let root = match &args.data_root {
        Some(r) => r.clone(),
        None => plan::data_root_of(&spec, &args.benchmark),
    };
    let opts = plan::PlanOptions::for_spec_file(&args.benchmark, args.strict_captions);
    let d = mll_coordinator::dry_run::dry_run(&spec, &root, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", mll_coordinator::dry_run::render(&d));
    }
    Ok(())
}

async fn cluster(settings: &Settings) -> anyhow::Result<RunControl> {
    let queue = AmqpQueue::connect(&settings.broker).await?;
    let store = RedisStore::connect(&settings.store).await?;
    Ok(RunControl {
        queue: Arc::new(queue),
        store: Arc::new(store),
        artifacts: ArtifactStore::new(&settings.artifacts.root),
        publish_batch: settings.coordinator.publish_batch,
    })
}

async fn serve_metrics(settings: &Settings) {
    match mll_common::telemetry::serve_metrics(settings.coordinator.metrics_addr).await {
        Ok(addr) => tracing::info!(%addr, "metrics on /metrics"),
        Err(e) => {
            tracing::warn!(error = %e, addr = %settings.coordinator.metrics_addr, "metrics server not started (set coordinator.metrics_addr)")
        }
    }
}

/// How many jobs a run keeps queued or running: its share of the workers
/// while it is waited for (`priority × coordinator.window`); everything at
/// once without `--wait` (nobody would publish the rest) or with window 0.
fn window(settings: &Settings, plan: &mll_coordinator::plan::Plan, wait: bool) -> usize {
    match settings.coordinator.window {
        0 => usize::MAX,
        _ if !wait => usize::MAX,
        w => w.saturating_mul(plan.spec.priority as usize),
    }
}

fn held_back(plan: &mll_coordinator::plan::Plan, published: usize, backlog: &mll_coordinator::control::Backlog) {
    if !backlog.is_empty() {
        tracing::info!(
            run = %plan.run,
            published,
            held_back = backlog.len(),
            "published the run's first jobs; the rest follow as they finish (coordinator.window × priority {})",
            plan.spec.priority
        );
    }
}

fn drive_options(settings: &Settings) -> DriveOptions {
    DriveOptions {
        poll: Duration::from_millis(settings.coordinator.poll_interval_ms),
        patience: Duration::from_secs(settings.coordinator.patience_s),
        progress: std::io::stderr().is_terminal(),
        experiments: false,
    }
}

/// Generates the toy world when a spec that uses it is run and the world is missing.
fn prepare_world(spec_path: &Path) -> anyhow::Result<()> {
    mll_coordinator::world::ensure_for_spec(spec_path)
}

fn print_status(s: &RunStatus) {
    println!("run {}: {}", s.run, s.state);
    for (stage, p) in &s.stages {
        println!("  {stage:<10} {:>7}/{:<7} done  {:>5} failed", p.done, p.expected, p.failed);
    }
    if s.duplicate_executions > 0 {
        println!("  {} duplicate executions (redeliveries; each result counted once)", s.duplicate_executions);
    }
    for f in s.failures.iter().take(20) {
        println!("  failed {} {}: {}", f.stage, f.job, f.reason);
    }
    if s.failures.len() > 20 {
        println!("  ... {} more failures (see --json)", s.failures.len() - 20);
    }
}

fn finish(status: &RunStatus, out: &Path, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(status)?);
    } else {
        print_status(status);
        let md = out.join("report.md");
        if let Ok(text) = std::fs::read_to_string(&md) {
            println!("\n{}", summary_section(&text));
            println!("report: {}", out.display());
        }
    }
    if status.state == RunState::Failed {
        anyhow::bail!("{} jobs failed for good; see the failures above and `coordinator resume RUN --retry-failed`", status.failures.len());
    }
    Ok(())
}

/// The summary part of report.md (up to the per-dataset details).
fn summary_section(md: &str) -> &str {
    match md.find("\n## Per dataset") {
        Some(i) => &md[..i],
        None => md,
    }
}
