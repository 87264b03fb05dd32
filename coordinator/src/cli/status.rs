//! `status` and `cancel`, and the summary printed when a followed run ends.

use super::context::{cluster, run_id};
use crate::control::RunStatus;
use mll_common::config::Settings;
use mll_common::store::RunState;
use std::path::Path;

pub async fn status(settings: &Settings, run: &str, json: bool) -> anyhow::Result<()> {
    let ctl = cluster(settings).await?;
    let run = run_id(run)?;
    // Read only: the coordinator driving the run drains the dead letters.
    let status = ctl.status(&run).await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

pub async fn cancel(settings: &Settings, run: &str) -> anyhow::Result<()> {
    let ctl = cluster(settings).await?;
    let run = run_id(run)?;
    ctl.cancel(&run).await?;
    println!("run {run} cancelled: workers drop its remaining jobs");
    Ok(())
}

pub fn print_status(s: &RunStatus) {
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

/// A followed run ended: its status, the report's summary, and an error when
/// jobs failed for good.
pub fn finish(status: &RunStatus, out: &Path, json: bool) -> anyhow::Result<()> {
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
