//! Aggregation benchmark: the report's aggregation (`aggregate::build_with`)
//! on synthetic artifacts of the real names, dtypes and shapes, committed to the real Redis as workers commit them; time and
//! peak memory per dataset and per model's graph labels.
//!
//!     cargo run --release -p mll-coordinator --no-default-features --example bench_aggregate -- \
//!         [--models 16] [--datasets 17] [--graph-images 300000] [--nodes 9000] [--k 32] [--experiments]
//!
//! What is real: the plan's shape (`plan::hub_jobs` for label and evaluate
//! jobs, `plan::embed_jobs` and the text layout for the graph's and each
//! dataset's captions, `execution.shard_size` images a job), the artifacts'
//! tensors as `aggregate/load.rs` reads them (evaluate: `probs` f32 n × C,
//! `labels` i64 n, `entropy` f64 n; label: `image_embeddings` f32 n × D_m
//! L2-normalised, `nodes` i64 n, `top_nodes` i32 n × K, and `text_embeddings`
//! f32 V × D_m on shard 0; embed: `embeddings` f32 texts × 384) written through
//! the `ArtifactStore`, results encoded as a worker encodes them
//! (`output::encode_result`) and committed with `Ledger::commit` to the
//! real Redis after the run is registered as `RunControl::submit` registers
//! it (saved spec, meta, expected sets; nothing is published), and the
//! aggregation itself.
//!
//! What is synthetic: the numbers. Models have D_m = 512, 768, 1024, 1280 in
//! turn; each model's data is seeded from its index (distinct per model, the
//! same every run). Probabilities are softmax rows whose argmax is the true
//! class 55–85% of the time (a skill per model and dataset); best-node lists
//! follow WordNet's shape (sibling groups of 10, true node first for 60% of
//! images, absent for 10%: `bench_select`'s generator); graph images are in
//! node order, as graph.json lists them. The datasets are the 17 targets'
//! (classes, test samples), cycled.
//!
//! The artifacts are written by `--writers` child processes (as workers write
//! them), so this process's memory is the aggregation's alone. Measured here:
//! `Outputs::load` alone (the store reads), then `build_with` with a tracing
//! subscriber that sees aggregation's own debug events ("graph labels
//! loaded", "dataset reported", "report built") and at each takes the time
//! since the previous one and the peak RSS since then (VmHWM of
//! /proc/self/status, reset by writing 5 to /proc/self/clear_refs; a 5 ms
//! sampler of VmRSS where that write fails).
//!
//! Disk: one model's label artifacts are images × (4 D_m + 8 + 4 K) bytes
//! (1.1 GB on average at 300,000 images), so the default samples 16 models of
//! the hub at the real label size (~18 GB); `--models 49 --graph-images 30000`
//! runs the paper's hub with smaller graph labels. Everything is written
//! under a fresh folder of `--dir` (default $BENCH_DIR, else the system's
//! temporary folder) and deleted at the end, as are the run's Redis keys (a
//! fresh key prefix per run).
//!
//! `scripts/bench-aggregate` builds and runs this.

use anyhow::{bail, Context};
use clap::Parser;
use mll_common::artifact::safetensors_io::{self, Named};
use mll_common::artifact::ArtifactStore;
use mll_common::config::Settings;
use mll_common::ids::sha256_hex;
use mll_common::job::{EmbedJob, EvaluateJob, LabelJob};
use mll_common::output::{encode_result, ClassCounts, EmbedOutput, EvaluateOutput, Execution, JobOutput, LabelOutput};
use mll_common::queue::memory::MemoryQueue;
use mll_common::store::redis::RedisStore;
use mll_common::store::{Committer, RunMeta, RunState};
use mll_common::{Job, JobPayload, RunId};
use mll_coordinator::aggregate::{self, Outputs};
use mll_coordinator::control::{RunControl, Submission};
use mll_coordinator::plan::{self, GraphJobs, Plan, PlannedDataset, TextLayout};
use mll_coordinator::spec::{BenchmarkSpec, TargetDataset};
use mll_method::experiments::ExperimentOptions;
use mll_method::SplitMix64;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "The report's aggregation on synthetic artifacts of the real shapes: time and peak RSS per dataset and per model")]
struct Args {
    /// Hub models (D_m = 512, 768, 1024, 1280 in turn).
    #[arg(long, default_value_t = 16)]
    models: usize,
    /// Target datasets (the 17 targets' classes and test samples, cycled).
    #[arg(long, default_value_t = 17)]
    datasets: usize,
    /// Graph nodes (V).
    #[arg(long, default_value_t = 9000)]
    nodes: usize,
    /// Graph images each model labels.
    #[arg(long, default_value_t = 300_000)]
    graph_images: u64,
    /// Best nodes stored per image (`graph.label_top_nodes`).
    #[arg(long, default_value_t = 32)]
    k: u32,
    /// Images per job (`execution.shard_size`).
    #[arg(long, default_value_t = 2000)]
    shard_size: u64,
    /// Child processes writing the artifacts and committing the results.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Also run the paper's experiments (`report --experiments`).
    #[arg(long)]
    experiments: bool,
    /// Where the run's artifact folder is made (default $BENCH_DIR, else the temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run with glibc's mmap threshold fixed at 128 KiB (GLIBC_TUNABLES), so
    /// freed blocks go back to the system at once and each phase's peak is its
    /// own live memory, not what the allocator kept from an earlier phase.
    #[arg(long)]
    live_rss: bool,
    /// Internal: run as writer N, writing into the artifact root `--dir`.
    #[arg(long, hide = true)]
    writer_process: Option<usize>,
}

