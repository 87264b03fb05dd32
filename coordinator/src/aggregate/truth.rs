//! Ground truth from an external accuracy table in open_clip's results CSV
//! shape, one row per model and one column per dataset, so published numbers
//! give GT rankings and the INB / params / GFLOPs rankings' metrics without
//! running any model.
//!
//! Accepted shapes: a model column named `name` or `model` plus a `pretrained`
//! column (open_clip's `openclip_classification_results.csv`, MLL's
//! `gt_open_clip.csv`, our own `accuracy_matrix.csv`), or a single `model`/`key`
//! column holding `<architecture>/<pretrained>`. Dataset columns are matched to
//! the spec's datasets by name through [`mll_method::names`]. Cells are fractions in
//! 0..=1; an empty cell (or `nan`) is a missing value, and a dataset with any
//! missing model is reported as incomplete.

use crate::spec::{BenchmarkSpec, HubModel};
use mll_method::assess::{build_report_with, DatasetInput, ReportInput};
use mll_method::experiments::ExperimentOptions;
use mll_method::names;
use mll_method::outcome::{Report, ReportError};
use mll_method::Accuracy;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The file cannot be read (exit 2, like every input the person must fix).
    #[error("truth table {path}: cannot read it: {source}{}", if source.kind() == std::io::ErrorKind::NotFound { TRUTH_HINT } else { "" })]
    Read { path: String, source: std::io::Error },
    #[error("truth table {path}, line {line}: {message}")]
    Parse { path: String, line: usize, message: String },
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Where the published table is, for a missing file's message.
const TRUTH_HINT: &str = "; open_clip's published table ships as docs/published/openclip_classification_results.csv";

impl TruthError {
    /// A table that cannot be read or parsed is the person's to fix (exit 2);
    /// a report that cannot be built from it is not.
    pub fn is_input(&self) -> bool {
        matches!(self, TruthError::Read { .. } | TruthError::Parse { .. })
    }
}

/// A parsed truth table.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthTable {
    /// Where it came from (for messages and the report's `source`).
    pub origin: String,
    /// Model keys `<architecture>/<pretrained>`, in file order, first occurrence kept.
    pub models: Vec<String>,
    /// Dataset (and other) column headers, in file order.
    pub columns: Vec<String>,
    /// cells[model][column] as text, trimmed.
    cells: Vec<Vec<String>>,
    /// 1-based file line of each model's row.
    lines: Vec<usize>,
    /// Model keys listed more than once (later rows ignored).
    pub duplicates: Vec<String>,
}

impl TruthTable {
    /// Parses CSV text (RFC 4180 through the `csv` crate: quoted fields may
    /// hold commas, quotes and line breaks; blank lines are skipped; fields are trimmed).
    pub fn parse(text: &str, origin: &str) -> Result<Self, TruthError> {
        let perr = |line: usize, message: String| TruthError::Parse { path: origin.to_string(), line, message };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let mut records = reader.records();
        let line_of = |r: &csv::StringRecord| r.position().map_or(0, |p| p.line() as usize);
        let csv_err = |e: csv::Error| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            perr(line, format!("not valid CSV: {e}"))
        };
        let header =
            records.next().transpose().map_err(csv_err)?.ok_or_else(|| perr(1, "the file is empty; expected a header row".into()))?;
        let header_line = line_of(&header);
        let header: Vec<String> = header.iter().map(str::to_string).collect();
        let find = |names: &[&str]| header.iter().position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)));
        let model_col = find(&["name", "model", "key"]).ok_or_else(|| {
            perr(header_line, "no model column: expected a header named `name` or `model` (with `pretrained`), or `key`".into())
        })?;
        let pretrained_col = find(&["pretrained"]);
        let data_cols: Vec<usize> = (0..header.len()).filter(|&c| c != model_col && Some(c) != pretrained_col).collect();
        let mut table = TruthTable {
            origin: origin.to_string(),
            models: Vec::new(),
            columns: data_cols.iter().map(|&c| header[c].clone()).collect(),
            cells: Vec::new(),
            lines: Vec::new(),
            duplicates: Vec::new(),
        };
        for row in records {
            let row = row.map_err(csv_err)?;
            let line = line_of(&row);
            if row.len() != header.len() {
                return Err(perr(line, format!("{} fields but the header has {}", row.len(), header.len())));
            }
            let key = match pretrained_col {
                Some(p) => format!("{}/{}", &row[model_col], &row[p]),
                None => row[model_col].to_string(),
            };
            if !key.contains('/') || key.starts_with('/') || key.ends_with('/') {
                return Err(perr(line, format!("model '{key}' is not <architecture>/<pretrained>")));
            }
            if table.models.contains(&key) {
                table.duplicates.push(key);
                continue;
            }
            table.models.push(key);
            table.lines.push(line);
            table.cells.push(data_cols.iter().map(|&c| row[c].to_string()).collect());
        }
        Ok(table)
    }

    /// The column holding `dataset`: an exact (case-insensitive) header match
    /// first, else a known alias.
    pub fn column_for(&self, dataset: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(dataset))
            .or_else(|| self.columns.iter().position(|c| names::same_dataset(c, dataset)))
    }

    /// The top-1 of `model` in column `col`: None when the model is absent or the cell is empty.
    pub fn value(&self, model: &str, col: usize) -> Result<Option<f64>, TruthError> {
        let Some(row) = self.models.iter().position(|m| m == model) else {
            return Ok(None);
        };
        let text = &self.cells[row][col];
        if text.is_empty() || text.eq_ignore_ascii_case("nan") || text == "-" {
            return Ok(None);
        }
        let bad = |why: &str| TruthError::Parse {
            path: self.origin.clone(),
            line: self.lines[row],
            message: format!("model {model}, column '{}': '{text}' {why}", self.columns[col]),
        };
        let v: f64 = text.parse().map_err(|_| bad("is not a number"))?;
        if !(0.0..=1.0).contains(&v) {
            return Err(bad("is outside 0..=1; give accuracies as fractions, not percent"));
        }
        Ok(Some(v))
    }
}

