//! Embedded local mode: the same planner, executors and aggregation as the
//! cluster, in one process, with an in-process queue and a store journaled
//! under the output folder. Interrupt it and run it again: finished jobs are
//! kept, the rest run.

use crate::control::{RunControl, RunStatus, Submission};
use crate::drive::{self, DriveOptions};
use crate::plan::Plan;
use mll_common::artifact::ArtifactStore;
use mll_common::config::Settings;
use mll_common::queue::memory::MemoryQueue;
use mll_common::store::embedded::EmbeddedStore;
use mll_common::store::Ledger;
use mll_worker::consume::{LoopStats, WorkerLoop};
use mll_worker::executor::ExecContext;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

pub struct LocalOptions<'a> {
    /// The spec as `coordinator submit` would save it, and its plan.
    pub submission: &'a Submission,
    pub plan: &'a Plan,
    pub out: &'a Path,
    pub workers: usize,
    pub progress: bool,
    /// Add the paper's experiments to the report.
    pub experiments: bool,
}

/// `n` in-process workers (at least one) on `queue`, committing to `store`:
/// local mode's workers, and the embedder `select` and `adapt` run in process.
/// Close the queue to stop them.
pub fn spawn_workers(
    settings: &Settings,
    queue: &MemoryQueue,
    store: Arc<dyn Ledger>,
    artifacts: &ArtifactStore,
    data_root: &Path,
    n: usize,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<LoopStats>>>> {
    let executors = mll_worker::executors::for_worker(settings)?;
    let mut handles = Vec::new();
    for i in 0..n.max(1) {
        let wl = WorkerLoop {
            queue: Arc::new(queue.clone()),
            store: store.clone(),
            executors: executors.clone(),
            ctx: ExecContext::new(artifacts.clone(), data_root.to_path_buf()),
            opts: mll_worker::service::loop_options(settings, format!("local-{i}"), None),
        };
        let sd = shutdown.clone();
        handles.push(tokio::spawn(async move { wl.run(sd).await }));
    }
    Ok(handles)
}

pub async fn run(settings: &Settings, opts: LocalOptions<'_>) -> anyhow::Result<RunStatus> {
    let (plan, submission) = (opts.plan, opts.submission);
    let data_root = plan.data_root.clone();
    std::fs::create_dir_all(opts.out)?;

    let store = Arc::new(EmbeddedStore::open(&opts.out.join("state.journal"))?);
    let queue = MemoryQueue::new(settings.broker.delivery_limit);
    let artifacts = ArtifactStore::new(opts.out.join("artifacts"));
    let ctl = RunControl {
        queue: Arc::new(queue.clone()),
        store: store.clone(),
        artifacts: artifacts.clone(),
        publish_batch: settings.coordinator.publish_batch,
    };
    // The same registration and publishing as `coordinator submit`.
    let published = ctl.submit(plan, submission, false).await?;
    info!(run = %plan.run, jobs = plan.jobs.len(), published, workers = opts.workers, "local run");

    let shutdown = mll_common::shutdown::signal();
    let handles = spawn_workers(settings, &queue, store.clone(), &artifacts, &data_root, opts.workers, &shutdown)?;

    let drive_opts = DriveOptions {
        poll: Duration::from_millis(200),
        patience: Duration::from_secs(settings.coordinator.patience_s),
        progress: opts.progress,
        experiments: opts.experiments,
    };
    let mut workers = tokio::task::JoinSet::new();
    for h in handles {
        workers.spawn(async move { h.await.map_err(|e| anyhow::anyhow!("a worker task failed: {e}")).and_then(|r| r) });
    }
    // A worker that stops with an error (a full disk) ends the run at once:
    // the jobs left would only wait for it.
    let worker_failed = async {
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(Err(e)) => return e,
                Err(e) => return anyhow::anyhow!("a worker task failed: {e}"),
                Ok(Ok(_)) => {}
            }
        }
        std::future::pending().await
    };
    let mut sd = shutdown.clone();
    let result = tokio::select! {
        r = drive::wait_and_report(&ctl, plan, opts.out, &drive_opts) => r,
        _ = sd.wait_for(|v| *v) => Err(mll_common::exit::Interrupted(format!(
            "interrupted: finished jobs are saved in {}; run the same command again to resume",
            opts.out.display()
        )).into()),
        e = worker_failed => Err(e.context(format!("local run stopped; finished jobs are saved in {}", opts.out.display()))),
    };
    queue.close();
    while workers.join_next().await.is_some() {}
    result
}
