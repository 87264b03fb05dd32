//! Placement benchmark (docs/operations.md, "Placement"): the real planner's
//! job list for a hub (`plan::hub_jobs`, cost-aware shards from the spec's
//! `[execution]`) driven through the real lane policy
//! (`mll_common::queue::lanes::choose`, what every worker calls) by W
//! simulated workers with modelled durations, beside today's FIFO placement
//! (one queue in plan order, a worker takes whatever comes next). Prints, per
//! W and policy: makespan against the ideal (compute / W), model loads and
//! bytes loaded.
//!
//! Model: a job of n images on a model of g GFLOPs per image takes
//! n · g / (TFLOP/s · 1000) seconds; loading a model not in the worker's
//! cache (LRU, `--cache-gib`) takes its fp32 bytes (params × 4) over
//! `--load-gbps`; a worker whose lane is empty looks for another after
//! `--lane-idle-s`, as the worker loop does. Dataset sizes are the 17 targets'
//! test sets (cycled past 17), with `--graph-images` label images per model.
//!
//!   scripts/bench-placement                      # the 49 × 17 hub and a 1,000-model hub
//!   scripts/bench-placement --models 1000 --workers 256 --shard-seconds 60

use anyhow::Context;
use clap::Parser;
use mll_common::queue::lanes::{choose, Lane, LaneLoad};
use mll_common::{Job, RunId};
use mll_coordinator::plan::{self, GraphJobs, PlannedDataset};
use mll_coordinator::spec::{BenchmarkSpec, HubModel};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(about = "Model placement on W simulated workers: FIFO against lanes, on the real planner's jobs and the real lane policy")]
struct Args {
    /// The hub's spec (models with params_m and gflops).
    #[arg(long, default_value = "configs/benchmarks/mll-49x17.toml")]
    spec: PathBuf,
    /// Hub sizes to run: the spec's models, cycled to each size (0: the spec's own).
    #[arg(long, value_delimiter = ',', default_value = "0,1000")]
    models: Vec<usize>,
    /// Worker counts.
    #[arg(long, value_delimiter = ',', default_value = "8,64,256")]
    workers: Vec<usize>,
    /// Override the spec's execution.shard_seconds (0: fixed shard_size).
    #[arg(long)]
    shard_seconds: Option<f64>,
    /// Fixed samples per job of today's FIFO rows.
    #[arg(long, default_value_t = 2000)]
    fifo_shard_size: u64,
    /// Effective inference throughput of one GPU, TFLOP/s.
    #[arg(long, default_value_t = 125.0)]
    tflops: f64,
    /// Model load rate from the shared volume, GB/s per worker.
    #[arg(long, default_value_t = 1.5)]
    load_gbps: f64,
    /// The worker's model cache, GiB (worker.model_cache_gib).
    #[arg(long, default_value_t = 8.0)]
    cache_gib: f64,
    /// Graph images each model labels.
    #[arg(long, default_value_t = 300_000)]
    graph_images: u64,
    /// How long a worker waits on an empty lane before it looks for another.
    #[arg(long, default_value_t = 0.5)]
    lane_idle_s: f64,
    /// Lanes weigh each move's load time (what the workers do); off: ready work per worker alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    load_aware: bool,
    /// Write the rows as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[path = "support/targets.rs"]
mod targets;
use targets::DATASET_SHAPES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Policy {
    /// One queue in plan order, fixed shards: the placement before lanes.
    Fifo,
    /// Lanes per model and the worker's lane policy, cost-aware shards.
    Lanes,
}

#[derive(Debug, Serialize)]
struct Row {
    models: usize,
    workers: usize,
    policy: Policy,
    jobs: usize,
    shard: String,
    ideal_s: f64,
    makespan_s: f64,
    ratio: f64,
    loads: u64,
    bytes_loaded: f64,
    /// M's bytes + W × the largest model's: the target's base.
    bytes_bound: f64,
    loads_ok: bool,
    bytes_ok: bool,
}

/// A planned job reduced to what the simulation needs.
struct SimJob {
    model: usize,
    seconds: f64,
}

struct Hub {
    spec: BenchmarkSpec,
    bytes: Vec<f64>,
}

fn hub(base: &BenchmarkSpec, models: usize) -> Hub {
    let mut spec = base.clone();
    if models > 0 {
        spec.hub = (0..models)
            .map(|i| {
                let m = &base.hub[i % base.hub.len()];
                HubModel { key: format!("{}#{i}", m.key), artifact: format!("{}#{i}", m.artifact), ..m.clone() }
            })
            .collect();
    }
    let bytes = spec.hub.iter().map(|m| m.params_m.unwrap_or(100.0) * 1e6 * 4.0).collect();
    Hub { spec, bytes }
}

fn jobs_of(hub: &Hub, args: &Args, fixed: Option<u64>) -> anyhow::Result<Vec<SimJob>> {
    let mut spec = hub.spec.clone();
    match fixed {
        Some(size) => {
            spec.execution.shard_seconds = 0.0;
            spec.execution.shard_size = size;
        }
        None => {
            if let Some(s) = args.shard_seconds {
                spec.execution.shard_seconds = s;
            }
        }
    }
    let run = RunId::new("bench-placement").map_err(anyhow::Error::msg)?;
    let datasets: Vec<PlannedDataset> = spec
        .datasets
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (classes, samples) = DATASET_SHAPES[i % DATASET_SHAPES.len()];
            let names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
            PlannedDataset {
                spec: d.clone(),
                classnames: names.clone(),
                prompt_names: names,
                templates: vec!["a photo of a {c}.".into()],
                samples,
                caption_fallbacks: Vec::new(),
            }
        })
        .collect();
    let graph = GraphJobs { images: args.graph_images, digest: "bench".into() };
    let planned: Vec<Job> = plan::hub_jobs(&run, &spec, spec.graph.as_ref().map(|_| &graph), &datasets);
    let index: HashMap<&str, usize> = spec.hub.iter().enumerate().map(|(i, m)| (m.artifact.as_str(), i)).collect();
    planned
        .iter()
        .map(|j| {
            let m = j.model().context("a hub job without a model")?;
            let i = index[m.artifact.as_str()];
            let images = match &j.payload {
                mll_common::JobPayload::Evaluate(e) => e.shard.end - e.shard.start,
                mll_common::JobPayload::Label(l) => l.shard.end - l.shard.start,
                _ => 0,
            };
            let g = spec.hub[i].gflops.unwrap_or(10.0);
            Ok(SimJob { model: i, seconds: images as f64 * g / (args.tflops * 1e3) })
        })
        .collect()
}

