//! `submit` and `resume`: one path. Plan the spec (given, or saved at submit
//! time), check its inputs, publish every job without a result, and with
//! `--wait` follow the run to its report.

use super::context::{cluster, default_out, drive_options, held_back, run_id, serve_metrics, window};
use super::status::finish;
use crate::control::{read_submission, RunControl, Submission};
use crate::drive;
use clap::Args;
use mll_common::config::Settings;
use mll_common::exit::InputError;
use mll_common::RunId;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct SubmitArgs {
    /// Benchmark spec (TOML).
    #[arg(long, value_name = "FILE")]
    benchmark: PathBuf,
    #[command(flatten)]
    publish: PublishArgs,
}

#[derive(Args)]
pub struct ResumeArgs {
    /// Run id (the spec's `name`).
    run: String,
    /// Use this spec instead of the one saved at submit time.
    #[arg(long, value_name = "FILE")]
    benchmark: Option<PathBuf>,
    #[command(flatten)]
    publish: PublishArgs,
}

/// What `submit` and `resume` share.
#[derive(Args)]
struct PublishArgs {
    /// Follow the run to its end, then write the report. While waiting, the
    /// run keeps only priority × coordinator.window jobs queued and publishes
    /// the rest as they finish, so runs sharing the workers take turns.
    #[arg(long)]
    wait: bool,
    /// Report folder for --wait (default: out/<run>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also publish jobs that failed for good before (their failure records are cleared).
    #[arg(long)]
    retry_failed: bool,
    /// Print the result as JSON: submit {run, jobs, published}, resume {run,
    /// republished}; the final status with --wait.
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

pub async fn submit(settings: &Settings, args: SubmitArgs) -> anyhow::Result<()> {
    serve_metrics(settings).await;
    let ctl = cluster(settings).await?;
    let submission = read_submission(&args.benchmark)?;
    publish(settings, &ctl, submission, None, &args.publish).await
}

pub async fn resume(settings: &Settings, args: ResumeArgs) -> anyhow::Result<()> {
    serve_metrics(settings).await;
    let ctl = cluster(settings).await?;
    let run = run_id(&args.run)?;
    let submission = match &args.benchmark {
        Some(path) => read_submission(path)?,
        None => ctl.saved_submission(&run)?,
    };
    publish(settings, &ctl, submission, Some(run), &args.publish).await
}

/// Publishes what is missing of `submission`'s run. `resuming`: the run the
/// person named (the spec must name it too); None for a submit.
async fn publish(
    settings: &Settings,
    ctl: &RunControl,
    submission: Submission,
    resuming: Option<RunId>,
    args: &PublishArgs,
) -> anyhow::Result<()> {
    let p = submission.plan_strict(args.strict_captions)?;
    if let Some(run) = &resuming {
        if &p.run != run {
            return Err(InputError(format!("the spec names run '{}', not '{run}'", p.run)).into());
        }
    }
    crate::inputs::verify(&p)?;
    // submit_windowed() (re-)registers meta and expected sets: a resume after
    // the store lost its data needs them again.
    let (published, mut backlog) = ctl.submit_windowed(&p, &submission, args.retry_failed, window(settings, &p, args.wait)).await?;
    if !args.wait {
        let run = p.run.as_str();
        match (resuming.is_some(), args.json) {
            (false, true) => println!("{}", serde_json::json!({"run": run, "jobs": p.jobs.len(), "published": published})),
            (false, false) => {
                eprintln!("run {run}: {} jobs planned, {published} published", p.jobs.len());
                println!("{run}");
            }
            (true, true) => println!("{}", serde_json::json!({"run": run, "republished": published})),
            (true, false) => println!("run {run}: republished {published} jobs without a result"),
        }
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| default_out(p.run.as_str()));
    held_back(&p, published, &backlog);
    let status = drive::wait_publishing_and_report(ctl, &p, &out, &drive_options(settings), &mut backlog).await?;
    let result = finish(&status, &out, args.json);
    if args.linger > 0 {
        tracing::info!(seconds = args.linger, "run finished; serving /metrics a while longer (--linger)");
        tokio::time::sleep(Duration::from_secs(args.linger)).await;
    }
    result
}
