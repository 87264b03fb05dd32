//! Committed results as read back from the store: each one checksum-checked
//! by the store, decoded, and checked against the job it belongs to (counts
//! within the shard, one entry per class, artifact addresses well formed). A
//! result that fails is reported with its job and treated as missing, so
//! `resume` (or running a local run again) computes it again.

use crate::plan::Plan;
use mll_common::job::JobPayload;
use mll_common::output::{CommittedResult, Execution, JobOutput};
use mll_common::store::{Fetched, Ledger, StoreError};
use mll_common::{Job, JobId, RunId};
use std::collections::BTreeMap;

/// A committed result that cannot be used.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BadRecord {
    pub job: String,
    pub stage: String,
    /// Model, dataset and shard of the job, as far as it has them.
    pub model: Option<String>,
    pub dataset: Option<String>,
    pub what: String,
    pub reason: String,
}

impl BadRecord {
    pub fn new(job: &Job, reason: String) -> Self {
        let (model, dataset) = match &job.payload {
            JobPayload::Evaluate(e) => (Some(e.model.key.clone()), Some(e.dataset.name.clone())),
            JobPayload::Label(l) => (Some(l.model.key.clone()), None),
            JobPayload::Embed(e) => (None, e.source.strip_prefix("dataset:").map(str::to_string)),
            JobPayload::Diagnostic(_) => (None, None),
        };
        BadRecord { job: job.id.to_string(), stage: job.stage().to_string(), model, dataset, what: job.payload.describe(), reason }
    }
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} job {} ({}): {}", self.stage, self.job, self.what, self.reason)
    }
}

fn check_sha(sha: &str) -> Result<(), String> {
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!("artifact address '{}' is not a SHA-256", sha.escape_debug()))
    }
}

/// Checks a decoded output against its job (not the artifacts it names: see
/// [`crate::verify`]).
pub fn check_output(job: &Job, out: &JobOutput) -> Result<(), String> {
    match (&job.payload, out) {
        (JobPayload::Evaluate(j), JobOutput::Evaluate(o)) => {
            let samples = j.shard.end.saturating_sub(j.shard.start);
            o.counts.check(j.classnames.len(), samples)?;
            if o.images != samples {
                return Err(format!("{} images recorded for a shard of {samples}", o.images));
            }
            if let Some(a) = &o.probabilities {
                check_sha(&a.sha256)?;
            }
            Ok(())
        }
        (JobPayload::Label(j), JobOutput::Label(o)) => {
            let samples = j.shard.end.saturating_sub(j.shard.start);
            if o.count != samples {
                return Err(format!("{} images recorded for a shard of {samples}", o.count));
            }
            if o.node_texts.is_some() != j.encode_node_texts {
                return Err("node text embeddings present on the wrong shard".into());
            }
            check_sha(&o.images.sha256)?;
            o.node_texts.as_ref().map_or(Ok(()), |a| check_sha(&a.sha256))
        }
        (JobPayload::Embed(j), JobOutput::Embed(o)) => {
            if o.count != j.texts.len() as u64 {
                return Err(format!("{} embeddings recorded for {} texts", o.count, j.texts.len()));
            }
            check_sha(&o.embeddings.sha256)
        }
        (JobPayload::Diagnostic(j), JobOutput::Diagnostic(o)) => {
            if o.index != j.index {
                return Err(format!("result of diagnostic #{} recorded for #{}", o.index, j.index));
            }
            Ok(())
        }
        (_, other) => Err(format!("a {} result recorded for a {} job", output_kind(other), job.stage())),
    }
}

fn output_kind(o: &JobOutput) -> &'static str {
    match o {
        JobOutput::Embed(_) => "embed",
        JobOutput::Label(_) => "label",
        JobOutput::Evaluate(_) => "evaluate",
        JobOutput::Diagnostic(_) => "diagnostic",
    }
}

/// Interprets one job's fetched result: `Ok(None)` when there is none, `Err`
/// with the reason when it is damaged or does not fit the job.
fn interpret(job: &Job, fetched: Fetched) -> Result<Option<CommittedResult>, ReadError> {
    let bytes = match fetched {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(StoreError::Corrupt { reason, .. }) => return Err(ReadError::Bad(Box::new(BadRecord::new(job, reason)))),
        Err(e) => return Err(ReadError::Store(e)),
    };
    // Current records carry their execution (decode_result); older ones are a bare output.
    let record = mll_common::output::decode_result(&bytes)
        .map_err(|e| ReadError::Bad(Box::new(BadRecord::new(job, format!("the result does not decode: {e}")))))?;
    check_output(job, &record.output).map_err(|reason| ReadError::Bad(Box::new(BadRecord::new(job, reason))))?;
    Ok(Some(record))
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("damaged result: {0}")]
    Bad(Box<BadRecord>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Results asked of the store in one call: one Redis round trip per batch.
const READ_BATCH: usize = 512;

/// Reads the results of `jobs` batch by batch, handing each job and its
/// interpreted result to `each` in `jobs` order.
async fn read_each<'a>(
    store: &dyn Ledger,
    run: &RunId,
    jobs: impl Iterator<Item = &'a Job>,
    mut each: impl FnMut(&'a Job, Result<Option<CommittedResult>, ReadError>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let jobs: Vec<&Job> = jobs.collect();
    for batch in jobs.chunks(READ_BATCH) {
        let ids: Vec<JobId> = batch.iter().map(|j| j.id.clone()).collect();
        let fetched = store.results(run, &ids).await?;
        for (job, f) in batch.iter().zip(fetched) {
            each(job, interpret(job, f))?;
        }
    }
    Ok(())
}

/// Every committed result of a plan, read back and checked.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The usable outputs, by job.
    pub outputs: BTreeMap<JobId, JobOutput>,
    /// How each job with a usable result ran, where its record says.
    pub executions: BTreeMap<JobId, Execution>,
    /// The damaged results (each logged), counted as missing.
    pub bad: Vec<BadRecord>,
}

