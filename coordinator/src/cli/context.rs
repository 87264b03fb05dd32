//! What several commands share: where a run named on the command line is
//! (the cluster, or a local-mode run folder: [`Place`], [`locate`]), the
//! cluster's run control or a local run folder's, run ids from the command
//! line, progress options, and how many jobs a waited-for run keeps published.

use crate::control::{Backlog, RunControl};
use crate::drive::DriveOptions;
use crate::plan::Plan;
use clap::Args;
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

/// The rule [`locate`] follows, for the `--help` of every command that finds a run by name.
pub const WHERE_RUNS_ARE: &str = "Where runs are found: with --local, local-mode runs (`coordinator run --local`), each in \
its output folder, out/<RUN> under the current folder unless a folder option names it; with --cluster, the RabbitMQ and \
Redis of the configuration. Without either, the cluster is used when the configuration names one (an MLL__BROKER__* or \
MLL__STORE__* environment variable is set, or the --config profile or $MLL_CONFIG_DIR/default.toml has a [broker] or \
[store] table), and local runs otherwise. `coordinator config` shows the settings in effect.";

/// `--local` and `--cluster`: where the command looks for runs ([`WHERE_RUNS_ARE`]).
#[derive(Args, Clone, Debug, Default)]
pub struct Place {
    /// Local-mode runs (`coordinator run --local`): the run's output folder holds its state
    /// (default out/<RUN>). The default when no broker or store is configured.
    #[arg(long, conflicts_with = "cluster")]
    pub local: bool,
    /// Runs on RabbitMQ and Redis (broker.url, store.url), even when no broker or store is
    /// configured (then the defaults on 127.0.0.1). The default when one is configured.
    #[arg(long)]
    pub cluster: bool,
}

/// Where the runs a command names are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In local-mode output folders.
    Local,
    Cluster,
}

/// Where runs are, and why (for messages).
#[derive(Debug, Clone)]
pub struct Located {
    pub location: Location,
    pub why: String,
}

impl Located {
    pub fn is_local(&self) -> bool {
        self.location == Location::Local
    }
}

/// Where the runs a command names are: `--local` (or a run folder given with
/// `dir_given`), `--cluster`, else the configuration decides ([`WHERE_RUNS_ARE`]).
pub fn locate(place: &Place, config: Option<&Path>, dir_given: Option<&str>) -> anyhow::Result<Located> {
    if place.cluster {
        if let Some(flag) = dir_given {
            return Err(InputError(format!("{flag} names a local run folder; it cannot be combined with --cluster")).into());
        }
        return Ok(Located { location: Location::Cluster, why: "--cluster".into() });
    }
    if place.local {
        return Ok(Located { location: Location::Local, why: "--local".into() });
    }
    if let Some(flag) = dir_given {
        return Ok(Located { location: Location::Local, why: flag.to_string() });
    }
    Ok(match configured_cluster(config) {
        Some(why) => Located { location: Location::Cluster, why },
        None => Located { location: Location::Local, why: "no broker or store is configured".into() },
    })
}

/// Why the configuration names a cluster, if it does: an `MLL__BROKER__*` or
/// `MLL__STORE__*` variable, or a `[broker]` or `[store]` table in the profile
/// or in `$MLL_CONFIG_DIR/default.toml`.
pub fn configured_cluster(config: Option<&Path>) -> Option<String> {
    let vars = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    let base = std::env::var_os("MLL_CONFIG_DIR").map(|d| Path::new(&d).join("default.toml"));
    cluster_named_by(vars, base.as_deref(), config)
}

/// [`configured_cluster`] over the given variable names and files.
fn cluster_named_by(vars: impl Iterator<Item = String>, base: Option<&Path>, config: Option<&Path>) -> Option<String> {
    let mut vars: Vec<String> = vars.filter(|k| k.starts_with("MLL__BROKER__") || k.starts_with("MLL__STORE__")).collect();
    vars.sort();
    if let Some(v) = vars.first() {
        return Some(format!("{v} is set"));
    }
    for file in base.into_iter().chain(config) {
        let Ok(table) = std::fs::read_to_string(file).unwrap_or_default().parse::<toml::Table>() else { continue };
        if let Some(section) = ["broker", "store"].into_iter().find(|s| table.contains_key(*s)) {
            return Some(format!("{} has a [{section}] table", file.display()));
        }
    }
    None
}

