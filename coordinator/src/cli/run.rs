//! `run --local`: the whole pipeline in this process (embedded queue and
//! store, in-process workers), resumable from the output folder's journal.

use super::context::default_out;
use super::status::finish;
use crate::control::{read_submission, Submission};
use crate::plan::Plan;
use anyhow::Context;
use clap::Args;
use mll_common::config::Settings;
#[cfg(feature = "local")]
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RunArgs {
    /// Embedded mode: in-process queue and store, no RabbitMQ or Redis.
    #[arg(long, required = true)]
    local: bool,
    /// Benchmark spec (TOML), e.g. configs/benchmarks/toy.toml.
    #[arg(long, value_name = "FILE")]
    benchmark: PathBuf,
    /// Output folder: report, artifacts and the resumable state (default: out/<run>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// In-process workers.
    #[arg(long, default_value_t = 1, value_name = "N")]
    workers: usize,
    /// Print the final status as one JSON object (as `status --json`) instead of the summary.
    #[arg(long)]
    json: bool,
    /// Add the paper's experiments to the report (see `report --experiments`).
    #[arg(long)]
    experiments: bool,
    /// A class without captions is an error (exit 2), whatever the spec says.
    #[arg(long)]
    strict_captions: bool,
}

pub async fn run(settings: &Settings, args: &RunArgs) -> anyhow::Result<()> {
    if !cfg!(feature = "local") {
        return run_local(settings, args, None).await.map(|_| ());
    }
    // Read and parsed once; planned the way `submit` plans.
    let submission = read_submission(&args.benchmark)?;
    let spec = submission.spec()?;
    let out = args.out.clone().unwrap_or_else(|| default_out(&spec.name));
    // Generates the toy world when a spec that uses it is run and the world is missing.
    crate::world::ensure_for_spec(&spec, &submission.spec_path)?;
    let plan = submission.plan_spec(&spec, args.strict_captions)?;
    // Every log line goes to run.log; the terminal shows warnings and the progress.
    std::fs::create_dir_all(&out).with_context(|| format!("creating the output folder {}", out.display()))?;
    let log = out.join("run.log");
    match crate::logs::log_to_file(&log) {
        Ok(()) => eprintln!("run {}: logs in {}", spec.name, log.display()),
        Err(e) => tracing::warn!(path = %log.display(), error = %e, "cannot write the run's log file; its lines are dropped"),
    }
    let status = run_local(settings, args, Some((&submission, &plan, &out))).await?;
    finish(&status, &out, args.json)
}

/// What a local run needs besides its arguments: the submission, its plan and the output folder.
type Planned<'a> = Option<(&'a Submission, &'a Plan, &'a Path)>;

#[cfg(feature = "local")]
async fn run_local(settings: &Settings, args: &RunArgs, planned: Planned<'_>) -> anyhow::Result<crate::control::RunStatus> {
    let (submission, plan, out) = planned.expect("run() plans before running locally");
    crate::local::run(
        settings,
        crate::local::LocalOptions {
            submission,
            plan,
            out,
            workers: args.workers,
            progress: std::io::stderr().is_terminal(),
            experiments: args.experiments,
        },
    )
    .await
}

/// Cluster images build without libtorch (`--no-default-features`), so they
/// have no in-process workers.
#[cfg(not(feature = "local"))]
async fn run_local(_: &Settings, _: &RunArgs, _: Planned<'_>) -> anyhow::Result<crate::control::RunStatus> {
    anyhow::bail!(
        "this coordinator was built without local mode (cargo feature `local`, which links libtorch); \
         use `coordinator submit` against RabbitMQ and Redis, or rebuild with the default features"
    )
}
