//! The evaluate and label executors against the bare image forward, in one
//! process (scripts/gpu-check runs it on the GPU; docs/benchmarks.md, "GPU
//! check: executors against the bare forward").
//!
//! usage: cargo run -p mll-worker --example bench_executors -- --model DIR --dataset DIR
//!        --graph FILE_OR_DIR [--device cpu|cuda] [--precision fp32|fp16] [--batch-size N]
//!        [--decode-threads N] [--top-nodes K] [--repeat R] [--json FILE]
//!
//! One model cache on the device (as `executors::for_worker` builds it) serves
//! both executors. The model is loaded, then one evaluate job and one label job
//! on the first batch warm it up (CUDA kernels, the label executor's node-text
//! cache). Then, R times, interleaved so the three see the same machine load:
//!
//! - an evaluate job over the whole dataset (clip_benchmark protocol, per-sample
//!   probabilities kept and written to the artifact store, as the planner's
//!   default), the `execute()` call timed (the zero-shot classifier it builds
//!   from the class prompts first is also timed alone);
//! - a label job over every graph image (`top_nodes` best nodes per image;
//!   node texts already encoded by the warm-up, as for every shard a worker
//!   runs after the first of a model), the `execute()` call timed;
//! - the bare forward: the engine's image encoder (`LoadedModel::encode_images`,
//!   the call both executors make) on pre-made random batches of the evaluate
//!   job's sizes and count, already on the device, synchronised on CUDA. On
//!   CUDA it is also timed with the batches on the CPU (what the executors
//!   hand it: the host-to-device copy included).
//!
//! Images/s are the best of the R runs; every run's seconds are in the JSON.

use anyhow::{bail, Context};
use clap::Parser;
use mll_common::artifact::ArtifactStore;
use mll_common::job::{DatasetRef, EvaluateJob, LabelJob, ModelRef, PromptProtocol, Shard};
use mll_common::{Job, JobId, JobOutput, JobPayload, RunId};
use mll_worker::data::{self, graph::GraphFile};
use mll_worker::engine::{build_classifier, pick_device, ClassifierProtocol, DeviceChoice, LoadedModel, ModelCache, Precision};
use mll_worker::executor::{ExecContext, Executor};
use mll_worker::executors::evaluate::EvaluateExecutor;
use mll_worker::executors::label::LabelExecutor;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The template used when the dataset has none (as `worker eval`).
use mll_common::data::DEFAULT_TEMPLATE;
/// The evaluate executor's images/s the issue asks for, against the bare forward.
const GOAL: f64 = 0.95;
/// Distinct random batches for the bare forward (cycled over the batch count).
const BARE_BUFFERS: usize = 4;

