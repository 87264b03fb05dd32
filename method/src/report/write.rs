//! report.json, report.md, accuracy_matrix.csv and the charts.

use super::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Rounds to 6 decimals (the precision every output file carries).
pub(crate) fn round6(x: f64) -> f64 {
    if x.is_finite() {
        let r = (x * 1e6).round() / 1e6;
        // Avoid writing "-0.0".
        if r == 0.0 {
            0.0
        } else {
            r
        }
    } else {
        x
    }
}

fn round_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(r) = n.as_f64().map(round6).and_then(serde_json::Number::from_f64) {
                *n = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(round_value),
        serde_json::Value::Object(o) => o.values_mut().for_each(round_value),
        _ => {}
    }
}

/// report.json's text: pretty JSON, floats rounded to 6 decimals, NaN as null.
pub fn report_json(report: &Report) -> String {
    let mut v = serde_json::to_value(report).expect("a report is plain data");
    round_value(&mut v);
    let mut s = serde_json::to_string_pretty(&v).expect("a JSON value serialises");
    s.push('\n');
    s
}

fn cell(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{:.4}", round6(v)),
        _ => "–".to_string(),
    }
}

fn csv_num(x: f64) -> String {
    if x.is_finite() {
        format!("{}", round6(x))
    } else {
        String::new()
    }
}

/// The accuracy matrix: one row per model (`model,pretrained` as open_clip's
/// results table), one column per dataset with its CLIP_benchmark name; top-1 as
/// a fraction, empty where missing. `report --truth` reads this shape back.
/// Written by the `csv` crate, so a name with a comma or a quote is quoted.
pub fn accuracy_matrix_csv(report: &Report) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let header = ["model", "pretrained"].into_iter().map(str::to_string).chain(report.datasets.iter().map(|d| d.benchmark_name.clone()));
    w.write_record(header).expect("writing to memory");
    for (i, m) in report.models.iter().enumerate() {
        let (arch, tag) = m.key.split_once('/').unwrap_or((m.key.as_str(), ""));
        let row = [arch.to_string(), tag.to_string()].into_iter().chain(report.datasets.iter().map(|d| csv_num(d.accuracy[i].top1)));
        w.write_record(row).expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("the fields are UTF-8")
}

fn selection_acc(d: &DatasetReport, name: &str) -> Option<f64> {
    d.selections.get(name).and_then(|s| s.accuracy)
}

