//! New tasks against a labelled hub (the paper's Algorithm 1 as a service):
//! `select` picks per-class models from class names alone;
//! `adapt` then evaluates only the union of the picked models on the task's
//! images, as an ordinary run (deterministic ids, exactly-once results,
//! `status`/`cancel`/resume), and reuses them with the hub's ensemble
//! weighting into per-image predictions.
//!
//! - `task` — class lists, captions and task folders (all input checks);
//! - `class_captions` — a task's class captions written by a chat model;
//! - `select` — embedding a task's classes and scoring the hub's models;
//! - `write` — predictions.csv and adapt.json, written whole or not at all.

pub mod class_captions;
pub mod select;
pub mod task;
mod write;

use crate::aggregate::{pair_result, Outputs};
use crate::control::{RunControl, Submission};
use crate::drive::{self, DriveOptions};
use crate::hub::{input_error, Hub};
use crate::spec::{EnsembleWeight, TargetDataset};
use mll_common::ids::sha256_hex;
use mll_common::store::RunState;
use mll_method::{Predictions, ReusePool};
use ndarray::ArrayView2;
use select::{derived_run, derived_spec, embed_classes, select_on_hub, union_of, SelectReport};
use serde::Serialize;
use std::path::{Path, PathBuf};
use task::{open_task, ClassTexts, TaskFolder};

pub use write::{write_outputs, PredictionRow};

/// The dataset name of the task inside its adapt run.
const TASK: &str = "task";

pub const ADAPT_FORMAT_VERSION: u32 = 1;

pub struct AdaptOptions {
    pub task: PathBuf,
    pub k: Option<usize>,
    pub captions: Option<PathBuf>,
    /// Writes the class captions when `captions` is None.
    pub captioner: Option<class_captions::ClassCaptioner>,
    /// Default out/<adapt run>.
    pub out: Option<PathBuf>,
    /// Wait for the evaluate jobs and write the outputs (local mode always does).
    pub wait: bool,
    pub drive: DriveOptions,
}

/// The k to use: `--k`, else the hub's first.
pub fn k_for(hub: &Hub, k: Option<usize>) -> anyhow::Result<usize> {
    match k {
        Some(0) => Err(input_error("--k must be at least 1")),
        Some(k) if k > hub.spec().hub.len() => Err(input_error(format!(
            "--k {k} asks for more models per class than hub '{}' has ({}); pass --k {} or less",
            hub.run(),
            hub.spec().hub.len(),
            hub.spec().hub.len()
        ))),
        Some(k) => Ok(k),
        None => Ok(hub.spec().method.k.first().copied().unwrap_or(1)),
    }
}

/// Everything `adapt.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptReport {
    pub format_version: u32,
    pub hub: String,
    /// The adapt run (`coordinator status RUN`).
    pub run: String,
    pub task: TaskInfo,
    pub k: usize,
    pub ensemble_weight: EnsembleWeight,
    pub selection: SelectReport,
    /// Hub models evaluated on the task (the union of the per-class picks), hub order.
    pub models_run: Vec<String>,
    pub hub_models: usize,
    /// Evaluate jobs of the adapt run, and how many this command published
    /// (the others had results already).
    pub evaluate_jobs: usize,
    pub published: usize,
    pub cost: Cost,
    /// Top-1 of the ensemble against the task's labels; null when unlabelled.
    pub accuracy: Option<f64>,
    pub predictions: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskInfo {
    pub path: String,
    pub format: mll_common::job::DatasetFormat,
    pub classes: Vec<String>,
    pub templates: Vec<String>,
    pub samples: u64,
    pub labelled: bool,
}

/// Reuse cost against evaluating every hub model on the task.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Σ over run models of GFLOPs per image × images (the spec's `gflops`).
    pub gflop_used: Option<f64>,
    /// The same for every hub model.
    pub gflop_whole_hub: Option<f64>,
    /// Recorded execution seconds of the adapt run's evaluate jobs (worker
    /// time from reading the first image to the last probability).
    pub gpu_seconds_used: Option<f64>,
    /// Every hub model on this task: each model's recorded seconds per image on
    /// the hub's own datasets × the task's images; a model without records
    /// is scaled from the recorded ones by its GFLOPs.
    pub gpu_seconds_whole_hub_estimate: Option<f64>,
    /// The estimate for the models run, on the same basis (so the two
    /// estimates compare like with like).
    pub gpu_seconds_used_estimate: Option<f64>,
    /// How the estimate was made.
    pub estimate_basis: String,
}

