//! `coordinator verify RUN [--repair]`: checks every committed result of a run
//! and the artifacts it names (present, size and checksum, tensors of the
//! shape and value range the job implies), lists the bad ones with job, stage,
//! model and dataset, and with `--repair` drops those results and publishes
//! exactly those jobs again. A hub's index files (`hub::index`) are checked
//! too, node by node against their own checksums; `--repair` deletes a
//! damaged one (the next `select` rebuilds it from the label artifacts). So
//! are the kept LLM answers (`crate::llm_cache`); `--repair` deletes a
//! damaged one (asked again when next needed).

use crate::control::RunControl;
use crate::plan::Plan;
use crate::records::{self, BadRecord};
use mll_common::artifact::safetensors_io::{self, Dtype};
use mll_common::artifact::{ArtifactRef, ArtifactStore};
use mll_common::job::JobPayload;
use mll_common::output::JobOutput;
use mll_common::queue::Outgoing;
use mll_common::{wire, Job};
use safetensors::SafeTensors;

/// What `verify --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub run: String,
    /// Committed results checked (damaged ones included).
    pub checked: usize,
    pub bad: Vec<BadRecord>,
    /// Hub index files checked (0 for a run no `select` has opened as a hub).
    pub indexes_checked: usize,
    /// Damaged hub index files: {path, reason}.
    pub bad_indexes: Vec<BadFile>,
    /// Kept LLM answers checked (the artifact store's `llm/`, shared by its
    /// runs: ModelGPT rankings, task class captions; `crate::llm_cache`).
    pub llm_answers_checked: usize,
    /// Kept LLM answers that fail their check: {path, reason}.
    pub bad_llm_answers: Vec<BadFile>,
    /// With --repair: jobs whose results were dropped and that were published again.
    pub republished: Option<usize>,
}

/// A hub index file or a kept LLM answer that failed its check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadFile {
    pub path: String,
    pub reason: String,
}

/// Checks every hub index file of the run (`runs/<run>/hub-index/`).
pub fn check_indexes(ctl: &RunControl, plan: &Plan) -> anyhow::Result<(usize, Vec<BadFile>)> {
    let dir = ctl.artifacts.root().join(format!("runs/{}/hub-index", plan.run));
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "safetensors")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!("reading the hub index folder {}: {e}", dir.display()),
    };
    files.sort();
    let graph_nodes = plan.graph_node_ids.len();
    let mut bad = Vec::new();
    for path in &files {
        let checked = (|| {
            let file = mll_common::artifact::tensors::TensorFile::open(path).map_err(|e| e.to_string())?;
            let digest = file.meta("digest").ok_or("no 'digest' in its metadata")?.to_string();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if !digest.starts_with(stem) || stem.len() != 32 {
                return Err(format!("its name does not match its digest {digest}"));
            }
            let index = crate::hub::index::HubIndex::open(path, &digest, graph_nodes).map_err(|e| e.to_string())?;
            index.check_all().map_err(|e| e.to_string())
        })();
        if let Err(reason) = checked {
            bad.push(BadFile { path: path.display().to_string(), reason });
        }
    }
    Ok((files.len(), bad))
}

/// Checks every kept LLM answer of the artifact store.
pub fn check_llm_answers(ctl: &RunControl) -> anyhow::Result<(usize, Vec<BadFile>)> {
    let dir = ctl.artifacts.root().join(crate::llm_cache::ARTIFACT_DIR);
    let (n, bad) =
        crate::llm_cache::check_dir(&dir).map_err(|e| anyhow::anyhow!("reading the kept LLM answers in {}: {e}", dir.display()))?;
    Ok((n, bad.into_iter().map(|(p, reason)| BadFile { path: p.display().to_string(), reason }).collect()))
}

/// Deletes damaged files that are made again when next needed (a hub index
/// when the hub is next opened, an LLM answer when it is next asked for).
pub fn delete_damaged(bad: &[BadFile], what: &str) -> anyhow::Result<()> {
    for b in bad {
        match std::fs::remove_file(&b.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("deleting the damaged {what} {}: {e}", b.path),
        }
    }
    Ok(())
}

/// Checks every committed result of the plan and its artifacts, and that
/// every job in a done set still has its result.
pub async fn check(ctl: &RunControl, plan: &Plan) -> anyhow::Result<Verification> {
    let records::Loaded { outputs: good, mut bad, .. } = records::load(&*ctl.store, plan).await?;
    // A job marked done whose result key is gone: the report would silently
    // miss it and nothing would compute it again.
    let named: std::collections::BTreeSet<String> = bad.iter().map(|b| b.job.clone()).collect();
    for stage in plan.stages() {
        let done: std::collections::BTreeSet<mll_common::JobId> = ctl.store.done(&plan.run, stage).await?.into_iter().collect();
        for job in plan.jobs_of(stage) {
            if done.contains(&job.id) && !good.contains_key(&job.id) && !named.contains(job.id.as_str()) {
                bad.push(BadRecord::new(job, "marked done but its result is gone (the result key was lost)".into()));
            }
        }
    }
    let checked = good.len() + bad.len();
    for job in &plan.jobs {
        if let Some(out) = good.get(&job.id) {
            if let Err(reason) = check_artifacts(plan, job, out, &ctl.artifacts) {
                bad.push(BadRecord::new(job, reason));
            }
        }
    }
    let (indexes_checked, bad_indexes) = check_indexes(ctl, plan)?;
    let (llm_answers_checked, bad_llm_answers) = check_llm_answers(ctl)?;
    Ok(Verification {
        run: plan.run.to_string(),
        checked,
        bad,
        indexes_checked,
        bad_indexes,
        llm_answers_checked,
        bad_llm_answers,
        republished: None,
    })
}