/// (name, classes, test samples) of the 17 target datasets (docs/method.md, "The
/// benchmark"; Country211 at its 21,100-image test split, not the 10,550-image
/// validation split the catalog prepares).
const DATASETS: [(&str, usize, u64); 17] = [
    ("cifar100", 100, 10_000),
    ("country211", 211, 21_100),
    ("dtd", 47, 1_880),
    ("fer2013", 7, 7_178),
    ("flowers102", 102, 6_149),
    ("food101", 101, 25_250),
    ("gtsrb", 43, 12_630),
    ("mnist", 10, 10_000),
    ("pets", 37, 3_669),
    ("pcam", 2, 32_768),
    ("renderedsst2", 2, 1_821),
    ("stl10", 10, 8_000),
    ("cars", 196, 8_041),
    ("ucf101", 101, 3_783),
    ("clevr_closest_object_distance", 6, 15_000),
    ("dmlab", 6, 22_735),
    ("resisc45", 45, 31_500),
];

/// Image embedding widths of the hub's models, in turn.
const WIDTHS: [usize; 4] = [512, 768, 1024, 1280];
/// Caption embedder width (all-MiniLM-L6-v2).
const TEXT_DIM: usize = 384;
/// Captions per graph node and per class.
const CAPTIONS: usize = 3;
/// Prompt templates per dataset.
const TEMPLATES: usize = 18;
/// Sibling group size of the synthetic graph.
const GROUP: usize = 10;
const RUN: &str = "aggregate-bench";
/// What `--live-rss` sets: a fixed threshold turns off glibc's dynamic one,
/// which otherwise rises to the largest freed block (up to 32 MiB) and keeps
/// blocks below it in the heap after they are freed.
const LIVE_RSS_TUNABLES: &str = "glibc.malloc.mmap_threshold=131072";

// ---------------------------------------------------------------------------
// The plan

fn spec_text(args: &Args) -> String {
    let mut t = format!(
        "name = \"{RUN}\"\n[execution]\nshard_size = {}\n[graph]\npath = \"graph.json\"\nlabel_top_nodes = {}\n\
         [embedder]\npath = \"embedder/all-MiniLM-L6-v2\"\n",
        args.shard_size, args.k
    );
    for m in 0..args.models {
        t.push_str(&format!(
            "[[hub]]\nkey = \"synth-{w}/model-{m:04}\"\nartifact = \"models/synth/model-{m:04}\"\nparams_m = {}\ngflops = {}\nimagenet_top1 = {:.3}\n",
            80 + 40 * (m % 7),
            5 + 9 * (m % 5),
            0.55 + 0.3 * unit(&mut rng(&[7, m as u64])) as f64,
            w = WIDTHS[m % WIDTHS.len()],
        ));
    }
    for d in 0..args.datasets {
        t.push_str(&format!("[[datasets]]\nname = \"{}\"\nformat = \"webdataset\"\npath = \"datasets/{0}\"\n", dataset_name(d)));
    }
    t
}

fn dataset_name(d: usize) -> String {
    let (name, _, _) = DATASETS[d % DATASETS.len()];
    match d / DATASETS.len() {
        0 => name.to_string(),
        cycle => format!("{name}-{}", cycle + 1),
    }
}

fn planned_dataset(spec: &TargetDataset, index: usize) -> PlannedDataset {
    let (_, classes, samples) = DATASETS[index % DATASETS.len()];
    let classnames: Vec<String> = (0..classes).map(|c| format!("{} class {c:03}", spec.name)).collect();
    let templates: Vec<String> = (0..TEMPLATES).map(|t| format!("a photo of the {{c}}, template {t:02}.")).collect();
    PlannedDataset { spec: spec.clone(), prompt_names: classnames.clone(), classnames, templates, samples, caption_fallbacks: Vec::new() }
}

/// The run's plan, as `plan::plan_with` lays it out (embed jobs of the graph's
/// captions, then of each dataset's, then the hub's jobs), without data on disk.
fn make_plan(args: &Args) -> anyhow::Result<(Plan, String)> {
    let run = RunId::new(RUN).map_err(anyhow::Error::msg)?;
    let text = spec_text(args);
    let spec = BenchmarkSpec::from_toml(&text, "bench_aggregate (generated)")?;
    let datasets: Vec<PlannedDataset> = spec.datasets.iter().enumerate().map(|(i, d)| planned_dataset(d, i)).collect();
    let emb = spec.embedder.as_ref().context("the generated spec has an embedder")?;
    let mut sources: Vec<(String, Vec<Vec<String>>)> = vec![(
        "graph".into(),
        (0..args.nodes).map(|v| (0..CAPTIONS).map(|c| format!("a photo of node {v:05}, view {c}")).collect()).collect(),
    )];
    for d in &datasets {
        let captions = d.classnames.iter().map(|name| (0..CAPTIONS).map(|c| format!("a photo of a {name}, view {c}")).collect()).collect();
        sources.push((format!("dataset:{}", d.spec.name), captions));
    }
    let mut texts = TextLayout::default();
    let mut jobs = Vec::new();
    for (source, items) in &sources {
        let (ranges, chunk_jobs) = plan::embed_jobs(&run, emb, source, items);
        texts.sources.insert(source.clone(), ranges);
        jobs.extend(chunk_jobs);
    }
    let graph = GraphJobs { images: args.graph_images, digest: sha256_hex(b"bench_aggregate synthetic graph") };
    jobs.extend(plan::hub_jobs(&run, &spec, Some(&graph), &datasets));
    let plan = Plan {
        run,
        spec,
        data_root: std::env::temp_dir(),
        datasets,
        graph_node_ids: (0..args.nodes).map(|v| format!("n{v:08}")).collect(),
        graph_node_names: (0..args.nodes).map(|v| format!("node {v}")).collect(),
        graph_nodes: args.nodes,
        graph_images: args.graph_images,
        graph_construction: None,
        texts,
        jobs,
    };
    Ok((plan, text))
}

