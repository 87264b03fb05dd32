//! `status`, `cancel` and `delete`, and the summary printed when a followed
//! run ends.

use super::context::{cluster, cluster_miss_hint, local_dir, local_run, locate, run_id, Located, Place};
use crate::control::{is_internal_run, RunControl, RunStatus};
use clap::Args;
use mll_common::config::Settings;
use mll_common::exit::InputError;
use mll_common::queue::memory::MemoryQueue;
use mll_common::store::RunState;
use mll_common::{RunId, Stage};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct StatusArgs {
    /// Run id (the spec's `name`; an adapt run's id is printed by `adapt`).
    #[arg(value_name = "RUN")]
    run: String,
    #[command(flatten)]
    place: Place,
    /// The local run's output folder (default out/<RUN>); implies --local.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// One JSON object: {run, state, stages: {stage: {expected, done, failed}}, failures, duplicate_executions}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CancelArgs {
    /// Run id of a running run (the spec's `name`, or the adapt run `adapt` printed).
    #[arg(value_name = "RUN")]
    run: String,
    #[command(flatten)]
    place: Place,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Run id (the spec's `name`, or an adapt run's id).
    #[arg(value_name = "RUN")]
    run: String,
    #[command(flatten)]
    place: Place,
    /// The local run's output folder (default out/<RUN>); implies --local.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Delete without asking (scripts; needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Run control for the run a command names, where [`locate`] says it is.
async fn open(settings: &Settings, run: &RunId, at: &Located, dir: Option<&Path>) -> anyhow::Result<RunControl> {
    if at.is_local() {
        // Nobody consumes this queue: a local run's jobs run in `run --local`.
        local_run(settings, run.as_str(), &local_dir(run.as_str(), dir), at, &MemoryQueue::new(1))
    } else {
        cluster(settings).await
    }
}

pub async fn status(settings: &Settings, config: Option<&Path>, args: &StatusArgs) -> anyhow::Result<()> {
    let run = run_id(&args.run)?;
    let at = locate(&args.place, config, args.run_dir.as_ref().map(|_| "--run-dir"))?;
    let ctl = open(settings, &run, &at, args.run_dir.as_deref()).await?;
    // Read only: the coordinator driving the run drains the dead letters.
    let status = ctl.status(&run).await.map_err(|e| cluster_miss_hint(e.into(), run.as_str(), &at))?;
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

pub async fn cancel(settings: &Settings, config: Option<&Path>, args: &CancelArgs) -> anyhow::Result<()> {
    let run = run_id(&args.run)?;
    let at = locate(&args.place, config, None)?;
    if at.is_local() {
        return Err(InputError(format!(
            "a local run is stopped where it runs (Ctrl-C; finished jobs are kept, and the same command resumes it); \
             `coordinator delete {run}` removes one (local runs were looked for because {}; --cluster cancels a run on \
             RabbitMQ and Redis)",
            at.why
        ))
        .into());
    }
    let ctl = cluster(settings).await?;
    ctl.cancel(&run).await.map_err(|e| cluster_miss_hint(e.into(), run.as_str(), &at))?;
    println!(
        "run {run} cancelled: workers drop its remaining jobs. `coordinator delete {run}` removes it, so that it can be \
         submitted again"
    );
    Ok(())
}

/// `coordinator delete`: a run's keys in Redis and its saved spec (cluster),
/// or the state, artifacts, log and report of a local run's folder; asks first.
pub async fn delete(settings: &Settings, config: Option<&Path>, args: &DeleteArgs) -> anyhow::Result<()> {
    let run = run_id(&args.run)?;
    let at = locate(&args.place, config, args.run_dir.as_ref().map(|_| "--run-dir"))?;
    if at.is_local() {
        let dir = local_dir(run.as_str(), args.run_dir.as_deref());
        let ctl = open(settings, &run, &at, Some(&dir)).await?;
        if ctl.store.meta(&run).await?.is_none() {
            let runs: Vec<String> = ctl.store.runs().await?.iter().map(|r| r.to_string()).filter(|r| !is_internal_run(r)).collect();
            let held = match runs.as_slice() {
                [] => "no run".to_string(),
                [one] => format!("run '{one}': `coordinator delete {one} --run-dir {}` deletes it", dir.display()),
                many => format!("runs {}", many.join(", ")),
            };
            return Err(InputError(format!(
                "{} holds no run '{run}' but {held}. A run made by `select` or `adapt` on a local hub lives in the hub's \
                 folder and goes with it",
                dir.display()
            ))
            .into());
        }
        drop(ctl);
        let doomed = local_files(&dir);
        let what = format!("local run '{run}' in {}: {}", dir.display(), doomed.iter().map(|p| name_of(p)).collect::<Vec<_>>().join(", "));
        if !confirm(&what, args.yes)? {
            println!("nothing deleted");
            return Ok(());
        }
        for p in &doomed {
            let removed = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
            removed.map_err(|e| anyhow::anyhow!("deleting {}: {e}", p.display()))?;
        }
        // The folder goes too when nothing else is in it.
        let _ = std::fs::remove_dir(&dir);
        println!("deleted local run '{run}' ({})", dir.display());
        return Ok(());
    }
    let store = mll_common::store::redis::RedisStore::connect(&settings.store).await?;
    let ctl = cluster(settings).await?;
    let meta = ctl.store.meta(&run).await?;
    let saved = ctl.artifacts.root().join("runs").join(run.as_str());
    if meta.is_none() && !saved.exists() {
        return Err(cluster_miss_hint(ctl.unknown_run(&run).await.into(), run.as_str(), &at));
    }
    if meta.as_ref().is_some_and(|m| m.state == RunState::Running) {
        let status = ctl.status(&run).await?;
        if status.state == RunState::Running {
            return Err(InputError(format!(
                "run '{run}' is running: `coordinator cancel {run}` first (workers then drop its remaining jobs), then delete it"
            ))
            .into());
        }
    }
    let what = format!(
        "run '{run}' ({}): its keys in Redis (store.key_prefix '{}': state, results, failure records) and its saved spec {}; \
         artifacts shared with other runs stay",
        meta.as_ref().map_or("not in the store".to_string(), |m| m.state.to_string()),
        settings.store.key_prefix,
        saved.display()
    );
    if !confirm(&what, args.yes)? {
        println!("nothing deleted");
        return Ok(());
    }
    store.delete_run(&run).await?;
    if saved.exists() {
        std::fs::remove_dir_all(&saved).map_err(|e| anyhow::anyhow!("deleting {}: {e}", saved.display()))?;
    }
    if meta.as_ref().is_some_and(|m| m.state == RunState::Cancelled) {
        let lanes: Vec<mll_common::queue::Lane> = ctl.store.lanes().await.unwrap_or_default().into_iter().map(|(l, _)| l).collect();
        if let Ok((ready, _)) = ctl.queue.depths(&lanes).await {
            if ready > 0 {
                tracing::warn!(
                    queued = ready,
                    "jobs are still queued: workers dropped a cancelled run's jobs, but now run any of them left and commit \
                     their results under the run's name (the same results it would compute again)"
                );
            }
        }
    }
    println!("deleted run '{run}'; submitting it again starts it afresh");
    Ok(())
}

/// What `run --local` writes into a run folder: state, artifacts, log, report.
fn local_files(dir: &Path) -> Vec<PathBuf> {
    const NAMES: [&str; 7] =
        ["state.journal", "state.journal.damaged", "artifacts", "run.log", "report.json", "report.md", "accuracy_matrix.csv"];
    let mut v: Vec<PathBuf> = NAMES.iter().map(|n| dir.join(n)).filter(|p| p.exists()).collect();
    let mut charts: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "svg"))
        .collect();
    charts.sort();
    v.extend(charts);
    v
}

