//! Planning: a benchmark spec becomes the full list of jobs, with deterministic
//! ids. Planning reads only small files (class lists, dataset sizes, the graph),
//! never images. The same spec always plans the same jobs, which is what lets
//! `submit` again and `resume` republish only what is missing.

mod checks;
mod error;

pub use error::PlanError;

use crate::captions::{self, CaptionError, ClassMap, DatasetCaptions};
use crate::spec::{BenchmarkSpec, ExecutionOptions, HubModel, MethodPreset, PromptNames, TargetDataset};
use mll_common::data::graph::Graph;
use mll_common::ids::sha256_hex;
use mll_common::job::*;
use mll_common::{Job, RunId, Stage};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where each text of the embed stage sits: per source (`graph`,
/// `dataset:<name>`), per item (node or class) the range of its caption rows in
/// that source's concatenated embedding matrix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextLayout {
    pub sources: BTreeMap<String, Vec<Range<usize>>>,
}

/// A target dataset as resolved for this run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDataset {
    pub spec: TargetDataset,
    /// The dataset's own class names (its classnames.txt or the spec's list).
    pub classnames: Vec<String>,
    /// The names the evaluate jobs put into prompts (`execution.prompt_names`).
    pub prompt_names: Vec<String>,
    pub templates: Vec<String>,
    pub samples: u64,
    /// Classes without captions (matched to graph nodes by their name only).
    pub caption_fallbacks: Vec<String>,
}

/// What planning needs besides the spec and its data root.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Folder of the spec file, where datasets' `class_map` paths start.
    pub spec_dir: Option<PathBuf>,
    /// The spec file itself (for the commands `coordinator plan` suggests).
    pub spec_file: Option<PathBuf>,
    /// A class without captions is an error whatever the spec says (`--strict-captions`).
    pub strict_captions: bool,
    /// Leave the warning about classes without captions out (`coordinator
    /// plan` prints them in its own output).
    pub quiet_fallbacks: bool,
}