pub enum AdaptOutcome {
    /// Without --wait: the evaluate jobs are published.
    Submitted {
        run: String,
        jobs: usize,
        published: usize,
    },
    Done {
        report: Box<AdaptReport>,
        out: PathBuf,
    },
}

fn cost(hub: &Hub, used: &[usize], samples: u64, seconds_used: Option<f64>) -> Cost {
    let g = hub.gflops();
    let sum = |ms: &mut dyn Iterator<Item = usize>| ms.map(|m| g[m]).sum::<Option<f64>>().map(|x| x * samples as f64);
    let gflop_used = sum(&mut used.iter().copied());
    let gflop_whole_hub = sum(&mut (0..g.len()));
    let (per_image, basis) = whole_hub_rates(&hub.evaluate_seconds_per_image(), &g);
    let estimate = |ms: &mut dyn Iterator<Item = usize>| ms.map(|m| per_image[m]).sum::<Option<f64>>().map(|x| x * samples as f64);
    // Six decimals, as report.json: sums of floats would print as 7871.999999999999.
    let r = |x: Option<f64>| x.map(round6);
    Cost {
        gflop_used: r(gflop_used),
        gflop_whole_hub: r(gflop_whole_hub),
        gpu_seconds_used: r(seconds_used),
        gpu_seconds_whole_hub_estimate: r(estimate(&mut (0..g.len()))),
        gpu_seconds_used_estimate: r(estimate(&mut used.iter().copied())),
        estimate_basis: basis,
    }
}

/// Rounded to 6 decimals (the precision of every output file).
fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        x
    }
}

/// Seconds per image of every hub model: recorded where the hub has records,
/// else scaled from the recorded models by GFLOPs (seconds per GFLOP pooled
/// over the recorded models that have `gflops`). None where neither works.
pub fn whole_hub_rates(recorded: &[Option<f64>], gflops: &[Option<f64>]) -> (Vec<Option<f64>>, String) {
    let (mut s, mut f) = (0.0, 0.0);
    for (r, g) in recorded.iter().zip(gflops) {
        if let (Some(r), Some(g)) = (r, g) {
            s += r;
            f += g;
        }
    }
    let per_gflop = (f > 0.0).then(|| s / f);
    let rates: Vec<Option<f64>> = recorded.iter().zip(gflops).map(|(r, g)| r.or_else(|| per_gflop.zip(*g).map(|(p, g)| p * g))).collect();
    let n_rec = recorded.iter().filter(|r| r.is_some()).count();
    let n_scaled = rates.iter().zip(recorded).filter(|(r, rec)| r.is_some() && rec.is_none()).count();
    let basis = if rates.iter().any(Option::is_none) {
        format!(
            "no whole-hub estimate: {} of {} hub models have neither recorded evaluate durations in the hub nor `gflops` in its spec",
            rates.iter().filter(|r| r.is_none()).count(),
            rates.len()
        )
    } else {
        format!(
            "each hub model's recorded evaluate seconds per image on the hub's datasets ({n_rec} models){} × the task's images",
            if n_scaled > 0 { format!("; {n_scaled} models without records scaled by GFLOPs from those") } else { String::new() }
        )
    };
    (rates, basis)
}