/// Drops the bad results and publishes exactly those jobs again (when the
/// control has a queue that workers read; local mode recomputes them on its
/// next run). Returns how many were published.
pub async fn repair(ctl: &RunControl, plan: &Plan, bad: &[BadRecord], publish: bool) -> anyhow::Result<usize> {
    let mut jobs: Vec<&Job> = Vec::new();
    for b in bad {
        let Some(job) = plan.jobs.iter().find(|j| j.id.as_str() == b.job) else { continue };
        ctl.store.discard(&plan.run, job.stage(), &job.id).await?;
        jobs.push(job);
    }
    if !publish || jobs.is_empty() {
        return Ok(0);
    }
    // Workers refuse the jobs of a finished run.
    ctl.reopen(&plan.run).await?;
    let outgoing = jobs.iter().map(|j| Outgoing::for_job(j)).collect::<Result<Vec<_>, wire::WireError>>()?;
    ctl.register_lanes(&jobs).await?;
    for batch in outgoing.chunks(ctl.publish_batch.max(1)) {
        ctl.queue.publish(batch).await?;
    }
    Ok(outgoing.len())
}

/// Adds to a report error which job's artifact or result is at fault and
/// what to run; other errors pass through unchanged.
pub async fn explain_report_error(ctl: &RunControl, plan: &Plan, e: anyhow::Error) -> anyhow::Error {
    let Some(agg) = e.chain().find_map(|c| c.downcast_ref::<crate::aggregate::AggregateError>()) else { return e };
    let sha = agg.artifact().map(str::to_string);
    let culprits: Vec<String> = match (&sha, records::load(&*ctl.store, plan).await) {
        (Some(sha), Ok(records::Loaded { outputs: good, .. })) => plan
            .jobs
            .iter()
            .filter(|j| good.get(&j.id).is_some_and(|o| artifacts_of(o).iter().any(|a| &a.sha256 == sha)))
            .map(|j| BadRecord::new(j, String::new()))
            .map(|b| {
                let mut s = format!("{} job {} ({})", b.stage, b.job, b.what);
                if let Some(m) = &b.model {
                    s.push_str(&format!(", model {m}"));
                }
                if let Some(d) = &b.dataset {
                    s.push_str(&format!(", dataset {d}"));
                }
                s
            })
            .collect(),
        _ => Vec::new(),
    };
    let whose = if culprits.is_empty() { String::new() } else { format!(" of {}", culprits.join("; ")) };
    e.context(format!(
        "the report cannot use a result{whose}; run `coordinator verify {} --repair` to find every damaged result and compute it again",
        plan.run
    ))
}

fn artifacts_of(out: &JobOutput) -> Vec<&ArtifactRef> {
    match out {
        JobOutput::Evaluate(o) => o.probabilities.iter().collect(),
        JobOutput::Label(o) => std::iter::once(&o.images).chain(o.node_texts.iter()).collect(),
        JobOutput::Embed(o) => vec![&o.embeddings],
        JobOutput::Diagnostic(_) => Vec::new(),
    }
}

/// One tensor's dtype and shape; `None` in `shape` accepts any size there.
/// Returns the actual shape.
fn tensor_shape(st: &SafeTensors, name: &str, dtype: Dtype, shape: &[Option<usize>]) -> Result<Vec<usize>, String> {
    safetensors_io::check(st, name, dtype, shape).map_err(|e| e.to_string())
}

/// Integer tensor values (I64 or I32) all in `0..bound`.
fn values_below(st: &SafeTensors, name: &str, bound: usize) -> Result<(), String> {
    let below = |x: i64| x >= 0 && (x as u64) < bound as u64;
    let bad = match safetensors_io::layout(st, name).map_err(|e| e.to_string())?.0 {
        Dtype::I64 => safetensors_io::values::<i64>(st, name).map_err(|e| e.to_string())?.into_iter().find(|&x| !below(x)),
        Dtype::I32 => safetensors_io::values::<i32>(st, name).map_err(|e| e.to_string())?.into_iter().map(i64::from).find(|&x| !below(x)),
        other => return Err(format!("tensor '{name}' is {other:?}, expected an integer tensor")),
    };
    match bad {
        Some(x) => Err(format!("tensor '{name}' holds {x}, outside 0..{bound}")),
        None => Ok(()),
    }
}

fn in_artifact<T>(a: &ArtifactRef, r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| format!("artifact {}: {e}", a.sha256))
}