pub fn read_truth_csv(path: &Path) -> Result<TruthTable, TruthError> {
    let text = std::fs::read_to_string(path).map_err(|source| TruthError::Read { path: path.display().to_string(), source })?;
    TruthTable::parse(&text, &path.display().to_string())
}

/// A [`ReportInput`] with the table's top-1 values as every model's accuracy
/// (no probabilities, no graph: only rankings and single-model baselines).
pub fn truth_input(table: &TruthTable, spec: &BenchmarkSpec) -> Result<(ReportInput, Vec<String>), TruthError> {
    let mut notes = Vec::new();
    if !table.duplicates.is_empty() {
        notes.push(format!("{}: rows listed again were ignored: {}", table.origin, table.duplicates.join(", ")));
    }
    let absent: Vec<&str> = spec.hub.iter().filter(|m| !table.models.contains(&m.key)).map(|m| m.key.as_str()).collect();
    if !absent.is_empty() {
        notes.push(format!("{}: no row for {} hub model(s): {}", table.origin, absent.len(), absent.join(", ")));
    }
    let mut datasets = Vec::new();
    for d in &spec.datasets {
        let mut accuracy = Vec::with_capacity(spec.hub.len());
        match table.column_for(&d.name) {
            Some(col) => {
                for m in &spec.hub {
                    accuracy.push(table.value(&m.key, col)?.map(Accuracy::top1_only));
                }
            }
            None => {
                notes.push(format!("{}: no column for dataset {}", table.origin, d.name));
                accuracy = vec![None; spec.hub.len()];
            }
        }
        datasets.push(DatasetInput {
            name: d.name.clone(),
            domain: d.domain.clone(),
            task: d.task.clone(),
            class_names: d.classnames.clone(),
            accuracy,
            predictions: Vec::new(),
            class_embeddings: None,
            evaluate_seconds: Vec::new(),
            modelgpt: None,
        });
    }
    let input = ReportInput {
        run: spec.name.clone(),
        spec_digest: spec.digest(),
        source: format!("truth:{}", table.origin),
        options: spec.method.clone(),
        models: spec.hub.iter().map(HubModel::info).collect(),
        datasets,
        graph: None,
    };
    Ok((input, notes))
}

/// `coordinator report --truth FILE.csv --benchmark SPEC`: the report of a
/// published accuracy table against a spec's hub and datasets.
pub fn report_from_truth(csv: &Path, spec: &BenchmarkSpec) -> Result<Report, TruthError> {
    report_from_truth_with(csv, spec, None)
}

/// [`report_from_truth`], plus what of the paper's experiments a table
/// allows when `experiments` is given: hub growth for INB and the oracle (the
/// α and k sweeps need a run's selection and probabilities).
pub fn report_from_truth_with(csv: &Path, spec: &BenchmarkSpec, experiments: Option<&ExperimentOptions>) -> Result<Report, TruthError> {
    let table = read_truth_csv(csv)?;
    let (input, notes) = truth_input(&table, spec)?;
    let mut report = build_report_with(&input, experiments)?;
    // The graph note is expected here; say what a truth report covers instead.
    report.notes.retain(|n| !n.starts_with("MLL was not run: the input has no graph"));
    report.notes.insert(0, "ground truth imported from a table: MLL and multi-model reuse need a run's artifacts".into());
    report.notes.extend(notes);
    Ok(report)
}