/// report.md: the paper-style tables.
pub fn report_markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# MLL report: {}\n", report.run);
    let o = &report.method;
    let _ = writeln!(
        s,
        "Spec digest `{}`; accuracies from {}; {} models, {} datasets ({} complete).\n\nMethod: preset {}, α = {}, {} nodes per class, node score {}, k = {:?}, ensemble weight {}, seed {}.\n",
        report.spec_digest,
        report.source,
        report.models.len(),
        report.summary.datasets,
        report.summary.complete,
        o.preset.as_str(),
        o.alpha,
        o.nodes_per_class,
        option_name(&o.node_score),
        o.k,
        option_name(&o.ensemble_weight),
        o.seed
    );
    let _ = writeln!(s, "Every method and metric is explained in the legend at the end.\n");

    // Selection accuracy: per k, INB / MLL / oracle like the paper, then the other baselines.
    // Random k=1 is the hub average exactly (the legend says so), so it gets no column.
    let mut columns: Vec<(String, String)> = Vec::new();
    let modelgpt_ran = report.datasets.iter().any(|d| d.selections.keys().any(|k| k.starts_with("modelgpt_k")));
    for &k in &o.k {
        columns.push((format!("INB k={k}"), format!("inb_k{k}")));
        if modelgpt_ran {
            columns.push((format!("ModelGPT k={k}"), format!("modelgpt_k{k}")));
        }
        columns.push((format!("MLL k={k}"), format!("mll_k{k}")));
    }
    columns.push(("Oracle".into(), "oracle".into()));
    columns.push(("Hub avg".into(), "hub_average".into()));
    for &k in o.k.iter().filter(|&&k| k > 1) {
        columns.push((format!("Random k={k}"), format!("random_k{k}")));
    }
    let _ = writeln!(s, "## Reuse top-1 accuracy\n");
    let _ = writeln!(s, "| dataset | {} |", columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(columns.len()));
    for d in &report.datasets {
        let mark = if d.complete { "" } else { " (incomplete)" };
        let row: Vec<String> = columns.iter().map(|c| cell(selection_acc(d, &c.1))).collect();
        let _ = writeln!(s, "| {}{} | {} |", d.name, mark, row.join(" | "));
    }
    let means: Vec<String> = columns.iter().map(|c| cell(report.summary.selections.get(&c.1).map(|x| x.accuracy))).collect();
    let _ = writeln!(s, "| **mean (complete datasets)** | {} |\n", means.join(" | "));
    if !modelgpt_ran {
        let _ = writeln!(s, "- ModelGPT: not run (no `[llm]` in the spec and no `report --modelgpt` answers).\n");
    }
    let coincide = coinciding_selections(report);
    for note in &coincide {
        let _ = writeln!(s, "- {note}");
    }
    if !coincide.is_empty() {
        let _ = writeln!(s);
    }

    // The reuse-weight ablation.
    let ablation: Vec<(String, String)> = o
        .k
        .iter()
        .flat_map(|k| {
            [(format!("MLL k={k} w=1/H"), format!("mll_k{k}_w_inverse_entropy")), (format!("MLL k={k} w=H"), format!("mll_k{k}_w_entropy"))]
        })
        .filter(|c| report.datasets.iter().any(|d| d.selections.contains_key(&c.1)))
        .collect();
    if !ablation.is_empty() {
        let _ = writeln!(s, "## Reuse weight ablation: w = 1/H (released code) vs w = H (paper's text)\n");
        let _ = writeln!(s, "| dataset | {} |", ablation.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(ablation.len()));
        for d in &report.datasets {
            let mark = if d.complete { "" } else { " (incomplete)" };
            let row: Vec<String> = ablation.iter().map(|c| cell(selection_acc(d, &c.1))).collect();
            let _ = writeln!(s, "| {}{} | {} |", d.name, mark, row.join(" | "));
        }
        let means: Vec<String> = ablation.iter().map(|c| cell(report.summary.selections.get(&c.1).map(|x| x.accuracy))).collect();
        let _ = writeln!(s, "| **mean (complete datasets)** | {} |\n", means.join(" | "));
        let own = if option_name(&o.ensemble_weight) == "inverse_entropy" { "w=1/H" } else { "w=H" };
        let _ = writeln!(
            s,
            "- The method reuses with {own} (`ensemble_weight = \"{}\"`): its columns here are the MLL k columns above, repeated \
             beside the other weighting.\n",
            option_name(&o.ensemble_weight)
        );
    }

    // Ranking quality.
    let methods: Vec<&String> = report.summary.rankings.keys().collect();
    let _ = writeln!(s, "## Ranking quality (mean over complete datasets)\n");
    let _ = writeln!(s, "| method | R5 | τ5 | Kendall τ-b | weighted τ | datasets |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for (name, r) in &report.summary.rankings {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} |",
            cell(Some(r.r5)),
            cell(Some(r.tau5)),
            cell(Some(r.kendall_tau_b)),
            cell(Some(r.weighted_tau)),
            r.datasets
        );
    }
    for note in coinciding_rankings(report) {
        let _ = writeln!(s, "\n- {note}");
    }
    let _ = writeln!(s, "\n## Ranking quality per dataset (R5 / τ5)\n");
    // A table needs a column besides the dataset's; an empty hub has no rankings.
    if methods.is_empty() {
        let _ = writeln!(s, "No rankings: the hub has no models.");
    } else {
        let _ = writeln!(s, "| dataset | {} |", methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(methods.len()));
        for d in &report.datasets {
            let row: Vec<String> = methods
                .iter()
                .map(|m| match d.rankings.get(*m) {
                    Some(r) => format!("{} / {}", cell(Some(r.r5)), cell(Some(r.tau5))),
                    None => "–".into(),
                })
                .collect();
            let _ = writeln!(s, "| {} | {} |", d.name, row.join(" | "));
        }
    }

    let _ = writeln!(s, "\n## Best models (ground truth)\n");
    let _ = writeln!(s, "| dataset | top-1 model | top-1 | MLL's first | INB's first |");
    let _ = writeln!(s, "|---|---|---:|---|---|");
    for d in &report.datasets {
        let first = |m: &str| d.rankings.get(m).and_then(|r| r.predicted.first().cloned()).unwrap_or_else(|| "–".into());
        let best = d.gt_ranking.first().cloned().unwrap_or_else(|| "–".into());
        let acc = d.accuracy.iter().find(|a| a.model == best).map(|a| a.top1);
        let _ = writeln!(s, "| {} | {} | {} | {} | {} |", d.name, best, cell(acc), first("mll"), first("inb"));
    }

    if !report.summary.incomplete.is_empty() {
        let _ = writeln!(s, "\n## Incomplete datasets (left out of the means)\n");
        for d in report.datasets.iter().filter(|d| !d.complete) {
            let _ = writeln!(s, "- {}: no result for {} model(s): {}", d.name, d.missing_models.len(), d.missing_models.join(", "));
        }
    }
    if let Some(e) = &report.experiments {
        experiments_markdown(&mut s, report, e);
    }
    let notes: Vec<String> = report
        .notes
        .iter()
        .cloned()
        .chain(report.datasets.iter().flat_map(|d| d.notes.iter().map(move |n| format!("{}: {n}", d.name))))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    legend(&mut s, report);
    s
}