pub async fn adapt(ctl: &RunControl, embed_ctl: &RunControl, hub: &Hub, o: &AdaptOptions) -> anyhow::Result<AdaptOutcome> {
    let k = k_for(hub, o.k)?;
    let task: TaskFolder = open_task(&o.task, &hub.plan.data_root)?;
    let mut classes = ClassTexts::new(task.classnames.clone(), o.captions.as_deref())?;
    if let (None, Some(c)) = (&o.captions, &o.captioner) {
        classes = class_captions::caption(classes, c, &ctl.artifacts).await?;
    }
    let (e_t, embed_run) = embed_classes(embed_ctl, hub, &classes, &o.drive).await?;
    let selection = select_on_hub(hub, &e_t, k)?;
    let used = union_of(&selection, k);
    let spec_hub = &hub.spec().hub;

    // The adapt run: the task as its one dataset, the picked models as its hub.
    let digest = sha256_hex(
        serde_json::to_string(&(hub.run().as_str(), &task.rel, task.format, &task.classnames, &task.templates, task.samples))
            .expect("strings serialise")
            .as_bytes(),
    );
    let run = derived_run(hub.run(), "adapt", &digest);
    let mut spec = derived_spec(hub, &run);
    spec.hub = used.iter().map(|&m| spec_hub[m].clone()).collect();
    spec.method.k = vec![k];
    spec.datasets = vec![TargetDataset {
        name: TASK.into(),
        domain: String::new(),
        task: "classification".into(),
        format: task.format,
        path: task.rel.clone(),
        split: String::new(),
        classnames: task.classnames.clone(),
        templates: task.templates.clone(),
        captions: None,
        class_map: None,
        catalog: None,
    }];
    let plan = crate::plan::plan(&spec, &hub.plan.data_root)?;
    let submission = Submission {
        spec_text: toml::to_string(&spec).map_err(|e| anyhow::anyhow!("writing the adapt run's spec: {e}"))?,
        spec_path: ctl.saved_submission(hub.run())?.spec_path,
    };
    let published = ctl.submit(&plan, &submission, false).await?;
    let jobs = plan.jobs.len();
    tracing::info!(%run, models = used.len(), hub_models = spec_hub.len(), jobs, published, "adapt: evaluate jobs of the selected models");
    if !o.wait {
        return Ok(AdaptOutcome::Submitted { run: run.to_string(), jobs, published });
    }

    let status = drive::wait(ctl, &plan, &o.drive).await?;
    if status.state != RunState::Done {
        let reasons: Vec<String> = status.failures.iter().take(5).map(|f| f.reason.clone()).collect();
        anyhow::bail!(
            "adapt run {run} ended {} ({} jobs failed: {}); nothing was written. `coordinator status {run}` shows it; \
             fix the cause and run the same command again (finished jobs are kept)",
            status.state,
            status.failures.len(),
            reasons.join("; ")
        );
    }
    ctl.store.set_state(&run, RunState::Done).await?;

    let outs = Outputs::load(ctl, &plan).await?;
    let recorded = crate::hub::evaluate_rates(&plan, &outs);
    let seconds_used = (recorded.iter().all(Option::is_some)).then(|| recorded.iter().flatten().sum::<f64>() * task.samples as f64);
    let mut loaded: Vec<Option<Predictions>> = vec![None; spec_hub.len()];
    for &m in &used {
        let pr = pair_result(&plan, &outs, &ctl.artifacts, &spec_hub[m].key, TASK)?;
        loaded[m] = Some(pr.predictions.ok_or_else(|| {
            anyhow::anyhow!(
                "adapt run {run}: model {} has no per-sample probabilities (keep_probabilities is off in the hub's spec?)",
                spec_hub[m].key
            )
        })?);
    }
    let views: Vec<Option<ArrayView2<f32>>> = loaded.iter().map(|p| p.as_ref().map(|p| p.probs.view())).collect();
    let weighting = hub.spec().method.ensemble_weight;
    let mut pool = ReusePool::new(views, weighting).map_err(|e| anyhow::anyhow!("adapt run {run}: {e}"))?;
    for (m, p) in loaded.iter().enumerate() {
        if let Some(h) = p.as_ref().and_then(|p| p.entropy.as_ref()) {
            pool.set_entropy(m, h).map_err(|e| anyhow::anyhow!("adapt run {run}: {e}"))?;
        }
    }
    let class_models = &selection.top_k[&k];
    let preds = pool.predict(class_models).map_err(|e| anyhow::anyhow!("adapt run {run}: {e}"))?;
    anyhow::ensure!(
        preds.len() == task.keys.len(),
        "adapt run {run}: {} predictions for {} task images (was the task folder changed while it ran?)",
        preds.len(),
        task.keys.len()
    );
    let conf = pool.confidences(&preds, class_models).map_err(|e| anyhow::anyhow!("adapt run {run}: {e}"))?;
    let labels = &loaded[used[0]].as_ref().expect("loaded").labels;
    let accuracy = task.labelled.then(|| round6(preds.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / preds.len() as f64));
    let rows: Vec<PredictionRow> = preds
        .iter()
        .enumerate()
        .map(|(x, &y)| PredictionRow {
            key: task.keys[x].clone(),
            predicted: task.classnames[y].clone(),
            confidence: conf[x],
            models: class_models[y].iter().map(|&m| spec_hub[m].key.clone()).collect::<Vec<_>>().join(";"),
            label: if task.labelled { task.classnames[labels[x]].clone() } else { String::new() },
        })
        .collect();
    let report = AdaptReport {
        format_version: ADAPT_FORMAT_VERSION,
        hub: hub.run().to_string(),
        run: run.to_string(),
        task: TaskInfo {
            path: task.rel.clone(),
            format: task.format,
            classes: task.classnames.clone(),
            templates: task.templates.clone(),
            samples: task.samples,
            labelled: task.labelled,
        },
        k,
        ensemble_weight: weighting,
        selection: select::report(hub, &classes, &selection, k, &embed_run),
        models_run: used.iter().map(|&m| spec_hub[m].key.clone()).collect(),
        hub_models: spec_hub.len(),
        evaluate_jobs: jobs,
        published,
        cost: cost(hub, &used, task.samples, seconds_used),
        accuracy,
        predictions: "predictions.csv".into(),
    };
    let out = o.out.clone().unwrap_or_else(|| PathBuf::from("out").join(run.as_str()));
    write_outputs(&out, &rows, &report)?;
    Ok(AdaptOutcome::Done { report: Box::new(report), out })
}