/// The local-mode folder of `run`: `dir`, else out/<run>.
pub fn local_dir(run: &str, dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf).unwrap_or_else(|| default_out(run))
}

/// Opens the local run `run` in `dir` (the run's folder), saying, when it is
/// not there, why local runs were looked for and what finds the others.
pub fn local_run(settings: &Settings, run: &str, dir: &Path, at: &Located, queue: &MemoryQueue) -> anyhow::Result<RunControl> {
    if !dir.join("state.journal").is_file() {
        let found = local_runs(Path::new("out"));
        let others = if found.is_empty() {
            "there is no local run folder under out/".to_string()
        } else {
            format!("local run folders under out/: {}", found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
        };
        let cluster = if at.why.starts_with("--") {
            format!("drop {} and pass --cluster", at.why)
        } else {
            "pass --cluster (or set MLL__BROKER__URL and MLL__STORE__URL)".to_string()
        };
        return Err(InputError(format!(
            "no local run '{run}' in {} (no state.journal there; local runs were looked for: {}); {others}. \
             `coordinator run --local --benchmark SPEC --out {}` makes one; for a run on RabbitMQ and Redis, {cluster}",
            dir.display(),
            at.why,
            dir.display()
        ))
        .into());
    }
    local_control(settings, dir, queue)
}

/// The local-mode run folders under `root`: every `<root>/<folder>` with a
/// state.journal, sorted.
pub fn local_runs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.join("state.journal").is_file()).collect();
    dirs.sort();
    dirs
}

/// The cluster's answer when `run` is not there, with where a local run of
/// that name is (when one is): `--local` finds it.
pub fn cluster_miss_hint(e: anyhow::Error, run: &str, at: &Located) -> anyhow::Error {
    let dir = default_out(run);
    let missing = |c: &(dyn std::error::Error + 'static)| {
        let s = c.to_string();
        s.contains("not in the store") || s.contains("no saved spec") || s.contains("is not a run of this store")
    };
    if dir.join("state.journal").is_file() && e.chain().any(missing) {
        return e.context(format!(
            "a local run '{run}' is in {} (the cluster was asked because {}): --local finds it",
            dir.display(),
            at.why
        ));
    }
    e
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_or_store_variable_or_table_names_the_cluster() {
        let none = std::iter::empty::<String>;
        assert_eq!(cluster_named_by(none(), None, None), None, "nothing configured: local runs");
        let vars = ["MLL__LOG__LEVEL", "MLL__STORE__KEY_PREFIX", "MLL__BROKER__URL"].map(String::from).into_iter();
        assert_eq!(cluster_named_by(vars, None, None).as_deref(), Some("MLL__BROKER__URL is set"));
        let dir = tempfile::tempdir().unwrap();
        let (local, cluster) = (dir.path().join("local.toml"), dir.path().join("cluster.toml"));
        std::fs::write(&local, "[worker]\nbatch_size = 32\n").unwrap();
        std::fs::write(&cluster, "[store]\nurl = \"redis://redis:6379/0\"\n").unwrap();
        assert_eq!(cluster_named_by(none(), Some(&local), Some(&local)), None, "a profile without [broker] or [store]");
        let why = cluster_named_by(none(), Some(&local), Some(&cluster)).unwrap();
        assert!(why.ends_with("cluster.toml has a [store] table"), "{why}");
        let flags = |local, cluster| Place { local, cluster };
        assert!(locate(&flags(true, false), Some(&cluster), None).unwrap().is_local());
        assert!(!locate(&flags(false, true), None, None).unwrap().is_local());
        assert!(locate(&flags(false, false), None, Some("--run-dir")).unwrap().is_local(), "a run folder means a local run");
        assert!(locate(&flags(false, true), None, Some("--run-dir")).is_err(), "--cluster with a run folder");
    }
}