/// The artifact's bytes, checked for size and checksum by the store.
fn read_artifact(arts: &ArtifactStore, a: &ArtifactRef) -> Result<Vec<u8>, String> {
    arts.get(a).map_err(|e| e.to_string())
}

fn parse<'a>(bytes: &'a [u8], a: &ArtifactRef) -> Result<SafeTensors<'a>, String> {
    in_artifact(a, safetensors_io::parse(bytes).map_err(|e| e.to_string()))
}

/// Size, checksum and shape of the artifacts a result names, against its job.
pub fn check_artifacts(plan: &Plan, job: &Job, out: &JobOutput, arts: &ArtifactStore) -> Result<(), String> {
    match (&job.payload, out) {
        (JobPayload::Evaluate(j), JobOutput::Evaluate(o)) => {
            let Some(a) = &o.probabilities else { return Ok(()) };
            let n = (j.shard.end - j.shard.start.min(j.shard.end)) as usize;
            let c = j.classnames.len();
            let buf = read_artifact(arts, a)?;
            let st = parse(&buf, a)?;
            in_artifact(
                a,
                (|| {
                    tensor_shape(&st, "probs", Dtype::F32, &[Some(n), Some(c)])?;
                    tensor_shape(&st, "labels", Dtype::I64, &[Some(n)])?;
                    values_below(&st, "labels", c)?;
                    if safetensors_io::has(&st, "entropy") {
                        tensor_shape(&st, "entropy", Dtype::F64, &[Some(n)])?;
                    }
                    Ok(())
                })(),
            )
        }
        (JobPayload::Label(j), JobOutput::Label(o)) => {
            let n = o.count as usize;
            let v = plan.graph_nodes;
            let buf = read_artifact(arts, &o.images)?;
            let st = parse(&buf, &o.images)?;
            let width = in_artifact(
                &o.images,
                (|| {
                    let shape = tensor_shape(&st, "image_embeddings", Dtype::F32, &[Some(n), None])?;
                    tensor_shape(&st, "nodes", Dtype::I64, &[Some(n)])?;
                    values_below(&st, "nodes", v)?;
                    if safetensors_io::has(&st, "top_nodes") {
                        tensor_shape(&st, "top_nodes", Dtype::I32, &[Some(n), Some((j.top_nodes as usize).min(v))])?;
                        values_below(&st, "top_nodes", v)?;
                    }
                    Ok(shape[1])
                })(),
            )?;
            if let Some(t) = &o.node_texts {
                let buf = read_artifact(arts, t)?;
                let st = parse(&buf, t)?;
                in_artifact(t, tensor_shape(&st, "text_embeddings", Dtype::F32, &[Some(v), Some(width)]))?;
            }
            Ok(())
        }
        (JobPayload::Embed(_), JobOutput::Embed(o)) => {
            let buf = read_artifact(arts, &o.embeddings)?;
            let st = parse(&buf, &o.embeddings)?;
            in_artifact(&o.embeddings, tensor_shape(&st, "embeddings", Dtype::F32, &[Some(o.count as usize), None])).map(|_| ())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mll_common::output::{ClassCounts, EvaluateOutput};

    fn probs_artifact(labels: &[i64]) -> Vec<u8> {
        let n = labels.len();
        let probs = vec![1.0f32 / 3.0; n * 3];
        safetensors_io::encode(&[
            safetensors_io::Named::new("probs", vec![n, 3], &probs),
            safetensors_io::Named::new("labels", vec![n], labels),
        ])
        .unwrap()
    }

    #[test]
    fn artifacts_are_checked_for_presence_checksum_shape_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let arts = ArtifactStore::new(dir.path());
        let spec = crate::spec::BenchmarkSpec::from_toml("name = \"r\"\n[diagnostic]\njobs = 1\n", "t").unwrap();
        let plan = crate::plan::plan(&spec, dir.path()).unwrap();
        let job = crate::records::tests::evaluate_job();
        let out = |a: ArtifactRef| {
            JobOutput::Evaluate(EvaluateOutput {
                counts: ClassCounts { n: vec![2, 2, 2], top1: vec![0; 3], top5: vec![2; 3] },
                protocol: "clip_benchmark".into(),
                probabilities: Some(a),
                images: 6,
            })
        };
        let good = arts.put(&probs_artifact(&[0, 0, 1, 1, 2, 2])).unwrap();
        check_artifacts(&plan, &job, &out(good.clone()), &arts).unwrap();

        let label_out_of_range = arts.put(&probs_artifact(&[0, 0, 1, 1, 2, 7])).unwrap();
        let e = check_artifacts(&plan, &job, &out(label_out_of_range), &arts).unwrap_err();
        assert!(e.contains("'labels' holds 7"), "{e}");
        let too_few_rows = arts.put(&probs_artifact(&[0, 1, 2])).unwrap();
        let e = check_artifacts(&plan, &job, &out(too_few_rows), &arts).unwrap_err();
        assert!(e.contains("'probs'"), "{e}");

        // Flipped bytes on disk, then the file gone.
        let path = arts.path_of(&good.sha256);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = check_artifacts(&plan, &job, &out(good.clone()), &arts).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = check_artifacts(&plan, &job, &out(good), &arts).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }
}