// ---------------------------------------------------------------------------
// Synthetic data, seeded per model, dataset, shard

fn rng(parts: &[u64]) -> SplitMix64 {
    let mut s = SplitMix64::new(0x5eed_a66e);
    let mut seed = 0u64;
    for p in parts {
        seed = s.next_u64() ^ p.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        s = SplitMix64::new(seed);
    }
    SplitMix64::new(seed)
}

fn unit(r: &mut SplitMix64) -> f32 {
    (r.next_u64() >> 40) as f32 / (1u64 << 24) as f32
}

fn normal(r: &mut SplitMix64) -> f32 {
    // Sum of uniforms: close enough to Gaussian for synthetic embeddings.
    (0..4).map(|_| unit(r)).sum::<f32>() - 2.0
}

fn normalise_rows(values: &mut [f32], d: usize) {
    for row in values.chunks_exact_mut(d) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= n);
    }
}

/// n × d L2-normalised rows of centred uniforms (two values per draw).
fn unit_rows(r: &mut SplitMix64, n: usize, d: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * d);
    while v.len() < n * d {
        let x = r.next_u64();
        v.push((x as u32) as f32 / 4_294_967_296.0 - 0.5);
        v.push((x >> 32) as f32 / 4_294_967_296.0 - 0.5);
    }
    v.truncate(n * d);
    normalise_rows(&mut v, d);
    v
}

/// A node's caption direction: its sibling group's plus a little of its own.
fn node_vector(v: usize) -> Vec<f32> {
    let (mut g, mut own) = (rng(&[1, (v / GROUP) as u64]), rng(&[2, v as u64]));
    let scale = 0.25 / (TEXT_DIM as f32).sqrt();
    let mut x: Vec<f32> = (0..TEXT_DIM).map(|_| normal(&mut g) + scale * normal(&mut own)).collect();
    normalise_rows(&mut x, TEXT_DIM);
    x
}

/// A class's caption direction: near one node of the graph.
fn class_vector(dataset: usize, class: usize, nodes: usize) -> Vec<f32> {
    let mut r = rng(&[3, dataset as u64, class as u64]);
    let mut x = node_vector(r.below(nodes));
    let scale = 0.3 / (TEXT_DIM as f32).sqrt();
    x.iter_mut().for_each(|v| *v += scale * normal(&mut r));
    normalise_rows(&mut x, TEXT_DIM);
    x
}

/// The true graph node of image `g`: images are listed node by node.
fn node_of(g: u64, images: u64, nodes: usize) -> i64 {
    (g as u128 * nodes as u128 / images.max(1) as u128) as i64
}

/// One image's K best nodes (WordNet's shape, as `bench_select` makes them):
/// its sibling group first, then the neighbouring groups, the true node first
/// for 60% of images, further down for 30%, absent for 10%.
fn best_nodes(r: &mut SplitMix64, g: usize, nodes: usize, k: usize, out: &mut Vec<i32>) {
    let groups = nodes.div_ceil(GROUP);
    let group = g / GROUP;
    let mut list: Vec<i32> = Vec::with_capacity(3 * GROUP + k);
    for h in [group, (group + 1) % groups, (group + groups - 1) % groups] {
        let start = list.len();
        list.extend((h * GROUP..((h + 1) * GROUP).min(nodes)).map(|x| x as i32));
        for a in (start + 1..list.len()).rev() {
            list.swap(a, start + r.below(a - start + 1));
        }
    }
    list.retain(|&x| x as usize != g);
    let roll = r.below(10);
    if roll < 6 {
        list.insert(0, g as i32);
    } else if roll < 9 {
        let at = 1 + r.below(k.max(2) - 1);
        list.insert(at.min(list.len()), g as i32);
    }
    while list.len() < k {
        list.push(r.below(nodes) as i32);
    }
    out.extend_from_slice(&list[..k]);
}

/// What one job writes and commits.
struct Written {
    output: JobOutput,
    /// Synthetic GPU-seconds of the execution (the k sweep's reuse cost).
    seconds: f64,
}

struct Synth<'a> {
    plan: &'a Plan,
    store: &'a ArtifactStore,
    model_index: HashMap<&'a str, usize>,
    dataset_index: HashMap<&'a str, usize>,
}

impl<'a> Synth<'a> {
    fn new(plan: &'a Plan, store: &'a ArtifactStore) -> Self {
        Synth {
            plan,
            store,
            model_index: plan.spec.hub.iter().enumerate().map(|(i, m)| (m.key.as_str(), i)).collect(),
            dataset_index: plan.datasets.iter().enumerate().map(|(i, d)| (d.spec.name.as_str(), i)).collect(),
        }
    }

    fn put(&self, tensors: &[Named]) -> anyhow::Result<mll_common::artifact::ArtifactRef> {
        Ok(self.store.put(&safetensors_io::encode(tensors)?)?)
    }

    fn write(&self, job: &Job) -> anyhow::Result<Written> {
        match &job.payload {
            JobPayload::Embed(e) => self.embed(e),
            JobPayload::Label(l) => self.label(l),
            JobPayload::Evaluate(e) => self.evaluate(e),
            JobPayload::Diagnostic(_) => bail!("the aggregation benchmark plans no diagnostic jobs"),
        }
    }

