//! What several commands share: the cluster's run control or a local run
//! folder's, run ids from the command line, progress options, and how many
//! jobs a waited-for run keeps published.

use crate::control::{Backlog, RunControl};
use crate::drive::DriveOptions;
use crate::plan::Plan;
use mll_common::artifact::ArtifactStore;
use mll_common::config::Settings;
use mll_common::exit::InputError;
use mll_common::queue::amqp::AmqpQueue;
use mll_common::queue::memory::MemoryQueue;
use mll_common::store::embedded::EmbeddedStore;
use mll_common::store::redis::RedisStore;
use mll_common::RunId;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A run id given on the command line; a bad one is an input error (exit 2).
pub fn run_id(run: &str) -> anyhow::Result<RunId> {
    RunId::new(run).map_err(|e| InputError(format!("run id '{run}': {e}")).into())
}

/// The default output folder of a run: `out/<run>`.
pub fn default_out(run: &str) -> PathBuf {
    PathBuf::from("out").join(run)
}

/// Run control over the cluster's RabbitMQ and Redis.
pub async fn cluster(settings: &Settings) -> anyhow::Result<RunControl> {
    let queue = AmqpQueue::connect(&settings.broker).await?;
    let store = RedisStore::connect(&settings.store).await?;
    Ok(RunControl {
        queue: Arc::new(queue),
        store: Arc::new(store),
        artifacts: ArtifactStore::new(&settings.artifacts.root),
        publish_batch: settings.coordinator.publish_batch,
    })
}

/// Run control over a local-mode run folder (`coordinator run --local --out
/// DIR`): its journal and artifacts, with `queue` for the jobs (in-process
/// workers consume it, or nobody: the next `run --local` publishes what is
/// missing).
pub fn local_control(settings: &Settings, dir: &Path, queue: &MemoryQueue) -> anyhow::Result<RunControl> {
    let journal = dir.join("state.journal");
    if !journal.is_file() {
        return Err(InputError(format!(
            "{} is not a local-mode run folder (no state.journal); `coordinator run --local --benchmark SPEC --out {}` makes one",
            dir.display(),
            dir.display()
        ))
        .into());
    }
    Ok(RunControl {
        queue: Arc::new(queue.clone()),
        store: Arc::new(EmbeddedStore::open(&journal)?),
        artifacts: ArtifactStore::new(dir.join("artifacts")),
        publish_batch: settings.coordinator.publish_batch,
    })
}

/// Serves the coordinator's /metrics; a port in use is a warning, not a failure.
pub async fn serve_metrics(settings: &Settings) {
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
pub fn window(settings: &Settings, plan: &Plan, wait: bool) -> usize {
    match settings.coordinator.window {
        0 => usize::MAX,
        _ if !wait => usize::MAX,
        w => w.saturating_mul(plan.spec.priority as usize),
    }
}

/// Says, when some jobs were held back, that they follow as others finish.
pub fn held_back(plan: &Plan, published: usize, backlog: &Backlog) {
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

/// Progress and patience while following a run.
pub fn drive_options(settings: &Settings) -> DriveOptions {
    DriveOptions {
        poll: Duration::from_millis(settings.coordinator.poll_interval_ms),
        patience: Duration::from_secs(settings.coordinator.patience_s),
        progress: std::io::stderr().is_terminal(),
        experiments: false,
    }
}
