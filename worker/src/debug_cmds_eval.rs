//! `worker eval --model DIR --dataset DIR`: a direct zero-shot evaluation of
//! one exported model on one dataset split, without broker or store, for
//! debugging an export. Runs the same code path as evaluate jobs.

use crate::data;
use crate::executor::ExecContext;
use crate::executors::evaluate::EvaluateExecutor;
use crate::executors::model::ModelProvider;
use anyhow::Context;
use mll_common::artifact::ArtifactStore;
use mll_common::job::{DatasetFormat, DatasetRef, EvaluateJob, ModelRef, PromptProtocol, Shard};
use mll_common::output::ClassCounts;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

use mll_common::data::DEFAULT_TEMPLATE;

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Exported model folder (module.pt, model.json, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Dataset split folder (ImageFolder tree or WebDataset shards).
    #[arg(long, value_name = "DIR")]
    pub dataset: PathBuf,
    /// imagefolder or webdataset; detected from nshards.txt when left out.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<DatasetFormat>,
    /// clip_benchmark (mean over templates), mll (first template only) or bare (the class name alone).
    #[arg(long, value_name = "PROTOCOL", default_value = "clip_benchmark", value_parser = parse_protocol)]
    pub protocol: PromptProtocol,
    /// Images per inference batch.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub batch_size: usize,
    /// Image decode threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub decode_threads: usize,
    /// auto, cpu or cuda.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// fp32, or fp16 (CUDA autocast).
    #[arg(long, value_name = "PRECISION", default_value = "fp32")]
    pub precision: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write every sample's prediction to FILE as CSV (index,label,predicted,predicted_class):
    /// which images a model gets wrong, or a per-sample comparison with another tool.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<DatasetFormat, String> {
    match s {
        "imagefolder" => Ok(DatasetFormat::ImageFolder),
        "webdataset" | "wds" => Ok(DatasetFormat::WebDataset),
        o => Err(format!("unknown dataset format '{o}' (expected imagefolder or webdataset)")),
    }
}

