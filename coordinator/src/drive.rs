//! `--wait`: watch a run until every stage is finished, recording dead letters
//! as they arrive, with a progress bar per stage; then aggregate and report.

use crate::control::{RunControl, RunStatus};
use crate::plan::Plan;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mll_common::store::RunState;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub struct DriveOptions {
    pub poll: Duration,
    /// Progress bars on a terminal (they hide themselves elsewhere).
    pub progress: bool,
    /// Add the paper's experiments to the report.
    pub experiments: bool,
}

/// Waits for the run to finish. Returns the final status. A cancelled run
/// returns at once with state "cancelled".
pub async fn wait(ctl: &RunControl, plan: &Plan, opts: &DriveOptions) -> anyhow::Result<RunStatus> {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:40.cyan/blue}] {pos}/{len} {msg} ({eta} left)")
        .expect("valid template")
        .progress_chars("=> ");
    let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut last_log = Instant::now();
    loop {
        // The broker or the store may be restarting: a failed poll is logged
        // and retried, the run itself lives on in the store and the queue.
        if let Err(e) = ctl.record_dead_letters().await {
            warn!(error = %format!("{e:#}"), "cannot read the dead-letter queue now; retrying");
            tokio::time::sleep(opts.poll.max(Duration::from_secs(1))).await;
            continue;
        }
        if let Ok((ready, dead)) = ctl.queue.depths().await {
            let m = mll_common::telemetry::metrics();
            m.queue_depth.with_label_values(&["work"]).set(ready as i64);
            m.queue_depth.with_label_values(&["dead_letter"]).set(dead as i64);
        }
        let status = match ctl.status(&plan.run).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot read the run's progress now; retrying");
                tokio::time::sleep(opts.poll.max(Duration::from_secs(1))).await;
                continue;
            }
        };
        for (stage, p) in &status.stages {
            let bar = bars.entry(stage.clone()).or_insert_with(|| {
                let b = if opts.progress { multi.add(ProgressBar::new(p.expected)) } else { ProgressBar::hidden() };
                b.set_style(style.clone());
                b.set_prefix(stage.clone());
                b
            });
            bar.set_length(p.expected);
            bar.set_position(p.done + p.failed);
            bar.set_message(if p.failed > 0 { format!("{} failed", p.failed) } else { String::new() });
        }
        if last_log.elapsed() > Duration::from_secs(30) {
            last_log = Instant::now();
            let summary: Vec<String> =
                status.stages.iter().map(|(s, p)| format!("{s} {}/{} ({} failed)", p.done, p.expected, p.failed)).collect();
            info!(run = %plan.run, progress = %summary.join(", "), "waiting");
        }
        if status.state != RunState::Running.as_str() {
            for b in bars.values() {
                b.finish();
            }
            return Ok(status);
        }
        tokio::time::sleep(opts.poll).await;
    }
}

/// Waits, then writes the report into `out` and records the final state.
pub async fn wait_and_report(ctl: &RunControl, plan: &Plan, out: &Path, opts: &DriveOptions) -> anyhow::Result<RunStatus> {
    let status = wait(ctl, plan, opts).await?;
    if status.state == RunState::Cancelled.as_str() {
        info!(run = %plan.run, "run cancelled: no report");
        return Ok(status);
    }
    let experiments = opts.experiments.then(crate::method::experiments::ExperimentOptions::default);
    let report = crate::aggregate::build_with(ctl, plan, experiments.as_ref()).await?;
    let written = crate::report::write_report(&report, out)?;
    for p in &written {
        info!(path = %p.display(), "wrote");
    }
    let state = if status.state == RunState::Done.as_str() { RunState::Done } else { RunState::Failed };
    ctl.store.set_state(&plan.run, state).await?;
    Ok(status)
}
