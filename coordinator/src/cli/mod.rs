//! The coordinator's command line, one module per command family; `main.rs`
//! only parses and exits with [`crate::exit::code`]. Each command reads its
//! arguments, calls the library (plan, control, drive, aggregate, hub, adapt,
//! verify, graph) and prints; nothing here computes what the library does.
//!
//! - `submit` — `submit` and `resume`: plan, check inputs, publish, follow;
//! - `run` — `run --local`: the same pipeline in one process;
//! - `status` — `status`, `cancel`, and the end-of-run summary;
//! - `retry`, `verify`, `report`, `plan` (the dry run), `graph`, `hub`
//!   (`hub list`, `select`, `adapt`);
//! - `context` — what several commands share: connecting to the cluster or
//!   opening a local run folder, run ids, progress and publishing windows.

mod context;
mod graph;
mod hub;
mod plan;
mod report;
mod retry;
mod run;
mod status;
mod submit;
mod verify;

use clap::{Parser, Subcommand};
use mll_common::config::Settings;
use std::path::PathBuf;

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
pub struct Cli {
    /// Profile file layered over configs/default.toml (e.g. configs/cluster.toml).
    #[arg(long, global = true, env = "MLL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Plan a benchmark spec and publish its jobs; prints the run id.
    ///
    /// Submitting a spec again continues its run: only jobs without a result are published, so
    /// adding a model or a dataset to the spec runs only the new jobs.
    Submit(submit::SubmitArgs),
    /// Plan a benchmark spec and print it without publishing anything (a dry run).
    ///
    /// Prints the jobs per stage, the graph's node count and construction, every class whose
    /// captions are missing, and the method options the spec resolves to (its preset plus
    /// explicit keys). Where the data root lacks inputs it says which, and still reports the
    /// caption coverage of the datasets' class maps.
    Plan(plan::PlanArgs),
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
    Resume(submit::ResumeArgs),
    /// Publish failed jobs again, once the cause of their failure is fixed.
    ///
    /// Jobs that failed for good (dead-lettered: a broken model file, a missing dataset, a poison
    /// input) keep a failure record and are skipped by `resume`. `retry` first records what waits
    /// in the dead-letter queue, then clears the records of the chosen jobs (all, one stage's, or
    /// one job) and publishes exactly those; jobs in flight are not touched. Follow with `status`.
    Retry(retry::RetryArgs),
    /// Check every committed result of a run and the artifacts it names.
    ///
    /// Lists each bad one (damaged result, missing or corrupt artifact, wrong shape) with job, stage,
    /// model and dataset; exits 1 if there are any. With --repair drops those results and publishes
    /// exactly those jobs again (locally: the next `run --local` computes them).
    Verify(verify::VerifyArgs),
    /// Cancel a running run: workers drop its remaining jobs (a finished run cannot be cancelled).
    Cancel { run: String },
    /// Write or print a run's report.
    ///
    /// With --out DIR writes report.json, report.md, accuracy_matrix.csv and SVG charts into DIR.
    /// With --truth FILE.csv --benchmark SPEC, builds the report from an external accuracy table
    /// (open_clip's results CSV shape) instead of a run: no GPU needed. --experiments adds the
    /// paper's experiments (report.json `experiments`, report.md tables, charts).
    Report(report::ReportArgs),
    /// Run a benchmark end to end (embedded local mode with --local).
    Run(run::RunArgs),
    /// Semantic graph tools.
    Graph {
        #[command(subcommand)]
        command: graph::GraphCommand,
    },
    /// Labelled hubs: finished runs that `select` and `adapt` serve new tasks from.
    Hub {
        #[command(subcommand)]
        command: hub::HubCommand,
    },
    /// Pick models for a new task from its class names alone (no GPU): the per-class
    /// top-k models of a hub, their class scores r_{m,y} and the predicted model ranking.
    Select(hub::SelectArgs),
    /// Serve a new task's images: select, evaluate only the selected models (an ordinary
    /// run: status, cancel, resumable), reuse them as an ensemble, and write
    /// predictions.csv and adapt.json.
    Adapt(hub::AdaptArgs),
    /// Print the effective configuration (passwords redacted).
    Config {
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command line; returns the process's exit code (printing
/// the error chain first when it failed).
pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", mll_common::telemetry::error_report(&e));
            crate::exit::code(&e)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    mll_common::telemetry::init_logging(settings.log.format, &settings.log.level);
    match cli.command {
        Command::Config { json } => {
            println!("{}", settings.render(json));
            Ok(())
        }
        Command::Graph { command } => graph::run(command),
        Command::Run(args) => run::run(&settings, &args).await,
        Command::Submit(args) => submit::submit(&settings, args).await,
        Command::Resume(args) => submit::resume(&settings, args).await,
        Command::Retry(args) => retry::retry(&settings, &args).await,
        Command::Plan(args) => plan::dry_run(&args),
        Command::Status { run, json } => status::status(&settings, &run, json).await,
        Command::Cancel { run } => status::cancel(&settings, &run).await,
        Command::Report(args) => report::report(&settings, args).await,
        Command::Hub { command: hub::HubCommand::List(args) } => hub::hub_list(&settings, &args).await,
        Command::Select(args) => hub::select(&settings, &args).await,
        Command::Adapt(args) => hub::adapt(&settings, &args).await,
        Command::Verify(args) => verify::verify(&settings, &args).await,
    }
}