fn parse_protocol(s: &str) -> Result<PromptProtocol, String> {
    match s {
        "clip_benchmark" => Ok(PromptProtocol::ClipBenchmark),
        "mll" => Ok(PromptProtocol::Mll),
        "bare" => Ok(PromptProtocol::Bare),
        o => Err(format!("unknown protocol '{o}' (expected clip_benchmark, mll or bare)")),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassReport {
    pub name: String,
    pub n: u64,
    pub top1: u64,
    pub top5: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    pub model: String,
    pub dataset: String,
    pub protocol: String,
    pub images: u64,
    pub top1: f64,
    /// NaN (null in JSON) when there are fewer than 5 classes.
    pub top5: Option<f64>,
    pub mean_per_class_recall: f64,
    pub classes: Vec<ClassReport>,
}

impl EvalReport {
    pub fn new(model: String, dataset: String, protocol: String, names: &[String], counts: &ClassCounts) -> Self {
        let images: u64 = counts.n.iter().sum();
        let frac = |a: u64, b: u64| if b == 0 { f64::NAN } else { a as f64 / b as f64 };
        let recalls: Vec<f64> = counts.n.iter().zip(&counts.top1).filter(|(n, _)| **n > 0).map(|(n, t)| frac(*t, *n)).collect();
        EvalReport {
            model,
            dataset,
            protocol,
            images,
            top1: frac(counts.top1.iter().sum(), images),
            top5: (names.len() >= 5).then(|| frac(counts.top5.iter().sum(), images)),
            mean_per_class_recall: if recalls.is_empty() { f64::NAN } else { recalls.iter().sum::<f64>() / recalls.len() as f64 },
            classes: names
                .iter()
                .enumerate()
                .map(|(i, name)| ClassReport { name: name.clone(), n: counts.n[i], top1: counts.top1[i], top5: counts.top5[i] })
                .collect(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("model {}\ndataset {} ({} images, protocol {})\n\n", self.model, self.dataset, self.images, self.protocol);
        let w = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(5).clamp(5, 40);
        s += &format!("{:<w$}  {:>6}  {:>6}  {:>6}  {:>7}\n", "class", "n", "top1", "top5", "acc");
        for c in &self.classes {
            let acc = if c.n == 0 { "-".to_string() } else { format!("{:.4}", c.top1 as f64 / c.n as f64) };
            s += &format!("{:<w$}  {:>6}  {:>6}  {:>6}  {:>7}\n", c.name, c.n, c.top1, c.top5, acc);
        }
        s += &format!("\ntop-1 accuracy {:.4}\n", self.top1);
        match self.top5 {
            Some(t) => s += &format!("top-5 accuracy {t:.4}\n"),
            None => s += "top-5 accuracy n/a (fewer than 5 classes)\n",
        }
        s += &format!("mean per-class recall {:.4}\n", self.mean_per_class_recall);
        s
    }
}

/// Evaluates with a given model provider (the CLI passes the engine's cache).
pub fn evaluate_with(models: Arc<dyn ModelProvider>, args: &EvalArgs) -> anyhow::Result<EvalReport> {
    let format = args.format.unwrap_or_else(|| data::detect_format(&args.dataset));
    let ds = data::open(&args.dataset, format)?;
    let count = ds.count()?;
    let classnames = ds.classnames().with_context(|| {
        format!(
            "{} has no classnames.txt (looked in the folder, and for WebDataset shards also in the folder above, \
                 CLIP_benchmark's place): add one, one class name per line, in label order",
            args.dataset.display()
        )
    })?;
    let templates = ds.templates()?.unwrap_or_else(|| vec![DEFAULT_TEMPLATE.to_string()]);
    drop(ds);
    let job = EvaluateJob {
        model: ModelRef { key: args.model.display().to_string(), artifact: String::new() },
        dataset: DatasetRef { name: args.dataset.display().to_string(), format, path: String::new() },
        shard: Shard { index: 0, count: 1, start: 0, end: count },
        classnames: classnames.clone().into(),
        templates: templates.into(),
        protocol: args.protocol,
        keep_probabilities: args.predictions.is_some(),
        dataset_samples: count,
    };
    let exec = EvaluateExecutor::new(models, args.batch_size, args.decode_threads)?;
    // No artifacts are written (keep_probabilities is off); the context only
    // carries the cancellation flag here.
    let scratch = std::env::temp_dir().join("mll-worker-eval");
    let ctx = ExecContext::new(ArtifactStore::new(&scratch), scratch);
    let (acc, protocol) = exec
        .evaluate(&job, &args.model, &args.dataset, &ctx)
        .map_err(|e| anyhow::anyhow!("evaluating {} on {}: {e}", args.model.display(), args.dataset.display()))?;
    if let (Some(path), Some(rows)) = (&args.predictions, acc.predictions()) {
        write_predictions(path, &rows, &classnames)?;
    }
    Ok(EvalReport::new(job.model.key, job.dataset.name, protocol, &classnames, &acc.counts))
}

/// `--predictions`: one CSV row per sample, in the dataset's order.
fn write_predictions(path: &std::path::Path, rows: &[(i64, usize)], classnames: &[String]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot write --predictions {}", path.display()))?;
    w.write_record(["index", "label", "predicted", "predicted_class"])?;
    for (i, (label, predicted)) in rows.iter().enumerate() {
        w.write_record([i.to_string(), label.to_string(), predicted.to_string(), classnames[*predicted].clone()])?;
    }
    w.flush().with_context(|| format!("cannot write --predictions {}", path.display()))?;
    Ok(())
}

/// Evaluates on the engine (a model cache on the chosen device).
pub fn report(args: &EvalArgs) -> anyhow::Result<EvalReport> {
    let device = crate::engine::pick_device(args.device.parse::<crate::engine::DeviceChoice>().map_err(anyhow::Error::msg)?)?;
    let precision: crate::engine::Precision = args.precision.parse()?;
    // One model: the cache only needs room for it.
    let cache = crate::engine::ModelCache::new(device, precision, u64::MAX);
    evaluate_with(Arc::new(cache), args)
}

/// `worker eval`: evaluates and prints per-class counts and accuracy.
pub fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let r = report(&args)?;
    print_report(&r, args.json)
}

/// Prints the report as text or JSON.
pub fn print_report(report: &EvalReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