/// One worker's LRU model cache.
struct Cache {
    capacity: f64,
    held: VecDeque<usize>,
    bytes: f64,
}

impl Cache {
    /// Whether `m` had to be loaded (and evicts the least recently used to fit it).
    fn load(&mut self, m: usize, sizes: &[f64]) -> bool {
        if let Some(p) = self.held.iter().position(|&x| x == m) {
            self.held.remove(p);
            self.held.push_back(m);
            return false;
        }
        while self.bytes + sizes[m] > self.capacity && !self.held.is_empty() {
            let old = self.held.pop_front().expect("not empty");
            self.bytes -= sizes[old];
        }
        self.held.push_back(m);
        self.bytes += sizes[m];
        true
    }
}

struct Outcome {
    makespan: f64,
    loads: u64,
    bytes: f64,
}

fn simulate(policy: Policy, jobs: &[SimJob], hub: &Hub, workers: usize, args: &Args) -> Outcome {
    let sizes = &hub.bytes;
    let load_s = |m: usize| sizes[m] / (args.load_gbps * 1e9);
    let mut caches: Vec<Cache> =
        (0..workers).map(|_| Cache { capacity: args.cache_gib * (1u64 << 30) as f64, held: VecDeque::new(), bytes: 0.0 }).collect();
    let (mut loads, mut bytes, mut makespan) = (0u64, 0.0f64, 0.0f64);
    // Worker-free events, earliest first (ties by worker index).
    let mut free: BinaryHeap<Reverse<(u64, usize)>> = (0..workers).map(|w| Reverse((0, w))).collect();
    let nanos = |s: f64| (s * 1e9).round() as u64;
    match policy {
        Policy::Fifo => {
            let mut next = 0;
            while let Some(Reverse((t, w))) = free.pop() {
                let now = t as f64 / 1e9;
                makespan = makespan.max(now);
                let Some(job) = jobs.get(next) else { continue };
                next += 1;
                let mut end = now + job.seconds;
                if caches[w].load(job.model, sizes) {
                    loads += 1;
                    bytes += sizes[job.model];
                    end += load_s(job.model);
                }
                free.push(Reverse((nanos(end), w)));
            }
        }
        Policy::Lanes => {
            let lane_of: Vec<Lane> = hub.spec.hub.iter().map(|m| Lane::of_model(&m.artifact)).collect();
            let mut queues: BTreeMap<Lane, VecDeque<&SimJob>> = BTreeMap::new();
            for j in jobs {
                queues.entry(lane_of[j.model].clone()).or_default().push_back(j);
            }
            let lanes: Vec<Lane> = queues.keys().cloned().collect();
            let mut current: Vec<Option<Lane>> = vec![None; workers];
            let mut consumers: BTreeMap<Option<Lane>, u32> = BTreeMap::new();
            consumers.insert(None, workers as u32);
            let mut waiting = 0usize;
            while let Some(Reverse((t, w))) = free.pop() {
                let now = t as f64 / 1e9;
                let has_work = current[w].as_ref().and_then(|l| queues.get(l)).is_some_and(|q| !q.is_empty());
                let mut start = now;
                if !has_work {
                    // What the broker would report: ready messages and consumers per lane.
                    // The worker's estimate of a move: the model's load time
                    // over its lane's job time, 0 for a model it holds.
                    let loads_now: Vec<LaneLoad> = std::iter::once(LaneLoad::new(None, 0, consumers[&None]))
                        .chain(lanes.iter().map(|l| {
                            let mut load = LaneLoad::new(
                                Some(l.clone()),
                                queues[l].len() as u64,
                                consumers.get(&Some(l.clone())).copied().unwrap_or(0),
                            );
                            if let Some(j) = queues[l].front() {
                                if args.load_aware && !caches[w].held.contains(&j.model) && j.seconds > 0.0 {
                                    load.load_cost = load_s(j.model) / j.seconds;
                                }
                            }
                            load
                        }))
                        .collect();
                    match choose(&current[w], &loads_now) {
                        Some(next) if next != current[w] => {
                            *consumers.entry(current[w].clone()).or_default() -= 1;
                            *consumers.entry(next.clone()).or_default() += 1;
                            current[w] = next;
                            // A worker that just finished a job looks right away
                            // only at start; later it waited `lane_idle_s` first.
                            if now > 0.0 {
                                start += args.lane_idle_s;
                            }
                        }
                        _ => {
                            waiting += 1;
                            makespan = makespan.max(now);
                            continue;
                        }
                    }
                }
                let lane = current[w].clone().expect("a lane with work");
                let job = queues.get_mut(&lane).and_then(VecDeque::pop_front).expect("ready work");
                let mut end = start + job.seconds;
                if caches[w].load(job.model, sizes) {
                    loads += 1;
                    bytes += sizes[job.model];
                    end += load_s(job.model);
                }
                makespan = makespan.max(end);
                free.push(Reverse((nanos(end), w)));
            }
            let _ = waiting;
        }
    }
    Outcome { makespan, loads, bytes }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = BenchmarkSpec::load(&args.spec).with_context(|| format!("loading {}", args.spec.display()))?;
    let mut rows = Vec::new();
    println!(
        "{:>6} {:>5} {:<6} {:>7} {:<22} {:>9} {:>9} {:>6} {:>7} {:>9} {:>9}",
        "models", "W", "policy", "jobs", "shards", "ideal", "makespan", "ratio", "loads", "TB read", "TB bound"
    );
    for &m in &args.models {
        let hub = hub(&base, m);
        let n_models = hub.spec.hub.len();
        let largest = hub.bytes.iter().cloned().fold(0.0, f64::max);
        let all_bytes: f64 = hub.bytes.iter().sum();
        let ex = &hub.spec.execution;
        let shard_seconds = args.shard_seconds.unwrap_or(ex.shard_seconds);
        for &w in &args.workers {
            for (policy, fixed) in [(Policy::Fifo, Some(args.fifo_shard_size)), (Policy::Lanes, None)] {
                let jobs = jobs_of(&hub, &args, fixed)?;
                let compute: f64 = jobs.iter().map(|j| j.seconds).sum();
                let ideal = compute / w as f64;
                let o = simulate(policy, &jobs, &hub, w, &args);
                let bound = all_bytes + w as f64 * largest;
                let shard = match fixed {
                    Some(s) => format!("{s} samples"),
                    None if shard_seconds > 0.0 => format!("{shard_seconds} s on {} TF/s", ex.reference_tflops),
                    None => format!("{} samples", ex.shard_size),
                };
                let row = Row {
                    models: n_models,
                    workers: w,
                    policy,
                    jobs: jobs.len(),
                    shard,
                    ideal_s: ideal,
                    makespan_s: o.makespan,
                    ratio: o.makespan / ideal,
                    loads: o.loads,
                    bytes_loaded: o.bytes,
                    bytes_bound: bound,
                    loads_ok: o.loads as usize <= n_models + 2 * w,
                    bytes_ok: o.bytes <= 1.1 * bound,
                };
                println!(
                    "{:>6} {:>5} {:<6} {:>7} {:<22} {:>8.1}m {:>8.1}m {:>5.3}x {:>7} {:>9.2} {:>9.2}",
                    row.models,
                    row.workers,
                    format!("{:?}", row.policy).to_lowercase(),
                    row.jobs,
                    row.shard,
                    row.ideal_s / 60.0,
                    row.makespan_s / 60.0,
                    row.ratio,
                    row.loads,
                    row.bytes_loaded / 1e12,
                    row.bytes_bound / 1e12
                );
                rows.push(row);
            }
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