/// What the method and metric names mean (docs/method.md has the details).
fn legend(s: &mut String, report: &Report) {
    let own = if option_name(&report.method.ensemble_weight) == "inverse_entropy" { "w = 1/H" } else { "w = H" };
    let _ = writeln!(s, "\n## Legend\n");
    let _ = writeln!(s, "Reuse: each method picks models per class; a test image's prediction is the class with the highest weighted probability among the models picked for it (docs/method.md).\n");
    for line in [
        "**INB k** (ImageNet baseline): the k hub models with the highest ImageNet top-1, the same for every class; INB k=1 is that one model's zero-shot top-1.".to_string(),
        format!("**MLL k**: per class, the k models with the highest class score r_(m,y) (from the graph nodes matched to the class), reused with the method's weighting ({own})."),
        "**ModelGPT k**: the first k models of the ranking an LLM gave from the task's domain, task and class names and the hub's model cards (docs/method.md, \"ModelGPT\"), the same for every class.".to_string(),
        "**Oracle**: the single hub model with the best true top-1 on the dataset, for every class. Knowing it needs every model evaluated (the ground truth), so it is a reference, not a selection method. MLL k=1 can beat it: it picks a model per class, and specialists of different classes together beat the best single model.".to_string(),
        "**Hub avg**: the mean top-1 over all hub models, which is exactly the expected accuracy of one random model per class (Random k=1, hence no column of its own).".to_string(),
        "**Random k** (k ≥ 2): the expected reuse top-1 of k uniformly random models per class.".to_string(),
        "**w = 1/H vs w = H**: an ensemble member's weight on an image, from the entropy H of its predicted class distribution: 1/H (the released code: confident models count more) or H (the paper's text).".to_string(),
        "**R5**: how many of the 5 truly best models the predicted ranking puts in its top 5, over 5 (1 = all of them).".to_string(),
        "**τ5**: Kendall tau-b between the true and the predicted rank positions of the models in both top-5s (0 when they share 2 or fewer).".to_string(),
        "**Kendall τ-b**: rank correlation of the predicted scores with the true top-1 over all models (1 = the same order, -1 = reversed).".to_string(),
        "**weighted τ**: Kendall's tau with hyperbolic weights (scipy's weightedtau), so that swaps among the best models count more than among the worst.".to_string(),
        "Ranking methods: **mll** (MLL's model score), **inb** (ImageNet top-1), **modelgpt** (the LLM's order), **params** (parameter count), **gflops** (GFLOPs per image); more is predicted better.".to_string(),
    ] {
        let _ = writeln!(s, "- {line}");
    }
}