fn name_of(p: &Path) -> String {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if p.is_dir() {
        format!("{name}/")
    } else {
        name
    }
}

/// Asks "delete …? [y/N]" on a terminal; `yes` skips the question. Without
/// a terminal and without --yes it refuses (exit 2).
fn confirm(what: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(InputError(format!("this would delete the {what}; pass --yes to delete without a terminal to ask on")).into());
    }
    eprint!("delete the {what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn print_status(s: &RunStatus) {
    println!("run {}: {}", s.run, s.state);
    let pos = |name: &str| Stage::ALL.iter().position(|x| x.as_str() == name).unwrap_or(usize::MAX);
    let mut stages: Vec<_> = s.stages.iter().collect();
    stages.sort_by_key(|(name, _)| pos(name));
    for (stage, p) in stages {
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
            println!("\n{}", summary_section(&text).trim_end());
            println!("\nreport: {} (report.md: per-dataset rankings, best models, notes and the legend)", out.display());
        }
    }
    if status.state == RunState::Failed {
        anyhow::bail!("{} jobs failed for good; see the failures above and `coordinator resume RUN --retry-failed`", status.failures.len());
    }
    Ok(())
}

/// The summary part of report.md: its accuracy tables and mean ranking
/// quality (up to the per-dataset rankings).
fn summary_section(md: &str) -> &str {
    match md.find("\n## Ranking quality per dataset") {
        Some(i) => &md[..i],
        None => md,
    }
}
