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

    // Selection accuracy: per k, INB / MLL / oracle like the paper, then the other baselines.
    let mut columns: Vec<(String, String)> = Vec::new();
    for &k in &o.k {
        columns.push((format!("INB k={k}"), format!("inb_k{k}")));
        columns.push((format!("MLL k={k}"), format!("mll_k{k}")));
    }
    columns.push(("Oracle".into(), "oracle".into()));
    columns.push(("Hub avg".into(), "hub_average".into()));
    for &k in &o.k {
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
    s
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
