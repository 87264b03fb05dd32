//! `retry`: publish failed jobs again once their cause is fixed.

use super::context::{cluster, run_id};
use crate::control::read_submission;
use clap::Args;
use mll_common::config::Settings;
use mll_common::exit::InputError;
use mll_common::JobId;
use std::path::PathBuf;

#[derive(Args)]
pub struct RetryArgs {
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

pub async fn retry(settings: &Settings, args: &RetryArgs) -> anyhow::Result<()> {
    let ctl = cluster(settings).await?;
    let run = run_id(&args.run)?;
    let job = match &args.job {
        Some(j) => Some(JobId::parse(j).map_err(|e| InputError(format!("--job '{j}': {e}")))?),
        None => None,
    };
    let submission = match &args.benchmark {
        Some(path) => read_submission(path)?,
        None => ctl.saved_submission(&run)?,
    };
    let p = submission.plan()?;
    if p.run != run {
        return Err(InputError(format!("--benchmark names run '{}', not '{run}'", p.run)).into());
    }
    if args.benchmark.is_some() {
        ctl.save_submission(&run, &submission)?;
    }
    let outcome = ctl.retry(&p, args.stage, job.as_ref()).await?;
    if args.json {
        println!("{}", serde_json::json!({"run": run.as_str(), "cleared": outcome.cleared, "published": outcome.published}));
    } else if outcome.cleared.is_empty() {
        println!("run {run}: no failed jobs{}; nothing published", args.stage.map(|s| format!(" in stage {s}")).unwrap_or_default());
    } else {
        for c in &outcome.cleared {
            println!("  {} job {} (had failed: {})", c.stage, c.job, c.reason);
        }
        println!("run {run}: published {} failed jobs again; `coordinator status {run}` follows them", outcome.published);
    }
    Ok(())
}