/// The human summary of a finished adapt.
pub fn render_text(r: &AdaptReport, out: &Path) -> String {
    let mut s = format!("adapt run {} on hub {}: {} images, {} classes, k = {}\n", r.run, r.hub, r.task.samples, r.task.classes.len(), r.k);
    s.push_str(&format!(
        "models run: {} of {} ({}); evaluate jobs: {} ({} published now)\n",
        r.models_run.len(),
        r.hub_models,
        r.models_run.join(", "),
        r.evaluate_jobs,
        r.published
    ));
    let c = &r.cost;
    if let (Some(u), Some(a)) = (c.gflop_used, c.gflop_whole_hub) {
        s.push_str(&format!(
            "compute: {u:.0} of the whole hub's {a:.0} GFLOP on these images ({:.0}%)\n",
            100.0 * u / a.max(f64::MIN_POSITIVE)
        ));
    }
    if let (Some(u), Some(a)) = (c.gpu_seconds_used_estimate, c.gpu_seconds_whole_hub_estimate) {
        s.push_str(&format!(
            "worker seconds at the hub's recorded rates (GPU-seconds on GPU workers): {u:.1} for the models run, {a:.1} for the whole hub{}\n",
            c.gpu_seconds_used.map(|x| format!(" (this run's jobs recorded {x:.1})")).unwrap_or_default()
        ));
    }
    match r.accuracy {
        Some(a) => s.push_str(&format!("accuracy (top-1 against the task's labels): {a:.4}\n")),
        None => s.push_str("accuracy: none (the task's images are unlabelled)\n"),
    }
    s.push_str(&format!("predictions: {}\nsummary: {}\n", out.join("predictions.csv").display(), out.join("adapt.json").display()));
    s
}

#[cfg(test)]
mod tests {
    use super::whole_hub_rates;

    #[test]
    fn models_without_records_are_scaled_by_gflops_from_the_recorded_ones() {
        // 2 s/image at 10 GFLOP and 6 s/image at 30 GFLOP: 0.2 s per GFLOP pooled.
        let (r, basis) = whole_hub_rates(&[Some(2.0), Some(6.0), None], &[Some(10.0), Some(30.0), Some(20.0)]);
        assert_eq!(r, [Some(2.0), Some(6.0), Some(4.0)]);
        assert!(basis.contains("1 models without records scaled by GFLOPs"), "{basis}");
        let (r, basis) = whole_hub_rates(&[Some(2.0), None], &[None, Some(5.0)]);
        assert_eq!(r, [Some(2.0), None]);
        assert!(basis.starts_with("no whole-hub estimate: 1 of 2"), "{basis}");
    }
}