#[derive(Debug, Parser)]
#[command(about = "Times the evaluate and label executors against the bare image forward")]
struct Args {
    /// Exported model folder (module.pt, model.json, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Dataset split (ImageFolder, WebDataset or flat folder with classnames.txt).
    #[arg(long)]
    dataset: PathBuf,
    /// graph.json, or the folder holding it.
    #[arg(long)]
    graph: PathBuf,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// fp32, or fp16 (CUDA autocast; fp32 on CPU whatever is asked).
    #[arg(long, default_value = "fp32")]
    precision: String,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Image decode threads (0: one per core, the worker's default).
    #[arg(long, default_value_t = 0)]
    decode_threads: usize,
    /// Best nodes stored per graph image (the spec's label_top_nodes, default 32).
    #[arg(long, default_value_t = 32)]
    top_nodes: u32,
    /// Timed runs of each of the three; the best counts.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn job(payload: JobPayload, name: &str) -> anyhow::Result<Job> {
    let run = RunId::new("bench-executors").map_err(anyhow::Error::msg)?;
    Ok(Job { id: JobId::derive(&run, &[name]), run, payload })
}

fn symlink(target: &Path, link: &Path) -> anyhow::Result<()> {
    let target = std::fs::canonicalize(target).with_context(|| format!("{} does not exist", target.display()))?;
    std::os::unix::fs::symlink(&target, link).with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Seconds for one `execute()` call; checks the job's image count.
fn time_job(exec: &dyn Executor, job: &Job, ctx: &ExecContext, images: u64, device: Device) -> anyhow::Result<f64> {
    sync(device);
    let t0 = Instant::now();
    let out = exec.execute(job, ctx).map_err(|e| anyhow::anyhow!("{} job: {e}", job.stage()))?;
    sync(device);
    let secs = t0.elapsed().as_secs_f64();
    let done = match &out {
        JobOutput::Evaluate(o) => o.images,
        JobOutput::Label(o) => o.count,
        other => bail!("unexpected output {other:?}"),
    };
    if done != images {
        bail!("{} job did {done} images, expected {images}", job.stage());
    }
    Ok(secs)
}

/// Seconds for the engine's image encoder over `sizes` batches cycled from `buffers`.
fn time_bare(model: &LoadedModel, buffers: &[Tensor], sizes: &[i64], device: Device) -> anyhow::Result<f64> {
    sync(device);
    let t0 = Instant::now();
    for (i, &n) in sizes.iter().enumerate() {
        let x = buffers[i % buffers.len()].narrow(0, 0, n);
        let out = model.encode_images(&x)?;
        anyhow::ensure!(out.size()[0] == n, "encode_images returned {:?} for a batch of {n}", out.size());
    }
    sync(device);
    Ok(t0.elapsed().as_secs_f64())
}

fn best_rate(images: u64, secs: &[f64]) -> f64 {
    images as f64 / secs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.batch_size > 0 && args.repeat > 0, "--batch-size and --repeat must be positive");
    let device = pick_device(args.device.parse::<DeviceChoice>().map_err(anyhow::Error::msg)?)?;
    let precision: Precision = args.precision.parse()?;
    let precision = precision.effective(device)?;

    // Jobs name paths under a data root: link the inputs into a scratch one.
    let root = tempfile::tempdir()?;
    let arts = tempfile::tempdir()?;
    symlink(&args.model, &root.path().join("model"))?;
    symlink(&args.dataset, &root.path().join("dataset"))?;
    let graph_file = if args.graph.is_dir() { args.graph.join("graph.json") } else { args.graph.clone() };
    let graph_name = graph_file.file_name().and_then(|n| n.to_str()).context("--graph names no file")?.to_string();
    symlink(graph_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")), &root.path().join("graph"))?;
    let ctx = ExecContext::new(ArtifactStore::new(arts.path()), root.path().to_path_buf());

    let format = data::detect_format(&args.dataset);
    let ds = data::open(&args.dataset, format)?;
    let n = ds.count()?;
    let classnames = ds.classnames().with_context(|| format!("{} names no classes (classnames.txt)", args.dataset.display()))?;
    let templates = ds.templates()?.unwrap_or_else(|| vec![DEFAULT_TEMPLATE.to_string()]);
    drop(ds);
    let graph = GraphFile::load(&graph_file)?;
    let g = graph.image_count();
    let nodes = graph.graph.nodes.len();
    drop(graph);
    anyhow::ensure!(n > 0 && g > 0, "the dataset ({n} images) and the graph ({g} images) must not be empty");

    let cache = Arc::new(ModelCache::new(device, precision, u64::MAX));
    let t0 = Instant::now();
    let model = cache.get(root.path().join("model"))?;
    let load_s = t0.elapsed().as_secs_f64();
    let meta = model.meta().clone();
    let evaluate = EvaluateExecutor::new(cache.clone(), args.batch_size, args.decode_threads)?;
    let label = LabelExecutor::new(cache.clone(), args.batch_size, args.decode_threads)?;

    let model_ref = ModelRef { key: meta.model_key.clone(), artifact: "model".into() };
    let eval_job = |end: u64| EvaluateJob {
        model: model_ref.clone(),
        dataset: DatasetRef { name: "bench".into(), format, path: "dataset".into() },
        shard: Shard { index: 0, count: 1, start: 0, end },
        classnames: classnames.clone().into(),
        templates: templates.clone().into(),
        protocol: PromptProtocol::ClipBenchmark,
        keep_probabilities: true,
        dataset_samples: n,
    };
    let label_job = |end: u64, encode_node_texts: bool| LabelJob {
        model: model_ref.clone(),
        graph: format!("graph/{graph_name}"),
        graph_digest: String::new(),
        shard: Shard { index: 0, count: 1, start: 0, end },
        encode_node_texts,
        top_nodes: args.top_nodes,
        definition_only: false,
    };

    // Warm-up: one job of each kind on the first batch.
    let b = args.batch_size as u64;
    let warm_eval = time_job(&evaluate, &job(JobPayload::Evaluate(eval_job(n.min(b))), "warm-evaluate")?, &ctx, n.min(b), device)?;
    let warm_label = time_job(&label, &job(JobPayload::Label(label_job(g.min(b), true)), "warm-label")?, &ctx, g.min(b), device)?;

    // The bare forward's batches: the evaluate job's sizes, pre-made on the device (and on the CPU).
    let s = meta.image_size as i64;
    let mut sizes = vec![b as i64; (n / b) as usize];
    if n % b > 0 {
        sizes.push((n % b) as i64);
    }
    let full = sizes[0];
    tch::manual_seed(0);
    let host: Vec<Tensor> =
        (0..BARE_BUFFERS.min(sizes.len())).map(|_| Tensor::randn([full, 3, s, s], (Kind::Float, Device::Cpu))).collect();
    let on_device: Vec<Tensor> = host.iter().map(|t| t.to_device(device)).collect();
    time_bare(&model, &on_device, &sizes[..1], device)?;

    let ej = job(JobPayload::Evaluate(eval_job(n)), "evaluate")?;
    let lj = job(JobPayload::Label(label_job(g, false)), "label")?;
    let (mut eval_s, mut label_s, mut bare_s, mut bare_cpu_s, mut classifier_s) = (vec![], vec![], vec![], vec![], vec![]);
    for r in 0..args.repeat {
        // The part of an evaluate job that does not depend on its images.
        let t0 = Instant::now();
        let _classifier = build_classifier(&model, &classnames, &templates, ClassifierProtocol::ClipBenchmark)?;
        classifier_s.push(t0.elapsed().as_secs_f64());
        eval_s.push(time_job(&evaluate, &ej, &ctx, n, device)?);
        label_s.push(time_job(&label, &lj, &ctx, g, device)?);
        bare_s.push(time_bare(&model, &on_device, &sizes, device)?);
        if device.is_cuda() {
            bare_cpu_s.push(time_bare(&model, &host, &sizes, device)?);
        }
        eprintln!(
            "run {}/{}: evaluate {:.3} s, label {:.3} s, bare {:.3} s{}",
            r + 1,
            args.repeat,
            eval_s[r],
            label_s[r],
            bare_s[r],
            bare_cpu_s.get(r).map(|s| format!(", bare from CPU {s:.3} s")).unwrap_or_default()
        );
    }

    let eval_rate = best_rate(n, &eval_s);
    let label_rate = best_rate(g, &label_s);
    let bare_rate = best_rate(n, &bare_s);
    let bare_cpu_rate = (!bare_cpu_s.is_empty()).then(|| best_rate(n, &bare_cpu_s));
    let device_name = if device.is_cuda() { "cuda" } else { "cpu" };
    let precision_name = format!("{precision:?}").to_lowercase();
    let threads =
        if args.decode_threads == 0 { std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1) } else { args.decode_threads };
    let result = json!({
        "model": meta.model_key,
        "model_dir": args.model,
        "image_size": meta.image_size,
        "device": device_name,
        "precision": precision_name,
        "batch_size": args.batch_size,
        "decode_threads": threads,
        "torch_threads": tch::get_num_threads(),
        "repeat": args.repeat,
        "load_seconds": load_s,
        "warmup_seconds": {"evaluate": warm_eval, "label": warm_label},
        "evaluate": {
            "images": n, "classes": classnames.len(), "templates": templates.len(), "protocol": "clip_benchmark",
            "keep_probabilities": true, "seconds": eval_s, "images_per_s": eval_rate,
            "classifier_seconds": classifier_s,
        },
        "label": {
            "images": g, "nodes": nodes, "top_nodes": args.top_nodes, "seconds": label_s, "images_per_s": label_rate,
        },
        "bare_forward": {"images": n, "batches": sizes.len(), "input": "device", "seconds": bare_s, "images_per_s": bare_rate},
        "bare_forward_from_cpu": bare_cpu_rate.map(|rate| json!({
            "images": n, "batches": sizes.len(), "input": "cpu", "seconds": bare_cpu_s, "images_per_s": rate,
        })),
        "evaluate_vs_bare": eval_rate / bare_rate,
        "label_vs_bare": label_rate / bare_rate,
        "goal_evaluate_vs_bare": GOAL,
        "evaluate_meets_goal": eval_rate / bare_rate >= GOAL,
    });

    println!(
        "executors on {device_name} {precision_name}: {} ({}px), batch {}, {threads} decode threads, {} torch threads, best of {}",
        meta.model_key,
        meta.image_size,
        args.batch_size,
        tch::get_num_threads(),
        args.repeat
    );
    println!("model load {load_s:.2} s; warm-up jobs: evaluate {warm_eval:.2} s, label {warm_label:.2} s (encodes the {nodes} node texts)");
    println!("{:<34} {:>7} {:>10} {:>8}", "", "images", "images/s", "vs bare");
    let row = |what: &str, images: u64, rate: f64| println!("{what:<34} {images:>7} {rate:>10.1} {:>8.3}", rate / bare_rate);
    row("evaluate executor (execute())", n, eval_rate);
    let classifier_best = classifier_s.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "  (of each evaluate job, {classifier_best:.3} s build the classifier from {} × {} prompts)",
        classnames.len(),
        templates.len()
    );
    row(&format!("label executor (execute(), K={})", args.top_nodes), g, label_rate);
    row("bare forward (batches on device)", n, bare_rate);
    if let Some(rate) = bare_cpu_rate {
        row("bare forward (batches on CPU)", n, rate);
    }
    println!(
        "evaluate / bare = {:.3} (goal >= {GOAL}: {})",
        eval_rate / bare_rate,
        if eval_rate / bare_rate >= GOAL { "met" } else { "NOT met" }
    );
    if !device.is_cuda() {
        println!("(on CPU the decode threads share the cores with the forward: the goal is for the GPU)");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n").with_context(|| format!("writing {}", path.display()))?;
    } else {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(())
}