/// Every usable result of the plan's jobs, their executions, and the damaged
/// ones (each logged).
pub async fn load(store: &dyn Ledger, plan: &Plan) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    read_each(store, &plan.run, plan.jobs.iter(), |job, read| {
        match read {
            Ok(Some(record)) => {
                if let Some(x) = record.execution {
                    loaded.executions.insert(job.id.clone(), x);
                }
                loaded.outputs.insert(job.id.clone(), record.output);
            }
            Ok(None) => {}
            Err(ReadError::Bad(b)) => {
                tracing::warn!(
                    job = %b.job,
                    stage = %b.stage,
                    what = %b.what,
                    reason = %b.reason,
                    "a committed result is damaged; it counts as missing (`coordinator resume {}` computes it again)",
                    plan.run
                );
                loaded.bad.push(*b);
            }
            Err(ReadError::Store(e)) => return Err(e),
        }
        Ok(())
    })
    .await?;
    Ok(loaded)
}

/// Drops damaged results of the plan's done jobs from the store so they are
/// published again. Returns what was dropped.
pub async fn discard_damaged(store: &dyn Ledger, plan: &Plan) -> Result<Vec<BadRecord>, StoreError> {
    let mut dropped = Vec::new();
    for stage in plan.stages() {
        let done: std::collections::BTreeSet<JobId> = store.done(&plan.run, stage).await?.into_iter().collect();
        let mut damaged: Vec<(&Job, BadRecord)> = Vec::new();
        read_each(store, &plan.run, plan.jobs_of(stage).filter(|j| done.contains(&j.id)), |job, read| {
            match read {
                Ok(Some(_)) => {}
                // Done but without a result: the result key was lost.
                Ok(None) => damaged.push((job, BadRecord::new(job, "marked done but its result is gone".into()))),
                Err(ReadError::Bad(b)) => damaged.push((job, *b)),
                Err(ReadError::Store(e)) => return Err(e),
            }
            Ok(())
        })
        .await?;
        for (job, b) in damaged {
            store.discard(&plan.run, stage, &job.id).await?;
            dropped.push(b);
        }
    }
    for b in &dropped {
        tracing::warn!(job = %b.job, stage = %b.stage, what = %b.what, reason = %b.reason, "damaged result dropped; the job runs again");
    }
    Ok(dropped)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mll_common::job::*;
    use mll_common::output::{ClassCounts, EvaluateOutput};
    use mll_common::RunId;

    /// An evaluate job of 6 samples over 3 classes.
    pub(crate) fn evaluate_job() -> Job {
        let run = RunId::new("r").unwrap();
        Job {
            id: JobId::derive(&run, &["e"]),
            run,
            payload: JobPayload::Evaluate(EvaluateJob {
                model: ModelRef { key: "a/b".into(), artifact: "models/a".into() },
                dataset: DatasetRef { name: "d".into(), format: DatasetFormat::ImageFolder, path: "ds".into() },
                shard: Shard { index: 0, count: 1, start: 0, end: 6 },
                classnames: vec!["ant".into(), "bee".into(), "cat".into()].into(),
                templates: vec!["{c}".into()].into(),
                protocol: PromptProtocol::ClipBenchmark,
                keep_probabilities: true,
                dataset_samples: 6,
            }),
        }
    }

    fn output(n: Vec<u64>, top1: Vec<u64>, top5: Vec<u64>) -> JobOutput {
        let images = n.iter().fold(0u64, |a, b| a.saturating_add(*b));
        JobOutput::Evaluate(EvaluateOutput {
            counts: ClassCounts { n, top1, top5 },
            protocol: "clip_benchmark".into(),
            probabilities: None,
            images,
        })
    }

    #[test]
    fn counts_that_cannot_be_are_refused() {
        let job = evaluate_job();
        assert!(check_output(&job, &output(vec![2, 2, 2], vec![1, 0, 2], vec![2, 1, 2])).is_ok());
        // top5 above n (a report would show top5 > 1), top1 above top5, a
        // count summing past the shard, a class missing, an overflowing count.
        for bad in [
            output(vec![2, 2, 2], vec![1, 0, 2], vec![3, 1, 2]),
            output(vec![2, 2, 2], vec![2, 0, 2], vec![1, 1, 2]),
            output(vec![2, 2, 3], vec![1, 0, 2], vec![2, 1, 2]),
            output(vec![3, 3], vec![1, 0], vec![2, 1]),
            output(vec![u64::MAX, 2, 2], vec![1, 0, 2], vec![2, 1, 2]),
        ] {
            assert!(check_output(&job, &bad).is_err(), "{bad:?} was accepted");
        }
        let diag = JobOutput::Diagnostic(mll_common::output::DiagnosticOutput { index: 0, value: 1 });
        assert!(check_output(&job, &diag).unwrap_err().contains("diagnostic result"));
    }
}
