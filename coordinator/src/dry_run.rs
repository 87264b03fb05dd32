//! `coordinator plan`: a spec planned without publishing anything. It prints
//! the jobs per stage, the resolved method options, the graph (node count,
//! construction) and every class without captions, and checks the inputs
//! `submit` checks (model folders, the embedder, prepared datasets against
//! the manifest). Where the data root lacks something (a dataset folder, a
//! caption file, the graph, model exports), it plans what it can, lists each
//! problem once with its resolved path and the command that makes what is
//! missing, and still reports caption coverage from the datasets' class maps.

use crate::captions;
use crate::plan::{self, PlanError, PlanOptions};
use crate::spec::{BenchmarkSpec, ExecutionOptions, MethodOptions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub run: String,
    /// True when the full plan was made and every input is present.
    pub complete: bool,
    /// What kept the plan from being complete: one entry per problem, with
    /// its resolved path and the command that fixes it.
    pub missing: Vec<String>,
    /// Hub models whose export (module.pt, model.json) is missing.
    pub missing_models: Vec<String>,
    /// Jobs per stage (complete plans only).
    pub jobs: BTreeMap<String, usize>,
    pub datasets: Vec<DatasetDryRun>,
    /// Classes without captions, over every dataset whose captions could be checked.
    pub caption_fallbacks: usize,
    pub graph: Option<GraphDryRun>,
    /// What deserves a look without keeping the plan from being complete
    /// (a dataset whose sample count is not the catalog's).
    pub notes: Vec<String>,
    pub method: MethodOptions,
    pub execution: ExecutionOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetDryRun {
    pub name: String,
    /// Number of classes, and where their names came from (`spec`, `catalog`, `dataset`, `class_map`).
    pub classes: Option<usize>,
    pub class_names_from: Option<String>,
    pub samples: Option<u64>,
    /// The catalog's expected sample count (`catalog = "NAME"` datasets), known
    /// with or without the data.
    pub expected_samples: Option<u64>,
    /// The class map's path (relative to the spec file) and its row count.
    pub class_map: Option<String>,
    pub mapped_classes: Option<usize>,
    /// Classes without captions; None when the caption file could not be read.
    pub caption_fallbacks: Option<Vec<String>>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphDryRun {
    pub path: String,
    pub nodes: Option<usize>,
    pub images: Option<u64>,
    pub construction: Option<String>,
    pub problem: Option<String>,
}

/// Plans `spec` (read from `spec_path`) against `data_root` without publishing.
/// Errors only for what a real plan would refuse on present data (a class map
/// that does not fit its dataset, missing captions under strict captions).
pub fn dry_run(spec: &BenchmarkSpec, data_root: &Path, opts: &PlanOptions) -> Result<DryRun, PlanError> {
    let data_root = &plan::resolved(data_root);
    let opts = &PlanOptions { quiet_fallbacks: true, ..opts.clone() };
    let (mut d, input_problems) = match plan::plan_with(spec, data_root, opts) {
        Ok(p) => (from_plan(&p), crate::inputs::problems(&p)),
        Err(e @ (PlanError::MissingCaptions(_) | PlanError::ClassMap { .. } | PlanError::Spec(_))) => return Err(e),
        Err(e) => {
            let mut d = survey(spec, data_root, opts)?;
            // The survey names every missing dataset input; the planner only the first.
            if d.missing.is_empty() {
                d.missing.push(e.to_string());
            }
            (d, crate::inputs::model_problems(spec, data_root))
        }
    };
    let spec_file = opts.spec_file.as_ref().map_or("SPEC".to_string(), |p| p.display().to_string());
    let mut models = Vec::new();
    for problem in input_problems {
        match problem {
            crate::inputs::InputCheckError::Model { key, reason } => models.push((key, reason)),
            // A dataset whose folder is missing is listed already; the manifest only adds to a present one.
            crate::inputs::InputCheckError::Dataset { name, .. } if d.missing.iter().any(|m| m.starts_with(&format!("{name}: "))) => {}
            other => d.missing.push(other.to_string().trim_start_matches("inputs: ").to_string()),
        }
    }
    if models.len() > 3 {
        let names: Vec<&str> = models.iter().take(3).map(|(k, _)| k.as_str()).collect();
        d.missing.push(format!(
            "hub models: {} of {} not exported ({}, … ; --json lists them): no module.pt and model.json in their folders under {}; \
             `scripts/export-hub --benchmark {spec_file} --out {}`",
            models.len(),
            spec.hub.len(),
            names.join(", "),
            data_root.join("models").display(),
            data_root.display()
        ));
    } else {
        d.missing.extend(models.iter().map(|(key, reason)| format!("model '{key}': {}", reason.replace("SPEC", &spec_file))));
    }
    d.missing_models = models.into_iter().map(|(k, _)| k).collect();
    d.complete = d.missing.is_empty();
    expect_catalog_counts(&mut d, spec, data_root, opts);
    Ok(d)
}

/// Fills each catalog dataset's expected sample count, and notes a prepared
/// dataset whose count differs (another split, a partial download).
fn expect_catalog_counts(d: &mut DryRun, spec: &BenchmarkSpec, data_root: &Path, opts: &PlanOptions) {
    if spec.datasets.iter().all(|x| x.catalog.is_none()) {
        return;
    }
    // The spec resolved its references with this catalog already, so it is there.
    let origin = opts.spec_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let Ok(path) = crate::spec::catalog::catalog_path_for(&origin) else { return };
    let Ok(catalog) = crate::spec::catalog::Catalog::load(&path) else { return };
    for (x, spec_d) in d.datasets.iter_mut().zip(&spec.datasets) {
        let Some(entry) = spec_d.catalog.as_deref().and_then(|c| catalog.get(c)) else { continue };
        x.expected_samples = Some(entry.samples);
        if let Some(n) = x.samples.filter(|&n| n != entry.samples) {
            d.notes.push(format!(
                "{}: {n} samples in {}, the catalog expects {} (split {}: {}); numbers from this folder are not the \
                 paper's: `scripts/prepare-data --only {} --out {}` prepares the dataset as the catalog describes and checks its count",
                x.name,
                spec_d.path,
                entry.samples,
                entry.split,
                entry.samples_source,
                entry.name,
                data_root.display()
            ));
        }
    }
}

/// The command that makes a catalog dataset's folder (and, with `--captions
/// DIR`, copies its caption file).
fn prepare_command(d: &crate::spec::TargetDataset, data_root: &Path) -> Option<String> {
    d.catalog.as_ref().map(|c| format!("scripts/prepare-data --only {c} --out {}", data_root.display()))
}

/// What to do about a dataset's missing folder.
fn prepare_hint(d: &crate::spec::TargetDataset, data_root: &Path) -> String {
    match prepare_command(d, data_root) {
        Some(cmd) => format!("`{cmd}`"),
        None => "check the dataset's `path` in the spec, and the data root (--data-root DIR, or the spec's data_root)".to_string(),
    }
}

fn from_plan(p: &plan::Plan) -> DryRun {
    let mut jobs = BTreeMap::new();
    for j in &p.jobs {
        *jobs.entry(j.stage().to_string()).or_insert(0) += 1;
    }
    let datasets: Vec<DatasetDryRun> = p
        .datasets
        .iter()
        .map(|d| DatasetDryRun {
            name: d.spec.name.clone(),
            classes: Some(d.classnames.len()),
            class_names_from: Some(
                match (d.spec.classnames.is_empty(), d.spec.catalog.is_some()) {
                    (true, _) => "dataset",
                    (false, true) => "catalog",
                    (false, false) => "spec",
                }
                .into(),
            ),
            samples: Some(d.samples),
            expected_samples: None,
            class_map: d.spec.class_map.clone(),
            mapped_classes: d.spec.class_map.as_ref().map(|_| d.classnames.len()),
            caption_fallbacks: Some(d.caption_fallbacks.clone()),
            problems: vec![],
        })
        .collect();
    let graph = p.spec.graph.as_ref().map(|g| GraphDryRun {
        path: g.path.clone(),
        nodes: Some(p.graph_nodes),
        images: Some(p.graph_images),
        construction: p.graph_construction.clone(),
        problem: None,
    });
    DryRun {
        run: p.run.to_string(),
        complete: true,
        missing: vec![],
        missing_models: vec![],
        jobs,
        caption_fallbacks: datasets.iter().filter_map(|d| d.caption_fallbacks.as_ref()).map(Vec::len).sum(),
        datasets,
        graph,
        notes: vec![],
        method: p.spec.method.clone(),
        execution: p.spec.execution.clone(),
    }
}

/// Dataset by dataset and the graph, tolerating what is missing.
fn survey(spec: &BenchmarkSpec, data_root: &Path, opts: &PlanOptions) -> Result<DryRun, PlanError> {
    let mut datasets = Vec::new();
    let mut missing = Vec::new();
    for d in &spec.datasets {
        let mut problems = Vec::new();
        let map = plan::dataset_class_map(d, None, opts)?;
        let folder = data_root.join(&d.path);
        let opened = if folder.is_dir() { Some(mll_common::data::open_under(data_root, &folder, d.format)) } else { None };
        let (mut classnames, mut from, mut samples) = (None, None, None);
        if !d.classnames.is_empty() {
            classnames = Some(d.classnames.clone());
            // A `catalog = "NAME"` dataset's names come from that catalog entry.
            from = Some(if d.catalog.is_some() { "catalog" } else { "spec" }.to_string());
        }
        match &opened {
            Some(Ok(ds)) => {
                if classnames.is_none() {
                    classnames = ds.classnames();
                    from = classnames.as_ref().map(|_| "dataset".to_string());
                }
                match ds.count() {
                    Ok(n) => samples = Some(n),
                    Err(e) => problems.push(format!("cannot count samples: {e}")),
                }
            }
            Some(Err(e)) => problems.push(format!("dataset folder {}: {e}", folder.display())),
            // Said below, with the caption file when that is missing too (one command makes both).
            None => {}
        }
        if classnames.is_none() {
            if let Some(m) = &map {
                classnames = Some(m.rows.iter().map(|r| r.class.clone()).collect());
                from = Some("class_map".to_string());
            }
        }
        if let (Some(m), Some(names), Some("dataset" | "spec" | "catalog")) = (&map, &classnames, from.as_deref()) {
            m.check_classes(names).map_err(|source| PlanError::ClassMap { dataset: d.name.clone(), source })?;
        }
        let mut fallbacks = None;
        let mut captions_missing = None;
        if let Some(names) = &classnames {
            match &d.captions {
                Some(rel) => {
                    let file = data_root.join(rel);
                    match captions::read_captions(&file) {
                        Ok(read) => fallbacks = Some(captions::resolve(names, map.as_ref(), Some(&read)).fallbacks),
                        Err(_) if !file.exists() => captions_missing = Some(file),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
                None => fallbacks = Some(captions::resolve(names, map.as_ref(), None).fallbacks),
            }
        } else {
            problems.push("no class names: no dataset folder, no `classnames` in the spec and no class_map".into());
        }
        // One message per missing thing, and one for a folder and its caption file when one command makes both.
        match (opened.is_none(), captions_missing, prepare_command(d, data_root)) {
            (true, Some(file), Some(cmd)) => problems.push(format!(
                "dataset folder {} and caption file {} do not exist; `{cmd} --captions DIR` makes both",
                folder.display(),
                file.display()
            )),
            (folder_missing, file, cmd) => {
                if folder_missing {
                    problems.push(format!("dataset folder {} does not exist; {}", folder.display(), prepare_hint(d, data_root)));
                }
                if let Some(file) = file {
                    problems.push(match cmd {
                        Some(cmd) => format!("caption file {} does not exist; `{cmd} --captions DIR` copies it", file.display()),
                        None => format!("caption file {} does not exist; check the dataset's `captions` in the spec", file.display()),
                    });
                }
            }
        }
        missing.extend(problems.iter().map(|p| format!("{}: {p}", d.name)));
        datasets.push(DatasetDryRun {
            name: d.name.clone(),
            classes: classnames.as_ref().map(Vec::len),
            class_names_from: from,
            samples,
            expected_samples: None,
            class_map: d.class_map.clone(),
            mapped_classes: map.as_ref().map(|m| m.rows.len()),
            caption_fallbacks: fallbacks,
            problems,
        });
    }
    let graph = spec.graph.as_ref().map(|g| {
        let path = data_root.join(&g.path);
        let head = std::fs::read_to_string(&path)
            .map_err(|e| {
                if path.exists() {
                    format!("graph {}: {e}", path.display())
                } else {
                    format!(
                        "graph {} does not exist; build it: `coordinator graph build --out {} --samples DIR ...` \
                         (README.md, \"The paper's 49 × 17 benchmark\", step 4)",
                        path.display(),
                        path.display()
                    )
                }
            })
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| format!("graph {}: {e}", path.display())));
        match head {
            Ok(v) => GraphDryRun {
                path: g.path.clone(),
                nodes: v["nodes"].as_array().map(Vec::len),
                images: v["images"].as_array().map(|a| a.len() as u64),
                // graph.json's `build` block (mll_common::data::graph::GraphBuild); older graphs have none.
                construction: v["build"]["construction"].as_str().map(String::from),
                problem: None,
            },
            Err(e) => {
                missing.push(e.clone());
                GraphDryRun { path: g.path.clone(), nodes: None, images: None, construction: None, problem: Some(e) }
            }
        }
    });
    let known: Vec<(String, Vec<String>)> = datasets
        .iter()
        .filter_map(|d| d.caption_fallbacks.as_ref().filter(|f| !f.is_empty()).map(|f| (d.name.clone(), f.clone())))
        .collect();
    if !known.is_empty() && (opts.strict_captions || spec.method.strict_captions) {
        return Err(PlanError::MissingCaptions(known.iter().map(|(d, f)| captions::fallback_note(d, f)).collect::<Vec<_>>().join("; ")));
    }
    Ok(DryRun {
        run: spec.name.clone(),
        complete: false,
        missing,
        missing_models: vec![],
        jobs: BTreeMap::new(),
        caption_fallbacks: known.iter().map(|(_, f)| f.len()).sum(),
        datasets,
        graph,
        notes: vec![],
        method: spec.method.clone(),
        execution: spec.execution.clone(),
    })
}

/// The human-readable form `coordinator plan` prints.
pub fn render(d: &DryRun) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let state = if d.complete {
        "complete plan, every input present".to_string()
    } else {
        format!("plan incomplete, {} input problem(s) listed at the end (exit code 3)", d.missing.len())
    };
    let _ = writeln!(s, "run {}: {state}; nothing was published", d.run);
    let _ = writeln!(s, "\njobs per stage:");
    if d.jobs.is_empty() {
        let _ = writeln!(s, "  (unknown until every input is present)");
    }
    for (stage, n) in &d.jobs {
        let _ = writeln!(s, "  {stage:<10} {n}");
    }
    let _ = writeln!(s, "\ngraph:");
    match &d.graph {
        None => {
            let _ = writeln!(s, "  none in the spec");
        }
        Some(g) => match g.nodes {
            Some(n) => {
                let _ = writeln!(
                    s,
                    "  {}: {n} nodes, {} images, construction {}",
                    g.path,
                    g.images.map_or("?".into(), |i| i.to_string()),
                    g.construction.as_deref().unwrap_or("unknown (graph.json does not say)")
                );
            }
            None => {
                let _ = writeln!(s, "  {}: missing (see the end)", g.path);
            }
        },
    }
    let unchecked = d.datasets.iter().filter(|x| x.caption_fallbacks.is_none()).count();
    let _ = writeln!(
        s,
        "\ncaption fallbacks: {} class(es){}",
        d.caption_fallbacks,
        if unchecked > 0 {
            format!(" ({unchecked} dataset(s) whose caption file could not be read are not counted)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "\n{:<32} {:>7} {:>9} {:>9} {:>12} {:>9}  class names from",
        "dataset", "classes", "samples", "expected", "class map", "fallback"
    );
    for x in &d.datasets {
        let mapped = match (x.mapped_classes, x.classes) {
            (Some(m), Some(c)) => format!("{m}/{c}"),
            (Some(m), None) => format!("{m}/?"),
            _ => "-".into(),
        };
        let fb = x.caption_fallbacks.as_ref().map_or("?".into(), |f| f.len().to_string());
        let _ = writeln!(
            s,
            "{:<32} {:>7} {:>9} {:>9} {:>12} {:>9}  {}",
            x.name,
            x.classes.map_or("?".into(), |c| c.to_string()),
            x.samples.map_or("?".into(), |c| c.to_string()),
            x.expected_samples.map_or("-".into(), |c| c.to_string()),
            mapped,
            fb,
            x.class_names_from.as_deref().unwrap_or("?")
        );
        if let Some(f) = x.caption_fallbacks.as_ref().filter(|f| !f.is_empty()) {
            let _ = writeln!(s, "    without captions: {}", f.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "));
        }
    }
    if !d.notes.is_empty() {
        let _ = writeln!(s, "\nnotes:");
        for n in &d.notes {
            let _ = writeln!(s, "  - {n}");
        }
    }
    let _ = writeln!(s, "\nmethod (preset {}):", d.method.preset.as_str());
    for (section, value) in [("method", serde_json::to_value(&d.method)), ("execution", serde_json::to_value(&d.execution))] {
        if let Ok(serde_json::Value::Object(m)) = value {
            for (k, v) in m {
                let _ = writeln!(s, "  {section}.{k} = {v}");
            }
        }
    }
    if !d.missing.is_empty() {
        let _ = writeln!(s, "\nmissing ({}):", d.missing.len());
        for m in &d.missing {
            let _ = writeln!(s, "  - {m}");
        }
        if d.missing.iter().any(|m| m.contains("--captions DIR")) {
            let _ = writeln!(
                s,
                "  (--captions DIR: a folder of MLL's caption files <Dataset>.json, the paper repository's MLL/caption_gen/captions/)"
            );
        }
    }
    s
}
