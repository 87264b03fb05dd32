//! `worker run`: connects the loop to RabbitMQ and Redis, serves /metrics and
//! turns SIGTERM/SIGINT into a graceful stop.

use crate::consume::{Executors, LoopOptions, LoopStats, WorkerLoop};
use crate::executor::ExecContext;
use mll_common::artifact::ArtifactStore;
use mll_common::config::Settings;
use mll_common::queue::amqp::AmqpQueue;
use mll_common::store::redis::RedisStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::info;

pub fn loop_options(settings: &Settings, tag: String, exit_when_idle: Option<Duration>) -> LoopOptions {
    let w = &settings.worker;
    LoopOptions {
        consumer_tag: tag,
        max_message_bytes: settings.broker.max_message_bytes,
        job_timeout: Duration::from_secs(w.job_timeout_s),
        max_attempts: w.max_attempts,
        retry_backoff: Duration::from_millis(w.retry_backoff_ms),
        shutdown_grace: Duration::from_secs(w.shutdown_grace_s),
        exit_when_idle,
        model_cache_bytes: w.model_cache_mb << 20,
        ..LoopOptions::default()
    }
}

/// A watch channel that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    mll_common::shutdown::signal()
}

pub async fn run(settings: Settings, executors: Executors, exit_when_idle: Option<Duration>) -> anyhow::Result<LoopStats> {
    let addr = mll_common::telemetry::serve_metrics(settings.worker.metrics_addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot serve metrics on {}: {e} (set worker.metrics_addr or MLL__WORKER__METRICS_ADDR, e.g. 127.0.0.1:0)",
            settings.worker.metrics_addr
        )
    })?;
    info!(%addr, "metrics on /metrics");
    let queue = Arc::new(AmqpQueue::connect(&settings.broker).await?);
    let store = Arc::new(RedisStore::connect(&settings.store).await?);
    let tag = format!("worker-{}-{}", hostname(), std::process::id());
    let ctx = ExecContext::new(ArtifactStore::new(&settings.artifacts.root), settings.data.root.clone());
    let wl = WorkerLoop { queue, store, executors, ctx, opts: loop_options(&settings, tag, exit_when_idle) };
    let stats = wl.run(shutdown_signal()).await?;
    info!(
        committed = stats.committed,
        duplicates = stats.duplicates,
        requeued = stats.requeued,
        dead_lettered = stats.dead_lettered,
        cancelled = stats.cancelled,
        ack_false = stats.ack_false,
        "worker stopped"
    );
    Ok(stats)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "host".into())
}