impl PlanOptions {
    pub fn for_spec_file(spec_path: &Path, strict_captions: bool) -> Self {
        PlanOptions {
            spec_dir: Some(spec_path.parent().unwrap_or(Path::new(".")).to_path_buf()),
            spec_file: Some(spec_path.to_path_buf()),
            strict_captions,
            quiet_fallbacks: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub run: RunId,
    pub spec: BenchmarkSpec,
    /// Absolute data root the spec's relative paths start from.
    pub data_root: PathBuf,
    pub datasets: Vec<PlannedDataset>,
    /// Ids of the graph's nodes (empty without a graph).
    pub graph_node_ids: Vec<String>,
    /// Their lemmas (the node's name, e.g. `dog`), in the same order.
    pub graph_node_names: Vec<String>,
    /// Number of graph nodes and images (0 without a graph).
    pub graph_nodes: usize,
    pub graph_images: u64,
    /// graph.json's `construction` (e.g. `released`, `ancestors`); None when it does not say.
    pub graph_construction: Option<String>,
    pub texts: TextLayout,
    pub jobs: Vec<Job>,
}

impl Plan {
    pub fn jobs_of(&self, stage: Stage) -> impl Iterator<Item = &Job> {
        self.jobs.iter().filter(move |j| j.stage() == stage)
    }

    /// Per dataset with any: the classes that had no captions.
    pub fn caption_fallbacks(&self) -> Vec<(String, Vec<String>)> {
        self.datasets
            .iter()
            .filter(|d| !d.caption_fallbacks.is_empty())
            .map(|d| (d.spec.name.clone(), d.caption_fallbacks.clone()))
            .collect()
    }

    pub fn stages(&self) -> Vec<Stage> {
        let mut s: Vec<Stage> = self.jobs.iter().map(|j| j.stage()).collect();
        s.sort();
        s.dedup();
        s
    }
}

/// Resolves the spec's data root against the folder of the spec file.
pub fn data_root_of(spec: &BenchmarkSpec, spec_path: &Path) -> PathBuf {
    let base = spec_path.parent().unwrap_or(Path::new("."));
    resolved(&base.join(&spec.data_root))
}

/// `path` as a person should read it: absolute, symbolic links resolved where
/// it exists; otherwise made absolute with `.` and `..` folded away.
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn shards(total: u64, size: u64) -> Vec<Shard> {
    let count = total.div_ceil(size).max(1) as u32;
    (0..count)
        .map(|i| Shard { index: i, count, start: i as u64 * size, end: ((i as u64 + 1) * size).min(total) })
        .filter(|s| s.start < s.end || total == 0)
        .collect()
}

/// A dataset's class map, checked against its class names (None without one).
pub fn dataset_class_map(d: &TargetDataset, classnames: Option<&[String]>, opts: &PlanOptions) -> Result<Option<ClassMap>, PlanError> {
    let Some(rel) = &d.class_map else { return Ok(None) };
    let cerr = |source: CaptionError| PlanError::ClassMap { dataset: d.name.clone(), source };
    let dir = opts.spec_dir.as_deref().ok_or_else(|| {
        PlanError::Spec(format!("dataset '{}': class_map '{rel}' is relative to the spec file; plan it from its file", d.name))
    })?;
    let map = ClassMap::read(&dir.join(rel)).map_err(cerr)?;
    if let Some(names) = classnames {
        map.check_classes(names).map_err(cerr)?;
    }
    Ok(Some(map))
}

/// The dataset's captions through its class map; `Captions` errors name the file.
fn dataset_captions(d: &TargetDataset, data_root: &Path, classnames: &[String], opts: &PlanOptions) -> Result<DatasetCaptions, PlanError> {
    let map = dataset_class_map(d, Some(classnames), opts)?;
    let file = match &d.captions {
        Some(p) => Some(captions::read_captions(&data_root.join(p)).map_err(|e| match e {
            CaptionError::Captions { path, reason } => PlanError::Captions { path, reason },
            other => PlanError::ClassMap { dataset: d.name.clone(), source: other },
        })?),
        None => None,
    };
    Ok(captions::resolve(classnames, map.as_ref(), file.as_ref()))
}

/// Warns about every class without captions; an error when captions are required.
fn check_caption_fallbacks(spec: &BenchmarkSpec, datasets: &[PlannedDataset], opts: &PlanOptions) -> Result<(), PlanError> {
    let mut all = Vec::new();
    for d in datasets.iter().filter(|d| !d.caption_fallbacks.is_empty()) {
        if !opts.quiet_fallbacks {
            tracing::warn!(dataset = %d.spec.name, classes = d.caption_fallbacks.len(), "{}", captions::fallback_note(&d.spec.name, &d.caption_fallbacks));
        }
        all.push(format!("{} ({})", d.spec.name, d.caption_fallbacks.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")));
    }
    if !all.is_empty() && (opts.strict_captions || spec.method.strict_captions) {
        return Err(PlanError::MissingCaptions(all.join("; ")));
    }
    Ok(())
}

/// A graph built another way than the preset's (docs/method.md, "Semantic
/// graph") is worth a warning, not an error: graphs are expensive and the
/// choice may be deliberate.
fn check_construction(spec: &BenchmarkSpec, construction: Option<&str>) {
    let expected = match spec.method.preset {
        MethodPreset::Paper => "released",
        MethodPreset::ClipBenchmark => "ancestors",
    };
    if let Some(c) = construction.filter(|c| *c != expected) {
        tracing::warn!(
            preset = spec.method.preset.as_str(),
            construction = c,
            "the graph was built with construction '{c}', but preset '{}' uses '{expected}'",
            spec.method.preset.as_str()
        );
    }
}

/// The embed jobs of one text source (`items`: each node's or class's
/// captions): the caption rows of each item in the source's concatenated
/// matrix, and one job per chunk of `emb.chunk` texts. `coordinator select`
/// embeds a new task's classes with the same jobs.
pub fn embed_jobs(run: &RunId, emb: &crate::spec::EmbedderSpec, source: &str, items: &[Vec<String>]) -> (Vec<Range<usize>>, Vec<Job>) {
    let mut ranges = Vec::with_capacity(items.len());
    let mut flat: Vec<String> = Vec::new();
    for caps in items {
        ranges.push(flat.len()..flat.len() + caps.len());
        flat.extend(caps.iter().cloned());
    }
    let mut jobs = Vec::new();
    let (name, hosted) = (emb.name(), emb.hosted());
    for (ci, chunk) in flat.chunks(emb.chunk.max(1)).enumerate() {
        let start = (ci * emb.chunk.max(1)) as u64;
        jobs.push(Job::new(
            run.clone(),
            JobPayload::Embed(EmbedJob {
                embedder: name.clone(),
                source: source.to_string(),
                start,
                texts: chunk.to_vec(),
                hosted: hosted.clone(),
            }),
        ));
    }
    (ranges, jobs)
}

/// Plans every job of the spec. `data_root` is where the spec's relative paths
/// resolve on this machine. Specs with `class_map`s need [`plan_with`] and the
/// spec's folder.
pub fn plan(spec: &BenchmarkSpec, data_root: &Path) -> Result<Plan, PlanError> {
    plan_with(spec, data_root, &PlanOptions::default())
}

/// The graph as label jobs see it: its image count and content digest.
#[derive(Debug, Clone)]
pub struct GraphJobs {
    pub images: u64,
    /// SHA-256 of graph.json: a graph rebuilt in place gets new label jobs.
    pub digest: String,
}

/// Samples per job of model `m`: as many as take `shard_seconds` on the
/// reference GPU at the model's `gflops` per image (at least 1), or
/// `shard_size` when cost-aware shards are off or the model has no `gflops`.
pub fn shard_size_for(ex: &ExecutionOptions, m: &HubModel) -> u64 {
    match m.gflops {
        Some(g) if ex.shard_seconds > 0.0 && g > 0.0 => {
            let images = ex.shard_seconds * ex.reference_tflops * 1e3 / g;
            (images.round() as u64).max(1)
        }
        _ => ex.shard_size,
    }
}

/// The hub's jobs: per model, label jobs over the graph's image shards and
/// evaluate jobs over each dataset's sample shards. Split out of
/// [`plan_with`] so that `bench_scale` plans hubs of any size without data on disk.
pub fn hub_jobs(run: &RunId, spec: &BenchmarkSpec, graph: Option<&GraphJobs>, datasets: &[PlannedDataset]) -> Vec<Job> {
    let ex = &spec.execution;
    let mut jobs = Vec::new();
    // The text classifier a dataset's evaluate jobs build (their ids name
    // it), and its prompts, shared by those jobs.
    struct Prompts {
        classifier: String,
        names: Arc<Vec<String>>,
        templates: Arc<Vec<String>>,
    }
    let prompts: Vec<Prompts> = datasets
        .iter()
        .map(|d| Prompts {
            classifier: classifier_digest(&d.prompt_names, &d.templates),
            names: Arc::new(d.prompt_names.clone()),
            templates: Arc::new(d.templates.clone()),
        })
        .collect();
    for m in &spec.hub {
        let model = ModelRef { key: m.key.clone(), artifact: m.artifact.clone() };
        let shard_size = shard_size_for(ex, m);
        // Label jobs: model × graph image shards.
        if let (Some(g), Some(graph)) = (&spec.graph, graph) {
            for shard in shards(graph.images, shard_size) {
                jobs.push(Job::new(
                    run.clone(),
                    JobPayload::Label(LabelJob {
                        model: model.clone(),
                        graph: g.path.clone(),
                        graph_digest: graph.digest.clone(),
                        shard,
                        encode_node_texts: shard.index == 0,
                        top_nodes: g.label_top_nodes,
                        definition_only: spec.method.node_text_definition_only,
                    }),
                ));
            }
        }
        // Evaluate jobs: model × dataset × shards.
        for (d, p) in datasets.iter().zip(&prompts) {
            for shard in shards(d.samples, shard_size) {
                let job = EvaluateJob {
                    model: model.clone(),
                    dataset: DatasetRef { name: d.spec.name.clone(), format: d.spec.format, path: d.spec.path.clone() },
                    shard,
                    classnames: p.names.clone(),
                    templates: p.templates.clone(),
                    protocol: ex.protocol,
                    keep_probabilities: ex.keep_probabilities,
                    dataset_samples: d.samples,
                };
                let id = job.id_with_classifier(run, &p.classifier);
                jobs.push(Job { id, run: run.clone(), payload: JobPayload::Evaluate(job) });
            }
        }
    }
    jobs
}

/// [`plan`] with options.
pub fn plan_with(spec: &BenchmarkSpec, data_root: &Path, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let run = RunId::new(&spec.name).map_err(PlanError::Spec)?;
    checks::check(spec, data_root)?;
    let mut jobs = Vec::new();
    let mut texts = TextLayout::default();
    let mut embed_sources: Vec<(String, Vec<Vec<String>>)> = Vec::new();

    // Target datasets: class names, templates, sizes.
    let mut datasets = Vec::new();
    for (index, d) in spec.datasets.iter().enumerate() {
        let derr = |reason: String| PlanError::Dataset { name: d.name.clone(), reason };
        let path = data_root.join(&d.path);
        let ds = mll_common::data::open_under(data_root, &path, d.format).map_err(|e| derr(e.to_string()))?;
        let classnames = if d.classnames.is_empty() {
            ds.classnames()
                .ok_or_else(|| derr(format!("no class names: give `classnames` in the spec or write {}/classnames.txt", path.display())))?
        } else {
            checks::check_classes(index, &d.classnames, ds.classnames().as_deref())?;
            d.classnames.clone()
        };
        let templates = if !d.templates.is_empty() {
            d.templates.clone()
        } else {
            ds.templates().map_err(|e| derr(e.to_string()))?.unwrap_or_else(|| vec![mll_common::data::DEFAULT_TEMPLATE.to_string()])
        };
        if let Some(bad) = templates.iter().find(|t| !t.contains("{c}")) {
            return Err(derr(format!("template '{bad}' has no {{c}} for the class name")));
        }
        let samples = ds.count().map_err(|e| derr(e.to_string()))?;
        let caps = dataset_captions(d, data_root, &classnames, opts)?;
        let prompt_names = match spec.execution.prompt_names {
            PromptNames::CaptionKeys => caps.keys.clone(),
            PromptNames::Dataset => classnames.clone(),
        };
        embed_sources.push((format!("dataset:{}", d.name), caps.per_class));
        datasets.push(PlannedDataset { spec: d.clone(), classnames, prompt_names, templates, samples, caption_fallbacks: caps.fallbacks });
    }
    check_caption_fallbacks(spec, &datasets, opts)?;

    // Graph: node captions and image count.
    let (mut graph_nodes, mut graph_images, mut graph_node_ids, mut graph_node_names) = (0, 0, Vec::new(), Vec::new());
    let mut graph_construction = None;
    // Label results depend on the graph's content, not only its path: a graph
    // rebuilt in place (other images, other nodes) must not reuse old results.
    let mut graph_digest = String::new();
    if let Some(g) = &spec.graph {
        let path = data_root.join(&g.path);
        let gerr = |reason: String| PlanError::Graph { path: path.clone(), reason };
        let text = std::fs::read(&path).map_err(|e| gerr(format!("{e} (build it with `coordinator graph build`)")))?;
        let head = Graph::from_json(&text, &path).map_err(|e| gerr(e.to_string()))?;
        graph_digest = sha256_hex(&text);
        graph_nodes = head.nodes.len();
        graph_images = head.images.len() as u64;
        graph_node_ids = head.nodes.iter().map(|n| n.id.clone()).collect();
        graph_node_names = head.nodes.iter().map(|n| n.lemma.clone()).collect();
        graph_construction = head.build.as_ref().map(|b| b.construction.to_string());
        check_construction(spec, graph_construction.as_deref());
        let captions = head.nodes.into_iter().map(|n| if n.captions.is_empty() { vec![n.lemma] } else { n.captions }).collect();
        embed_sources.insert(0, ("graph".into(), captions));
    }

    // Embed jobs: one source at a time, so adding a dataset adds only its chunks.
    if let Some(emb) = &spec.embedder {
        for (source, items) in &embed_sources {
            let (ranges, chunk_jobs) = embed_jobs(&run, emb, source, items);
            texts.sources.insert(source.clone(), ranges);
            jobs.extend(chunk_jobs);
        }
    }

    let graph_jobs = spec.graph.as_ref().map(|_| GraphJobs { images: graph_images, digest: graph_digest.clone() });
    jobs.extend(hub_jobs(&run, spec, graph_jobs.as_ref(), &datasets));

    if let Some(diag) = &spec.diagnostic {
        for index in 0..diag.jobs {
            let behavior = if diag.poison.contains(&index) {
                DiagnosticBehavior::FailAlways
            } else if diag.permanent_failures.contains(&index) {
                DiagnosticBehavior::FailPermanently
            } else {
                DiagnosticBehavior::Succeed
            };
            jobs.push(Job::new(run.clone(), JobPayload::Diagnostic(DiagnosticJob { index, work_ms: diag.work_ms, behavior })));
        }
    }

    Ok(Plan {
        run,
        spec: spec.clone(),
        data_root: data_root.to_path_buf(),
        datasets,
        graph_node_ids,
        graph_node_names,
        graph_nodes,
        graph_images,
        graph_construction,
        texts,
        jobs,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn cost_aware_shards_follow_each_models_gflops() {
        use crate::spec::{ExecutionOptions, HubModel, MethodPreset};
        let ex = ExecutionOptions { shard_seconds: 60.0, ..ExecutionOptions::for_preset(MethodPreset::Paper) };
        let model = |gflops: Option<f64>| HubModel { key: "m".into(), artifact: "a".into(), params_m: None, gflops, imagenet_top1: None };
        // 60 s at 125 TFLOP/s = 7.5e15 FLOPs: 1,000,000 images of 7.5 GFLOPs, 6,818 of 1,100.
        assert_eq!(shard_size_for(&ex, &model(Some(7.5))), 1_000_000);
        assert_eq!(shard_size_for(&ex, &model(Some(1100.0))), 6_818);
        assert_eq!(shard_size_for(&ex, &model(None)), ex.shard_size, "no gflops: the fixed size");
        let fixed = ExecutionOptions { shard_seconds: 0.0, ..ex };
        assert_eq!(shard_size_for(&fixed, &model(Some(7.5))), fixed.shard_size);
    }

    use super::*;
    use mll_common::JobId;

    #[test]
    fn shards_cover_exactly() {
        let s = shards(10, 4);
        assert_eq!(s.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(), vec![(0, 4), (4, 8), (8, 10)]);
        assert!(s.iter().all(|x| x.count == 3));
        assert_eq!(shards(4, 4).len(), 1);
    }

    /// A data root with a graph and an ImageFolder dataset whose files are
    /// never decoded while planning.
    fn data_root(dir: &Path, graph_images: usize, per_class: usize) {
        let images: Vec<String> = (0..graph_images).map(|i| format!("{{\"path\": \"g{i}.png\", \"node\": 0}}")).collect();
        std::fs::write(
            dir.join("graph.json"),
            format!(
                "{{\"format_version\": 1, \"nodes\": [{{\"id\": \"n1\", \"lemma\": \"ant\", \"text\": \"ant\"}}], \"images\": [{}]}}",
                images.join(",")
            ),
        )
        .unwrap();
        for class in ["ant", "bee"] {
            let folder = dir.join("ds").join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..per_class {
                std::fs::write(folder.join(format!("{i}.png")), b"").unwrap();
            }
        }
    }

    #[test]
    fn data_regenerated_in_place_gets_new_job_ids() {
        let spec = BenchmarkSpec::from_toml(
            "name = \"ids\"\n[[hub]]\nkey = \"m/v1\"\nartifact = \"models/m/v1\"\n\
             [[datasets]]\nname = \"ds\"\nformat = \"imagefolder\"\npath = \"ds\"\n\
             [graph]\npath = \"graph.json\"\n[execution]\nshard_size = 4\n[method]\nk = [1]\n",
            "t",
        )
        .unwrap();
        let ids = |root: &Path, stage: Stage| -> Vec<JobId> { plan(&spec, root).unwrap().jobs_of(stage).map(|j| j.id.clone()).collect() };
        // Every planned id is the one the worker derives from the payload alone.
        let (root, _keep) = {
            let d = tempfile::tempdir().unwrap();
            data_root(d.path(), 8, 2);
            (d.path().to_path_buf(), d)
        };
        for j in &plan(&spec, &root).unwrap().jobs {
            assert_eq!(j.check_id(), Ok(()), "{}", j.payload.describe());
        }
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        data_root(a.path(), 8, 2);
        data_root(b.path(), 8, 2);
        // Same content, other machine: same ids.
        assert_eq!(ids(a.path(), Stage::Label), ids(b.path(), Stage::Label));
        assert_eq!(ids(a.path(), Stage::Evaluate), ids(b.path(), Stage::Evaluate));
        // Graph rebuilt with more images, dataset with more samples: the first
        // shards cover the same ranges as before but are new jobs.
        data_root(b.path(), 10, 3);
        let (la, lb) = (ids(a.path(), Stage::Label), ids(b.path(), Stage::Label));
        assert!(la.iter().all(|id| !lb.contains(id)), "label: {la:?} vs {lb:?}");
        let (ea, eb) = (ids(a.path(), Stage::Evaluate), ids(b.path(), Stage::Evaluate));
        assert!(ea.iter().all(|id| !eb.contains(id)), "evaluate: {ea:?} vs {eb:?}");
    }

    #[test]
    fn diagnostic_plan_is_deterministic() {
        let spec = BenchmarkSpec::from_toml("name = \"d\"\n[diagnostic]\njobs = 5\npoison = [2]\n", "t").unwrap();
        let a = plan(&spec, Path::new(".")).unwrap();
        let b = plan(&spec, Path::new(".")).unwrap();
        let ids = |p: &Plan| p.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.jobs.len(), 5);
        assert!(matches!(&a.jobs[2].payload, JobPayload::Diagnostic(d) if d.behavior == DiagnosticBehavior::FailAlways));
    }
}
