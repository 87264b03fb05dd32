//! `verify`: check every committed result of a run and the artifacts it
//! names; with `--repair`, drop the bad ones and compute exactly those again.

use super::context::{cluster, cluster_miss_hint, local_dir, local_run, locate, run_id, Place};
use crate::verify::{check, delete_damaged, repair};
use clap::Args;
use mll_common::config::Settings;
use mll_common::queue::memory::MemoryQueue;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct VerifyArgs {
    /// Run id (the spec's `name`).
    #[arg(value_name = "RUN")]
    run: String,
    /// Drop the bad results and publish exactly those jobs again.
    #[arg(long)]
    repair: bool,
    /// Print {run, checked, bad: [{job, stage, model, dataset, what, reason}], indexes_checked,
    /// bad_indexes: [{path, reason}], llm_answers_checked, bad_llm_answers: [{path, reason}],
    /// republished} as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    place: Place,
    /// The local run's output folder, the --out of `run --local` (default out/<RUN>); implies --local.
    #[arg(long, value_name = "DIR", alias = "out")]
    run_dir: Option<PathBuf>,
}

/// `coordinator verify`: checks, prints, repairs. Fails (exit 1) when damaged
/// results were found and not repaired.
pub async fn verify(settings: &Settings, config: Option<&Path>, args: &VerifyArgs) -> anyhow::Result<()> {
    let run = &run_id(&args.run)?;
    let (repair_them, json) = (args.repair, args.json);
    let at = locate(&args.place, config, args.run_dir.as_ref().map(|_| "--run-dir"))?;
    let local_out = at.is_local().then(|| local_dir(run.as_str(), args.run_dir.as_deref()));
    let ctl = match &local_out {
        // No queue consumer: the next `run --local` publishes what is missing.
        Some(out) => local_run(settings, run.as_str(), out, &at, &MemoryQueue::new(1))?,
        None => cluster(settings).await?,
    };
    let submission = ctl.saved_submission(run).map_err(|e| cluster_miss_hint(e.into(), run.as_str(), &at))?;
    let plan = submission.plan()?;
    let mut v = check(&ctl, &plan).await?;
    if repair_them && !v.bad.is_empty() {
        v.republished = Some(repair(&ctl, &plan, &v.bad, local_out.is_none()).await?);
    }
    if repair_them {
        delete_damaged(&v.bad_indexes, "hub index")?;
        delete_damaged(&v.bad_llm_answers, "kept LLM answer")?;
    }
    if json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("run {}: {} committed results checked, {} bad", v.run, v.checked, v.bad.len());
        if v.indexes_checked > 0 {
            println!("hub index: {} files checked, {} damaged", v.indexes_checked, v.bad_indexes.len());
        }
        for b in &v.bad_indexes {
            println!("  damaged hub index {}: {}", b.path, b.reason);
        }
        if repair_them && !v.bad_indexes.is_empty() {
            println!("deleted {} damaged hub index files; the next `select` or `adapt` rebuilds them", v.bad_indexes.len());
        }
        if v.llm_answers_checked > 0 {
            println!(
                "kept LLM answers (the artifact store's, shared by its runs): {} checked, {} damaged",
                v.llm_answers_checked,
                v.bad_llm_answers.len()
            );
        }
        for b in &v.bad_llm_answers {
            println!("  damaged LLM answer {}: {}", b.path, b.reason);
        }
        if repair_them && !v.bad_llm_answers.is_empty() {
            println!("deleted {} damaged LLM answers; they are asked for again when next needed", v.bad_llm_answers.len());
        }
        for b in &v.bad {
            println!(
                "  bad {} job {} ({}; model {}; dataset {}): {}",
                b.stage,
                b.job,
                b.what,
                b.model.as_deref().unwrap_or("-"),
                b.dataset.as_deref().unwrap_or("-"),
                b.reason
            );
        }
        match (v.republished, &local_out) {
            (Some(n), None) => println!("dropped {} bad results and republished {n} jobs", v.bad.len()),
            (Some(_), Some(out)) => println!(
                "dropped {} bad results; run `coordinator run --local --benchmark SPEC --out {}` again to compute them",
                v.bad.len(),
                out.display()
            ),
            (None, _) => {}
        }
    }
    if !v.bad_indexes.is_empty() && !repair_them {
        anyhow::bail!(
            "{} damaged hub index files in run {run}; `coordinator verify {run} --repair` deletes them (they are rebuilt from the label artifacts)",
            v.bad_indexes.len()
        );
    }
    if !v.bad_llm_answers.is_empty() && !repair_them {
        anyhow::bail!(
            "{} damaged kept LLM answers; `coordinator verify {run} --repair` deletes them (they are asked for again when next needed)",
            v.bad_llm_answers.len()
        );
    }
    if !v.bad.is_empty() && v.republished.is_none() {
        anyhow::bail!(
            "{} damaged results in run {run}; `coordinator verify {run} --repair` drops them and computes them again",
            v.bad.len()
        );
    }
    Ok(())
}