    /// Caption embeddings of one chunk: each row near its node's or class's direction.
    fn embed(&self, e: &EmbedJob) -> anyhow::Result<Written> {
        let ranges = &self.plan.texts.sources[&e.source];
        let dataset = e.source.strip_prefix("dataset:").map(|name| self.dataset_index[name]);
        let mut rows = Vec::with_capacity(e.texts.len() * TEXT_DIM);
        let mut r = rng(&[4, sha_seed(&e.source), e.start]);
        let scale = 0.05 / (TEXT_DIM as f32).sqrt();
        for row in e.start as usize..e.start as usize + e.texts.len() {
            let item = ranges.partition_point(|x| x.end <= row);
            let mut x = match dataset {
                Some(d) => class_vector(d, item, self.plan.graph_nodes),
                None => node_vector(item),
            };
            x.iter_mut().for_each(|v| *v += scale * normal(&mut r));
            normalise_rows(&mut x, TEXT_DIM);
            rows.extend(x);
        }
        let embeddings = self.put(&[Named::new("embeddings", vec![e.texts.len(), TEXT_DIM], &rows)])?;
        Ok(Written {
            output: JobOutput::Embed(EmbedOutput { embeddings, count: e.texts.len() as u64 }),
            seconds: e.texts.len() as f64 / 500.0,
        })
    }

    fn label(&self, l: &LabelJob) -> anyhow::Result<Written> {
        let m = self.model_index[l.model.key.as_str()];
        let d = WIDTHS[m % WIDTHS.len()];
        let (v, k) = (self.plan.graph_nodes, l.top_nodes as usize);
        let n = (l.shard.end - l.shard.start) as usize;
        let nodes: Vec<i64> = (l.shard.start..l.shard.end).map(|g| node_of(g, self.plan.graph_images, v)).collect();
        let embeddings = unit_rows(&mut rng(&[5, m as u64, l.shard.start]), n, d);
        let mut lists = Vec::with_capacity(n * k);
        let mut r = rng(&[6, m as u64, l.shard.start]);
        for &g in &nodes {
            best_nodes(&mut r, g as usize, v, k, &mut lists);
        }
        let mut tensors = vec![Named::new("image_embeddings", vec![n, d], &embeddings), Named::new("nodes", vec![n], &nodes)];
        if k > 0 {
            tensors.push(Named::new("top_nodes", vec![n, k], &lists));
        }
        let images = self.put(&tensors)?;
        let node_texts = if l.encode_node_texts {
            let texts = unit_rows(&mut rng(&[8, m as u64]), v, d);
            Some(self.put(&[Named::new("text_embeddings", vec![v, d], &texts)])?)
        } else {
            None
        };
        Ok(Written {
            output: JobOutput::Label(LabelOutput { images, node_texts, count: n as u64 }),
            seconds: n as f64 / 400.0 * (1.0 + m as f64 % 4.0),
        })
    }

    /// Softmax rows whose argmax is the true class with the model's skill on the dataset.
    fn evaluate(&self, e: &EvaluateJob) -> anyhow::Result<Written> {
        let m = self.model_index[e.model.key.as_str()];
        let d = self.dataset_index[e.dataset.name.as_str()];
        let c = e.classnames.len();
        let n = (e.shard.end - e.shard.start) as usize;
        let skill = 0.55 + 0.3 * unit(&mut rng(&[9, m as u64, d as u64]));
        let mut r = rng(&[10, m as u64, d as u64, e.shard.start]);
        let mut counts = ClassCounts::zeros(c);
        let (mut probs, mut labels, mut entropy) = (Vec::with_capacity(n * c), Vec::with_capacity(n), Vec::with_capacity(n));
        for i in e.shard.start..e.shard.end {
            // The true class is the sample's, the same for every model.
            let y = rng(&[11, d as u64, i]).below(c);
            let predicted = if unit(&mut r) < skill || c < 2 { y } else { (y + 1 + r.below(c - 1)) % c };
            let start = probs.len();
            probs.extend((0..c).map(|j| (2.0 * unit(&mut r) + if j == predicted { 2.5 } else { 0.0 }).exp()));
            let row = &mut probs[start..];
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|p| *p /= sum);
            let best = (0..c).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            counts.n[y] += 1;
            counts.top1[y] += u64::from(best == y);
            counts.top5[y] += u64::from(row.iter().filter(|&&p| p > row[y]).count() < 5);
            entropy.push(mll_method::prob::entropy(row.iter().copied()));
            labels.push(y as i64);
        }
        let probabilities = Some(self.put(&[
            Named::new("probs", vec![n, c], &probs),
            Named::new("labels", vec![n], &labels),
            Named::new("entropy", vec![n], &entropy),
        ])?);
        let output = JobOutput::Evaluate(EvaluateOutput { counts, protocol: e.protocol.as_str().into(), probabilities, images: n as u64 });
        Ok(Written { output, seconds: n as f64 / 500.0 * (1.0 + m as f64 % 4.0) })
    }
}

fn sha_seed(s: &str) -> u64 {
    u64::from_str_radix(&sha256_hex(s.as_bytes())[..16], 16).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Writers: child processes that write artifacts and commit, as workers do

/// Settings with this run's own key prefix ([`mll_common::config::isolated_env`]),
/// and the `MLL__` variables that give it to the writer processes.
fn settings_for(tag: &str) -> anyhow::Result<(Settings, HashMap<String, String>)> {
    let isolated = mll_common::config::isolated_env(tag).map(|(k, v)| (k.to_string(), v));
    let env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("MLL__")).chain(isolated).collect();
    Ok((Settings::load_with_env(None, Some(env.clone()))?, env))
}

