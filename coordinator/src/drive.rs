//! `--wait`: watch a run until every stage is finished, recording dead letters
//! as they arrive and publishing the run's held-back jobs as its window frees
//! (see [`Backlog`]), showing its progress ([`crate::progress`]); then
//! aggregate and report.

use crate::control::{Backlog, RunControl, RunStatus};
use crate::plan::Plan;
use crate::progress::Progress;
use mll_common::store::RunState;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub struct DriveOptions {
    pub poll: Duration,
    /// How long reading the run may keep failing (store or broker away, the
    /// run gone from the store) before `wait` gives up (coordinator.patience_s).
    pub patience: Duration,
    /// The progress block on a terminal; without one, a progress line every few seconds.
    pub progress: bool,
    /// Add the paper's experiments to the report.
    pub experiments: bool,
}

/// Waits for the run to finish. Returns the final status. A cancelled run
/// returns at once with state "cancelled".
pub async fn wait(ctl: &RunControl, plan: &Plan, opts: &DriveOptions) -> anyhow::Result<RunStatus> {
    wait_publishing(ctl, plan, opts, &mut Backlog::default()).await
}

/// [`wait`] that also publishes the run's `backlog` as its window allows
/// (`RunControl::top_up` after each poll).
pub async fn wait_publishing(ctl: &RunControl, plan: &Plan, opts: &DriveOptions, backlog: &mut Backlog) -> anyhow::Result<RunStatus> {
    let mut progress = Progress::new(plan.run.as_str(), opts.progress);
    // Since when reading the run fails; each trouble is logged once, not per poll.
    let mut trouble: Option<Instant> = None;
    // The run's lanes, for the queue-depth gauge (ready jobs in all of them).
    let mut lanes: Vec<mll_common::queue::Lane> =
        plan.jobs.iter().filter_map(|j| j.model()).map(|m| mll_common::queue::Lane::of_model(&m.artifact)).collect();
    lanes.sort();
    lanes.dedup();
    loop {
        // The broker or the store may be restarting: a failed poll is retried
        // (the run itself lives on in the store and the queue) for up to the
        // patience, then given up with what to run.
        let polled = match ctl.record_dead_letters(&plan.run).await {
            Ok(_) => match ctl.status(&plan.run).await {
                Ok(s) => ctl
                    .top_up(plan, backlog, &s)
                    .await
                    .map(|_| s)
                    .map_err(|e| anyhow::Error::new(e).context("publishing the run's next jobs")),
                Err(e) => Err(anyhow::Error::from(e)),
            },
            Err(e) => Err(anyhow::Error::new(e).context("reading the dead-letter queue")),
        };
        let status = match polled {
            Ok(s) => {
                if trouble.take().is_some() {
                    info!(run = %plan.run, "the run's progress can be read again");
                }
                s
            }
            Err(e) => {
                let vanished = e.chain().any(|c| {
                    c.is::<mll_common::exit::InputError>()
                        || c.downcast_ref::<crate::control::ControlError>()
                            .is_some_and(|c| matches!(c, crate::control::ControlError::Input(_)))
                });
                let since = *trouble.get_or_insert_with(|| {
                    if vanished {
                        warn!(
                            run = %plan.run,
                            patience_s = opts.patience.as_secs(),
                            "the run is gone from the store (Redis lost its data, or was flushed); `coordinator resume {}` \
                             registers it again and republishes what is missing; waiting for that",
                            plan.run
                        );
                    } else {
                        warn!(error = %format!("{e:#}"), patience_s = opts.patience.as_secs(), "cannot read the run's progress; retrying");
                    }
                    Instant::now()
                });
                if since.elapsed() >= opts.patience {
                    let what = if vanished {
                        format!("the run is gone from the store; run `coordinator resume {} --wait`", plan.run)
                    } else {
                        format!("{e:#}; once the store and broker are back, `coordinator resume {} --wait` continues", plan.run)
                    };
                    anyhow::bail!("gave up waiting after {} s (coordinator.patience_s): {what}", opts.patience.as_secs());
                }
                tokio::time::sleep(opts.poll.max(Duration::from_secs(1))).await;
                continue;
            }
        };
        if let Ok((ready, dead)) = ctl.queue.depths(&lanes).await {
            let m = mll_common::telemetry::metrics();
            m.queue_depth.with_label_values(&["work"]).set(ready as i64);
            m.queue_depth.with_label_values(&["dead_letter"]).set(dead as i64);
        }
        progress.update(&status);
        if status.state != RunState::Running {
            return Ok(status);
        }
        tokio::time::sleep(opts.poll).await;
    }
}

/// Waits, then writes the report into `out` and records the final state.
pub async fn wait_and_report(ctl: &RunControl, plan: &Plan, out: &Path, opts: &DriveOptions) -> anyhow::Result<RunStatus> {
    wait_publishing_and_report(ctl, plan, out, opts, &mut Backlog::default()).await
}

/// [`wait_and_report`] that publishes the run's `backlog` as it goes.
pub async fn wait_publishing_and_report(
    ctl: &RunControl,
    plan: &Plan,
    out: &Path,
    opts: &DriveOptions,
    backlog: &mut Backlog,
) -> anyhow::Result<RunStatus> {
    let status = wait_publishing(ctl, plan, opts, backlog).await?;
    if status.state == RunState::Cancelled {
        info!(run = %plan.run, "run cancelled: no report");
        return Ok(status);
    }
    let experiments = opts.experiments.then(mll_method::experiments::ExperimentOptions::default);
    let (modelgpt, answers) = crate::modelgpt::ask(plan, &ctl.artifacts).await?;
    let report = match crate::aggregate::build_with(ctl, plan, experiments.as_ref(), &modelgpt).await {
        Ok(r) => r,
        Err(e) => return Err(crate::verify::explain_report_error(ctl, plan, e).await),
    };
    let written = mll_method::report::write_report(&report, out)?;
    crate::modelgpt::write_answers(&answers, out)?;
    info!(run = %plan.run, out = %out.display(), files = written.len(), "wrote the report");
    let state = if status.state == RunState::Done { RunState::Done } else { RunState::Failed };
    ctl.store.set_state(&plan.run, state).await?;
    Ok(status)
}