/// Datasets (complete ones) where selection `a`'s accuracy relates to `b`'s as `cmp` says.
fn datasets_where<'r>(report: &'r Report, a: &str, b: &str, cmp: impl Fn(f64, f64) -> bool) -> Vec<&'r str> {
    report
        .datasets
        .iter()
        .filter(|d| d.complete)
        .filter(|d| matches!((selection_acc(d, a), selection_acc(d, b)), (Some(x), Some(y)) if cmp(x, y)))
        .map(|d| d.name.as_str())
        .collect()
}

/// Notes on rows of the accuracy table that coincide, or cross, by construction.
fn coinciding_selections(report: &Report) -> Vec<String> {
    let complete = report.datasets.iter().filter(|d| d.complete).count();
    let same = |x: f64, y: f64| (round6(x) - round6(y)).abs() < 1e-9;
    let mut notes = Vec::new();
    let above = datasets_where(report, "mll_k1", "oracle", |x, y| round6(x) > round6(y));
    if !above.is_empty() {
        notes.push(format!(
            "MLL k=1 is above the Oracle on {} of {complete} datasets ({}): one model per class can beat the best single model for all classes.",
            above.len(),
            above.join(", ")
        ));
    }
    let equal = datasets_where(report, "mll_k1", "oracle", same);
    if !equal.is_empty() {
        notes.push(format!("MLL k=1 equals the Oracle on {}: every class picked the Oracle's model.", equal.join(", ")));
    }
    let inb = datasets_where(report, "inb_k1", "oracle", same);
    if !inb.is_empty() {
        notes.push(format!("INB k=1 equals the Oracle on {}: the ImageNet-best model is the best one there too.", inb.join(", ")));
    }
    notes
}

/// Notes on ranking methods that order the models identically on every dataset.
fn coinciding_rankings(report: &Report) -> Vec<String> {
    let methods: Vec<&String> = report.summary.rankings.keys().collect();
    let mut notes = Vec::new();
    for (i, a) in methods.iter().enumerate() {
        for b in &methods[i + 1..] {
            let orders = |m: &str| -> Vec<Option<&Vec<String>>> {
                report.datasets.iter().filter(|d| d.complete).map(|d| d.rankings.get(m).map(|r| &r.predicted)).collect()
            };
            let (oa, ob) = (orders(a), orders(b));
            if !oa.is_empty() && oa.iter().all(Option::is_some) && oa == ob {
                notes.push(format!("{a} and {b} rank the hub's models in the same order on every dataset, so their rows are equal."));
            }
        }
    }
    notes
}

fn seconds_cell(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "–".to_string(),
    }
}

