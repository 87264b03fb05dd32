//! adapt's outputs, `predictions.csv` and `adapt.json` (docs/formats.md):
//! each written to a temporary file in the output folder and renamed into
//! place, so a failed or interrupted write leaves no half file.

use super::AdaptReport;
use std::path::{Path, PathBuf};

/// One row of predictions.csv.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PredictionRow {
    /// The image: its path in the task folder, or `shard.tar:key`.
    pub key: String,
    pub predicted: String,
    /// Weighted mean of P_m(predicted | image) over the models that voted.
    pub confidence: f64,
    /// F_predicted: the models selected for the predicted class, ';'-separated.
    pub models: String,
    /// The true class when the task is labelled, else empty.
    pub label: String,
}

fn csv_bytes(rows: &[PredictionRow]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("predictions.csv: {e}"))
}

/// Writes both files into `out` (created if needed); returns their paths.
pub fn write_outputs(out: &Path, rows: &[PredictionRow], report: &AdaptReport) -> anyhow::Result<Vec<PathBuf>> {
    let csv = csv_bytes(rows)?;
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("cannot create the output folder {}: {e}", out.display()))?;
    let files = [("predictions.csv", csv), ("adapt.json", json)];
    let mut staged = Vec::new();
    for (name, bytes) in &files {
        let tmp = out.join(format!(".{name}.partial"));
        if let Err(e) = std::fs::write(&tmp, bytes) {
            for t in &staged {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(&tmp);
            anyhow::bail!("cannot write {}: {e}", tmp.display());
        }
        staged.push(tmp);
    }
    let mut written = Vec::new();
    for ((name, _), tmp) in files.iter().zip(staged) {
        let dest = out.join(name);
        std::fs::rename(&tmp, &dest).map_err(|e| anyhow::anyhow!("cannot move {} to {}: {e}", tmp.display(), dest.display()))?;
        written.push(dest);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows = vec![PredictionRow {
            key: "a,b.png".into(),
            predicted: "number \"3\"".into(),
            confidence: 0.5,
            models: "m/a;m/b".into(),
            label: String::new(),
        }];
        let text = String::from_utf8(csv_bytes(&rows).unwrap()).unwrap();
        assert_eq!(text, "key,predicted,confidence,models,label\n\"a,b.png\",\"number \"\"3\"\"\",0.5,m/a;m/b,\n");
    }
}
