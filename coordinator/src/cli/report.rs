//! `report`: a run's report printed or written, or one built from a
//! published accuracy table (`--truth`) without any run.

use super::context::{cluster, cluster_miss_hint, local_dir, local_run, locate, run_id, Place};
use crate::control::read_submission;
use crate::spec::BenchmarkSpec;
use anyhow::Context;
use clap::{Args, ValueEnum};
use mll_common::config::Settings;
use mll_common::queue::memory::MemoryQueue;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
    Markdown,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run id; not needed with --truth.
    #[arg(value_name = "RUN")]
    run: Option<String>,
    #[command(flatten)]
    place: Place,
    /// The local run's output folder (default out/<RUN>); implies --local.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Print this format to stdout (when --out is not given).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "markdown")]
    format: ReportFormat,
    /// Write every format into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// External accuracy table (CSV) to use as ground truth (needs --benchmark); a missing
    /// or malformed file exits 2.
    #[arg(long, value_name = "FILE", requires = "benchmark")]
    truth: Option<PathBuf>,
    /// Benchmark spec (for --truth, or to replan a run whose saved spec is gone).
    #[arg(long, value_name = "FILE")]
    benchmark: Option<PathBuf>,
    /// Add the paper's experiments, computed from the committed results without
    /// GPU work: α sweep (0.5–0.9), k sweep (1–6) with its reuse cost, hub growth
    /// (30 seeded orders). With --truth only hub growth (INB, oracle) is possible.
    #[arg(long)]
    experiments: bool,
    /// ModelGPT answers made elsewhere (JSON: {"answers": {"DATASET": ["model key", ...] or
    /// "answer text"}}), used instead of asking the spec's [llm]; docs/method.md, "ModelGPT".
    #[arg(long, value_name = "FILE", conflicts_with = "truth")]
    modelgpt: Option<PathBuf>,
}

pub async fn report(settings: &Settings, config: Option<&Path>, args: ReportArgs) -> anyhow::Result<()> {
    let experiments = args.experiments.then(mll_method::experiments::ExperimentOptions::default);
    let report = if let Some(truth) = &args.truth {
        let spec = BenchmarkSpec::load(args.benchmark.as_deref().expect("clap requires --benchmark"))?;
        crate::aggregate::truth::report_from_truth_with(truth, &spec, experiments.as_ref())?
    } else {
        let run = args.run.as_deref().context("give a run id, or --truth FILE.csv --benchmark SPEC")?;
        let run = run_id(run)?;
        let at = locate(&args.place, config, args.run_dir.as_ref().map(|_| "--run-dir"))?;
        let ctl = if at.is_local() {
            local_run(settings, run.as_str(), &local_dir(run.as_str(), args.run_dir.as_deref()), &at, &MemoryQueue::new(1))?
        } else {
            cluster(settings).await?
        };
        let submission = match &args.benchmark {
            Some(path) => read_submission(path)?,
            None => ctl.saved_submission(&run).map_err(|e| cluster_miss_hint(e.into(), run.as_str(), &at))?,
        };
        let p = submission.plan()?;
        let modelgpt = match &args.modelgpt {
            Some(file) => crate::modelgpt::import(file, &p)?,
            None => {
                let (m, answers) = crate::modelgpt::ask(&p, &ctl.artifacts).await?;
                if let Some(out) = &args.out {
                    crate::modelgpt::write_answers(&answers, out)?;
                }
                m
            }
        };
        match crate::aggregate::build_with(&ctl, &p, experiments.as_ref(), &modelgpt).await {
            Ok(r) => r,
            Err(e) => return Err(crate::verify::explain_report_error(&ctl, &p, e).await),
        }
    };
    match &args.out {
        Some(out) => {
            for path in mll_method::report::write_report(&report, out)? {
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let text = match args.format {
                ReportFormat::Json => mll_method::report::report_json(&report),
                ReportFormat::Csv => mll_method::report::accuracy_matrix_csv(&report),
                ReportFormat::Markdown => mll_method::report::report_markdown(&report),
            };
            print!("{text}");
        }
    }
    Ok(())
}