/// report.md's experiment tables (means over the datasets; per-dataset values are in report.json).
fn experiments_markdown(s: &mut String, report: &Report, e: &crate::outcome::Experiments) {
    let _ = writeln!(s, "\n## Experiments\n");
    if let Some(a) = &e.alpha_sweep {
        let _ = writeln!(s, "### α sweep (mean over {} datasets)\n", a.per_dataset.len());
        let ks: Vec<String> = report.method.k.iter().map(|k| format!("mll_k{k}")).collect();
        let _ = writeln!(
            s,
            "| α | {} | R5 | τ5 | Kendall τ-b | weighted τ |",
            report.method.k.iter().map(|k| format!("MLL k={k}")).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(s, "|---:|{}---:|---:|---:|---:|", "---:|".repeat(ks.len()));
        for p in &a.mean {
            let acc: Vec<String> = ks.iter().map(|k| cell(p.accuracy.get(k).copied().flatten())).collect();
            let r = &p.ranking;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                p.alpha,
                acc.join(" | "),
                cell(Some(r.r5)),
                cell(Some(r.tau5)),
                cell(Some(r.kendall_tau_b)),
                cell(Some(r.weighted_tau))
            );
        }
        let _ = writeln!(s);
    }
    if let Some(k) = &e.k_sweep {
        let _ = writeln!(s, "### k sweep and reuse cost (mean over {} datasets; GPU-seconds summed over them)\n", k.per_dataset.len());
        let _ = writeln!(s, "| k | MLL | INB | MLL models | MLL hub fraction | MLL GPU-s | INB models | INB GPU-s |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for p in &k.mean {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {} | {} | {:.0} | {} |",
                p.k,
                cell(p.mll),
                cell(p.inb),
                p.mll_models,
                cell(Some(p.mll_hub_fraction)),
                seconds_cell(p.mll_gpu_seconds),
                p.inb_models,
                seconds_cell(p.inb_gpu_seconds)
            );
        }
        let total: Option<f64> = k.hub_gpu_seconds.values().copied().sum();
        let _ = writeln!(s, "\nEvaluating the whole hub on these datasets (the ground truth) took {} GPU-s.\n", seconds_cell(total));
    }
    if let Some(g) = &e.hub_growth {
        let methods: Vec<&String> = g.curves.keys().collect();
        let _ = writeln!(s, "### Hub growth ({} seeded orders, seed {}; mean ± std over orders)\n", g.orders, g.seed);
        let _ = writeln!(
            s,
            "| models | {} |",
            methods.iter().map(|m| format!("{m} ({} datasets)", g.curves[*m].datasets.len())).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(s, "|---:|{}", "---:|".repeat(methods.len()));
        for (i, size) in g.sizes.iter().enumerate() {
            let row: Vec<String> =
                methods.iter().map(|m| format!("{} ± {}", cell(Some(g.curves[*m].mean[i])), cell(Some(g.curves[*m].std[i])))).collect();
            let _ = writeln!(s, "| {size} | {} |", row.join(" | "));
        }
        let _ = writeln!(s);
    }
    for n in &e.notes {
        let _ = writeln!(s, "- {n}");
    }
}

/// Writes every report file into `out_dir` (created if needed); returns their paths.
pub fn write_report(report: &Report, out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let werr = |path: &Path, source| ReportError::Write { path: path.display().to_string(), source };
    std::fs::create_dir_all(out_dir).map_err(|e| werr(out_dir, e))?;
    let mut files = vec![
        ("report.json", report_json(report)),
        ("report.md", report_markdown(report)),
        ("accuracy_matrix.csv", accuracy_matrix_csv(report)),
        ("accuracy_by_method.svg", svg::accuracy_by_method(report)),
    ];
    for (method, file) in [("mll", "rank_mll.svg"), ("inb", "rank_inb.svg")] {
        if report.datasets.iter().any(|d| d.complete && d.rankings.contains_key(method)) {
            files.push((file, svg::rank_scatter(report, method)));
        }
    }
    if let Some(e) = &report.experiments {
        files.extend(svg::experiment_charts(report, e));
    }
    let mut paths = Vec::new();
    for (name, text) in files {
        let path = out_dir.join(name);
        write_atomically(&path, text.as_bytes()).map_err(|e| werr(&path, e))?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames
/// it over `path`: a write that fails (a full disk) leaves the previous file,
/// or none, never a cut-off or empty one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// An option as the spec spells it (`inverse_entropy`, `f1`), not Rust's debug name.
fn option_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}