/// Writer `index` of `--writers`: every writers-th job of the plan.
async fn writer_process(index: usize, args: &Args) -> anyhow::Result<()> {
    let settings = Settings::load_with_env(None, None)?;
    let store = RedisStore::connect(&settings.store).await?;
    let root = args.dir.clone().context("a writer needs --dir")?;
    let artifacts = ArtifactStore::new(root);
    let (plan, _) = make_plan(args)?;
    let synth = Synth::new(&plan, &artifacts);
    let mine: Vec<&Job> = plan.jobs.iter().skip(index).step_by(args.writers).collect();
    let t = Instant::now();
    let (mut bytes, mut last) = (0u64, Instant::now());
    for (i, job) in mine.iter().enumerate() {
        let w = synth.write(job).with_context(|| format!("writing the artifacts of {}", job.payload.describe()))?;
        bytes += match &w.output {
            JobOutput::Label(o) => o.images.size + o.node_texts.as_ref().map_or(0, |a| a.size),
            JobOutput::Evaluate(o) => o.probabilities.as_ref().map_or(0, |a| a.size),
            JobOutput::Embed(o) => o.embeddings.size,
            JobOutput::Diagnostic(_) => 0,
        };
        // What a worker commits: the encoded result, atomically with its done-set entry.
        let result = encode_result(&w.output, Execution { seconds: w.seconds })?;
        store.commit(&job.run, job.stage(), &job.id, &result).await?;
        if last.elapsed() > Duration::from_secs(15) || i + 1 == mine.len() {
            last = Instant::now();
            eprintln!(
                "  writer {index}: {}/{} jobs, {:.2} GB in {:.0} s",
                i + 1,
                mine.len(),
                bytes as f64 / 1e9,
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Peak RSS and aggregation's events

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// This process's peak RSS since the last reset: the kernel's high-water mark
/// (reset through clear_refs), else a 5 ms sampler of VmRSS.
struct PeakRss {
    clear_refs: bool,
    /// Sampled peak in KiB (sampler only).
    sampled: Arc<AtomicU64>,
}

impl PeakRss {
    fn start() -> Self {
        let clear_refs = std::fs::write("/proc/self/clear_refs", "5").is_ok() && status_mib("VmHWM:").is_finite();
        let sampled = Arc::new(AtomicU64::new(0));
        if !clear_refs {
            eprintln!("bench-aggregate: /proc/self/clear_refs is not writable; sampling VmRSS every 5 ms instead");
            let s = sampled.clone();
            std::thread::spawn(move || loop {
                s.fetch_max((rss_mib() * 1024.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            });
        }
        PeakRss { clear_refs, sampled }
    }

    fn reset(&self) {
        if self.clear_refs {
            let _ = std::fs::write("/proc/self/clear_refs", "5");
        } else {
            self.sampled.store((rss_mib() * 1024.0) as u64, Ordering::Relaxed);
        }
    }

    fn peak_mib(&self) -> f64 {
        if self.clear_refs {
            status_mib("VmHWM:")
        } else {
            (self.sampled.load(Ordering::Relaxed) as f64 / 1024.0).max(rss_mib())
        }
    }
}

/// One of aggregation's events: the time since the previous one and the peak RSS meanwhile.
#[derive(Debug, Clone, Serialize)]
struct Mark {
    message: String,
    fields: BTreeMap<String, String>,
    seconds: f64,
    peak_rss_mib: f64,
    /// RSS when the event came (what stays allocated, or kept by the allocator).
    rss_mib: f64,
}

struct Recorder {
    peak: PeakRss,
    armed: AtomicBool,
    state: Mutex<(Instant, Vec<Mark>)>,
}

impl Recorder {
    fn arm(&self) {
        let mut s = self.state.lock().expect("recorder lock");
        *s = (Instant::now(), Vec::new());
        self.peak.reset();
        self.armed.store(true, Ordering::SeqCst);
    }

    fn mark(&self, message: String, fields: BTreeMap<String, String>) {
        let mut s = self.state.lock().expect("recorder lock");
        let (peak_rss_mib, seconds) = (self.peak.peak_mib(), s.0.elapsed().as_secs_f64());
        s.1.push(Mark { message, fields, seconds, peak_rss_mib, rss_mib: rss_mib() });
        self.peak.reset();
        s.0 = Instant::now();
    }

    /// The marks so far and a last one for the time since.
    fn disarm(&self, last: &str) -> Vec<Mark> {
        self.mark(last.into(), BTreeMap::new());
        self.armed.store(false, Ordering::SeqCst);
        std::mem::take(&mut self.state.lock().expect("recorder lock").1)
    }
}

/// A subscriber for this crate's events only: aggregation's progress marks
/// while armed; warnings and errors printed.
struct Events(Arc<Recorder>);

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl tracing::Subscriber for Events {
    fn register_callsite(&self, m: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if self.enabled(m) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.is_event() && m.target().starts_with("mll_coordinator") && *m.level() <= tracing::Level::DEBUG
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let message = f.0.remove("message").unwrap_or_default();
        if *event.metadata().level() <= tracing::Level::WARN {
            eprintln!("{} {}: {message} {:?}", event.metadata().level(), event.metadata().target(), f.0);
        }
        if self.0.armed.load(Ordering::SeqCst) && message.starts_with("aggregate: ") {
            self.0.mark(message, f.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

const LABELS_LOADED: &str = "aggregate: graph labels loaded; counting for every dataset";
const DATASET_REPORTED: &str = "aggregate: dataset reported";
const REPORT_BUILT: &str = "aggregate: report built";

// ---------------------------------------------------------------------------
// The benchmark

#[derive(Debug, Serialize)]
struct Phase {
    seconds: f64,
    peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct LabelPhase {
    model: String,
    width: usize,
    /// The model's label tensors as stored (image embeddings, true nodes, lists, node texts).
    labels_mib: f64,
    /// Images kept for selection, and those of them whose embedding was kept
    /// (the event's `images` and `embeddings`, where it has them).
    images_kept: Option<u64>,
    embeddings_kept: Option<u64>,
    /// `model_labels`: reading, checking and decoding the artifacts, images sorted by node.
    load_seconds: f64,
    /// `HubSelection::add_model` for every dataset (None for the last model:
    /// it falls in the first dataset's part).
    count_seconds: Option<f64>,
    /// Peak RSS from the previous model's counting through this model's load.
    peak_rss_mib: f64,
    /// RSS once loaded (the labels in memory).
    rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct DatasetPhase {
    name: String,
    classes: usize,
    samples: u64,
    models: usize,
    /// models × samples × classes × 4 B: every model's probabilities, held together.
    probabilities_mib: f64,
    seconds: f64,
    peak_rss_mib: f64,
    /// RSS once reported (the dataset's inputs dropped).
    rss_after_mib: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    models: usize,
    datasets: usize,
    nodes: usize,
    graph_images: u64,
    k: u32,
    shard_size: u64,
    experiments: bool,
    live_rss: bool,
    jobs: usize,
    artifact_bytes: u64,
    write_seconds: f64,
    /// `Outputs::load` alone (every result read from Redis, decoded, checked).
    results_load: Phase,
    /// RSS when `build_with` started (plan and process; the results were dropped).
    rss_at_start_mib: f64,
    /// From `build_with`'s start to the first model's labels: the results
    /// load again, caption embeddings (pooled), MLL matching, and the first
    /// model's label load (its time is in `label_phases`).
    before_labels_seconds: f64,
    label_phases: Vec<LabelPhase>,
    datasets_phases: Vec<DatasetPhase>,
    /// Summary and experiments' combination, then the report's assembly.
    summary: Phase,
    total_seconds: f64,
    peak_rss_mib: f64,
    largest_probabilities_mib: f64,
    largest_labels_mib: f64,
    events: Vec<Mark>,
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn labels_mib(args: &Args, width: usize) -> f64 {
    let n = args.graph_images as f64;
    mib(n * (4.0 * width as f64 + 8.0 + 4.0 * args.k as f64) + (args.nodes * width * 4) as f64)
}

/// The run registered as `RunControl::submit` registers it (saved spec,
/// meta, expected sets); nothing is published.
async fn register(control: &RunControl, plan: &Plan, text: &str) -> anyhow::Result<()> {
    let submission = Submission { spec_text: text.to_string(), spec_path: std::env::temp_dir().join("bench_aggregate.toml") };
    control.save_submission(&plan.run, &submission)?;
    let meta = RunMeta { state: RunState::Running, spec_digest: sha256_hex(text.as_bytes()) };
    control.store.put_meta(&plan.run, &meta).await?;
    for stage in plan.stages() {
        let ids: Vec<_> = plan.jobs_of(stage).map(|j| j.id.clone()).collect();
        control.store.expect(&plan.run, stage, &ids).await?;
    }
    Ok(())
}

async fn write_all(args: &Args, env: &HashMap<String, String>, root: &Path, control: &RunControl, plan: &Plan) -> anyhow::Result<f64> {
    let t = Instant::now();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for i in 0..args.writers {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--writer-process", &i.to_string(), "--dir", &root.display().to_string()])
            .args(["--models", &args.models.to_string(), "--datasets", &args.datasets.to_string()])
            .args(["--nodes", &args.nodes.to_string(), "--graph-images", &args.graph_images.to_string()])
            .args(["--k", &args.k.to_string(), "--shard-size", &args.shard_size.to_string(), "--writers", &args.writers.to_string()])
            .envs(env);
        children.push(cmd.spawn().context("starting a writer process")?);
    }
    let mut failed = Vec::new();
    for (i, mut c) in children.into_iter().enumerate() {
        let status = tokio::task::spawn_blocking(move || c.wait()).await??;
        if !status.success() {
            failed.push(format!("writer {i}: {status}"));
        }
    }
    if !failed.is_empty() {
        bail!("writing the artifacts failed: {}", failed.join("; "));
    }
    for stage in plan.stages() {
        let p = control.store.progress(&plan.run, stage).await?;
        if p.done != p.expected || p.expected == 0 {
            bail!("{stage}: {} of {} jobs committed after the writers finished", p.done, p.expected);
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

fn check_complete(report: &mll_method::outcome::Report, plan: &Plan) -> anyhow::Result<()> {
    let mut problems: Vec<String> = report.notes.iter().filter(|n| n.contains("MLL was not run")).cloned().collect();
    if report.datasets.len() != plan.datasets.len() {
        problems.push(format!("{} datasets reported of {}", report.datasets.len(), plan.datasets.len()));
    }
    for d in &report.datasets {
        if !d.complete {
            problems.push(format!("{}: incomplete (missing {:?})", d.name, d.missing_models));
        }
        if d.class_selections.len() != d.classes || !d.rankings.contains_key("mll") {
            problems.push(format!("{}: no MLL selection ({} of {} classes)", d.name, d.class_selections.len(), d.classes));
        }
        for k in &plan.spec.method.k {
            if d.selections.get(&format!("mll_k{k}")).and_then(|s| s.accuracy).is_none() {
                problems.push(format!("{}: no MLL reuse accuracy at k = {k}", d.name));
            }
        }
    }
    if !problems.is_empty() {
        bail!("the report is not complete:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

async fn bench(args: &Args, env: &HashMap<String, String>, root: &Path, control: &RunControl, rec: &Recorder) -> anyhow::Result<Report> {
    let t = Instant::now();
    let (plan, text) = make_plan(args)?;
    let count = |s: mll_common::Stage| plan.jobs_of(s).count();
    println!(
        "plan: {} jobs ({} embed, {} label, {} evaluate) in {:.2} s",
        plan.jobs.len(),
        count(mll_common::Stage::Embed),
        count(mll_common::Stage::Label),
        count(mll_common::Stage::Evaluate),
        t.elapsed().as_secs_f64()
    );
    register(control, &plan, &text).await?;
    let label_gb: f64 = (0..args.models).map(|m| labels_mib(args, WIDTHS[m % WIDTHS.len()])).sum::<f64>() * 1.048_576 / 1000.0;
    println!("writing the artifacts with {} writer processes (~{label_gb:.1} GB of graph labels) ...", args.writers);
    let write_seconds = write_all(args, env, root, control, &plan).await?;
    let artifact_bytes = dir_bytes(&control.artifacts.root().join("sha256"));
    println!("wrote {:.2} GB of artifacts and committed {} results in {write_seconds:.1} s", artifact_bytes as f64 / 1e9, plan.jobs.len());

    // The store reads alone.
    rec.peak.reset();
    let t = Instant::now();
    let outs = Outputs::load(control, &plan).await?;
    let results_load = Phase { seconds: t.elapsed().as_secs_f64(), peak_rss_mib: rec.peak.peak_mib() };
    println!(
        "Outputs::load: {} results in {:.2} s, peak RSS {:.0} MiB",
        outs.by_job.len(),
        results_load.seconds,
        results_load.peak_rss_mib
    );
    if outs.by_job.len() != plan.jobs.len() {
        bail!("Outputs::load read {} results of {} jobs", outs.by_job.len(), plan.jobs.len());
    }
    drop(outs);

    let experiments = args.experiments.then(ExperimentOptions::default);
    let rss_at_start_mib = rss_mib();
    println!("aggregating (RSS at start {rss_at_start_mib:.0} MiB) ...");
    rec.arm();
    let t = Instant::now();
    let built = aggregate::build_with(control, &plan, experiments.as_ref(), &Default::default()).await;
    let total_seconds = t.elapsed().as_secs_f64();
    let marks = rec.disarm("returned");
    let report = built?;
    check_complete(&report, &plan)?;

    let of = |msg: &str| marks.iter().filter(|m| m.message == msg).collect::<Vec<_>>();
    let (labels, datasets, built) = (of(LABELS_LOADED), of(DATASET_REPORTED), of(REPORT_BUILT));
    if labels.len() != args.models || datasets.len() != args.datasets || built.len() != 1 {
        bail!(
            "aggregation's debug events changed: {} '{LABELS_LOADED}' for {} models, {} '{DATASET_REPORTED}' for {} datasets, {} '{REPORT_BUILT}'",
            labels.len(),
            args.models,
            datasets.len(),
            args.datasets,
            built.len()
        );
    }
    let label_phases: Vec<LabelPhase> = labels
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let width = WIDTHS[i % WIDTHS.len()];
            LabelPhase {
                model: m.fields.get("model").cloned().unwrap_or_default(),
                width,
                labels_mib: labels_mib(args, width),
                images_kept: m.fields.get("images").and_then(|x| x.parse().ok()),
                embeddings_kept: m.fields.get("embeddings").and_then(|x| x.parse().ok()),
                load_seconds: load_seconds(m),
                count_seconds: labels.get(i + 1).map(|next| next.seconds - load_seconds(next)),
                peak_rss_mib: m.peak_rss_mib,
                rss_mib: m.rss_mib,
            }
        })
        .collect();
    let datasets_phases: Vec<DatasetPhase> = datasets
        .iter()
        .zip(&plan.datasets)
        .map(|(m, d)| DatasetPhase {
            name: d.spec.name.clone(),
            classes: d.classnames.len(),
            samples: d.samples,
            models: args.models,
            probabilities_mib: mib((args.models as u64 * d.samples * d.classnames.len() as u64 * 4) as f64),
            seconds: m.seconds,
            peak_rss_mib: m.peak_rss_mib,
            rss_after_mib: m.rss_mib,
        })
        .collect();
    let tail: Vec<&Mark> = marks.iter().skip_while(|m| m.message != REPORT_BUILT).collect();
    let summary =
        Phase { seconds: tail.iter().map(|m| m.seconds).sum(), peak_rss_mib: tail.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max) };
    Ok(Report {
        models: args.models,
        datasets: args.datasets,
        nodes: args.nodes,
        graph_images: args.graph_images,
        k: args.k,
        shard_size: args.shard_size,
        experiments: args.experiments,
        live_rss: args.live_rss,
        jobs: plan.jobs.len(),
        artifact_bytes,
        write_seconds,
        results_load,
        rss_at_start_mib,
        before_labels_seconds: labels[0].seconds - load_seconds(labels[0]),
        largest_probabilities_mib: datasets_phases.iter().map(|d| d.probabilities_mib).fold(0.0, f64::max),
        largest_labels_mib: label_phases.iter().map(|l| l.labels_mib).fold(0.0, f64::max),
        label_phases,
        datasets_phases,
        summary,
        total_seconds,
        peak_rss_mib: marks.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max),
        events: marks,
    })
}

/// The load time a "graph labels loaded" event carries.
fn load_seconds(m: &Mark) -> f64 {
    m.fields.get("seconds").and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn print_report(r: &Report) {
    println!();
    println!(
        "{} models x {} datasets, V = {}, {} graph images per model, K = {}, shard {}{}{}",
        r.models,
        r.datasets,
        r.nodes,
        r.graph_images,
        r.k,
        r.shard_size,
        if r.experiments { ", with --experiments" } else { "" },
        if r.live_rss { ", --live-rss (glibc mmap threshold fixed at 128 KiB)" } else { "" }
    );
    println!(
        "results load (Outputs::load alone): {:.2} s, peak RSS {:.0} MiB; RSS at build_with's start {:.0} MiB",
        r.results_load.seconds, r.results_load.peak_rss_mib, r.rss_at_start_mib
    );
    println!("before the first model's labels (results load, caption embeddings, matching): {:.2} s", r.before_labels_seconds);
    println!("\ngraph labels, one model at a time:");
    println!(
        "{:>4} {:<28} {:>5} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "#", "model", "D_m", "labels MiB", "images", "emb.", "load s", "count s", "peak MiB", "RSS MiB"
    );
    for (i, l) in r.label_phases.iter().enumerate() {
        let count = l.count_seconds.map_or("-".to_string(), |s| format!("{s:.2}"));
        let kept = |x: Option<u64>| x.map_or("-".to_string(), |x| x.to_string());
        println!(
            "{:>4} {:<28} {:>5} {:>10.0} {:>8} {:>8} {:>8.2} {:>8} {:>10.0} {:>10.0}",
            i + 1,
            l.model,
            l.width,
            l.labels_mib,
            kept(l.images_kept),
            kept(l.embeddings_kept),
            l.load_seconds,
            count,
            l.peak_rss_mib,
            l.rss_mib
        );
    }
    println!("\ndatasets, one at a time (the first one's time and peak include the last model's counting):");
    println!(
        "{:<32} {:>7} {:>8} {:>6} {:>10} {:>8} {:>10} {:>10}",
        "dataset", "classes", "samples", "models", "probs MiB", "s", "peak MiB", "RSS after"
    );
    for d in &r.datasets_phases {
        println!(
            "{:<32} {:>7} {:>8} {:>6} {:>10.1} {:>8.2} {:>10.0} {:>10.0}",
            d.name, d.classes, d.samples, d.models, d.probabilities_mib, d.seconds, d.peak_rss_mib, d.rss_after_mib
        );
    }
    println!("summary and report assembly: {:.2} s, peak RSS {:.0} MiB", r.summary.seconds, r.summary.peak_rss_mib);
    println!(
        "\ntotal build_with {:.1} s; peak RSS {:.0} MiB (largest dataset's probabilities {:.0} MiB, largest model's labels {:.0} MiB)",
        r.total_seconds, r.peak_rss_mib, r.largest_probabilities_mib, r.largest_labels_mib
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(i) = args.writer_process {
        return writer_process(i, &args).await;
    }
    if args.live_rss && std::env::var("GLIBC_TUNABLES").ok().as_deref() != Some(LIVE_RSS_TUNABLES) {
        // Tunables are read at start: run again with them.
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", LIVE_RSS_TUNABLES)
            .status()
            .context("starting the benchmark again with GLIBC_TUNABLES")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    if args.models == 0 || args.datasets == 0 || args.nodes < GROUP || args.graph_images == 0 || args.writers == 0 || args.shard_size == 0 {
        bail!("--models, --datasets, --graph-images, --writers and --shard-size must be at least 1, --nodes at least {GROUP}");
    }
    let recorder =
        Arc::new(Recorder { peak: PeakRss::start(), armed: AtomicBool::new(false), state: Mutex::new((Instant::now(), Vec::new())) });
    tracing::subscriber::set_global_default(Events(recorder.clone())).context("installing the event recorder")?;

    let tag = format!("bench-aggregate-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let (settings, env) = settings_for(&tag)?;
    let redis = RedisStore::connect(&settings.store).await?;
    let base = args.dir.clone().or_else(|| std::env::var_os("BENCH_DIR").map(PathBuf::from)).unwrap_or_else(std::env::temp_dir);
    let dir =
        tempfile::Builder::new().prefix("bench-aggregate-").tempdir_in(&base).with_context(|| format!("a folder in {}", base.display()))?;
    let root = dir.path().join("artifacts");
    let control = RunControl {
        queue: Arc::new(MemoryQueue::new(5)),
        store: Arc::new(redis.clone()),
        artifacts: ArtifactStore::new(&root),
        publish_batch: settings.coordinator.publish_batch,
    };
    println!(
        "machine: {} cores; key prefix {tag}; artifacts under {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        root.display()
    );
    let outcome = bench(&args, &env, &root, &control, &recorder).await;
    // Tear down whatever happened: the run's keys and its artifacts.
    let mut cleanup = Vec::new();
    if let Err(e) = redis.delete_run(&RunId::new(RUN).map_err(anyhow::Error::msg)?).await {
        cleanup.push(format!("deleting keys {tag}:*: {e}"));
    }
    if let Err(e) = dir.close() {
        cleanup.push(format!("deleting the artifacts: {e}"));
    }
    let report = outcome?;
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if !cleanup.is_empty() {
        bail!("the benchmark finished but cleaning up failed: {}", cleanup.join("; "));
    }
    Ok(())
}
