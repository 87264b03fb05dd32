//! Run control: register a plan, publish what is missing, record dead letters,
//! read progress, cancel. Stateless between calls: everything lives in the
//! result store (and the spec text in the artifact store, so a run can be
//! resumed even after the store lost its data).

use crate::plan::{Plan, PlanError};
use crate::spec::SpecError;
use mll_common::artifact::{ArtifactError, ArtifactStore};
use mll_common::exit::InputError;
use mll_common::queue::{JobQueue, Lane, Outgoing, QueueError};
use mll_common::store::{Ledger, RunMeta, RunState, StageProgress, StoreError};
use mll_common::telemetry::metrics;
use mll_common::{wire, JobId, RunId, Stage};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::{debug, warn};

/// What run control can fail with. The variants that only pass another
/// layer's error on are transparent; [`ControlError::wrapped`] gives that error.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The user must fix something: a run id, a job id, a cancelled run.
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// Publishing a batch failed part way; the source says why.
    #[error("publishing {stage} jobs of run '{run}' ({published} published so far; `coordinator resume {run}` continues)")]
    Publish {
        stage: Stage,
        run: RunId,
        published: usize,
        #[source]
        source: QueueError,
    },
    #[error(
        "run '{run}' was cancelled, and a cancelled run's jobs are not published again: `coordinator delete {run}` removes it \
         (its results and saved spec), then the same command starts it afresh; or submit the spec under another name"
    )]
    Cancelled { run: RunId },
    /// The saved submission of a run cannot be written or read back.
    #[error("the saved spec of run '{run}' ({}) cannot be read or written as JSON", submission_artifact_name(run))]
    Submission {
        run: RunId,
        #[source]
        source: serde_json::Error,
    },
}

impl ControlError {
    /// The error a transparent variant passes on (its message and causes are
    /// that error's), for callers that look for a type in an error chain.
    pub fn wrapped(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Input(e) => Some(e),
            ControlError::Spec(e) => Some(e),
            ControlError::Plan(e) => Some(e),
            ControlError::Store(e) => Some(e),
            ControlError::Queue(e) => Some(e),
            ControlError::Artifact(e) => Some(e),
            ControlError::Wire(e) => Some(e),
            ControlError::Publish { .. } | ControlError::Cancelled { .. } | ControlError::Submission { .. } => None,
        }
    }
}

fn input(message: String) -> ControlError {
    ControlError::Input(InputError(message))
}

#[derive(Clone)]
pub struct RunControl {
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn Ledger>,
    pub artifacts: ArtifactStore,
    pub publish_batch: usize,
}

/// What `status --json` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunStatus {
    pub run: String,
    pub state: RunState,
    pub stages: BTreeMap<String, StageProgress>,
    pub failures: Vec<FailureRecord>,
    /// Job executions beyond the first (at-least-once delivery at work).
    pub duplicate_executions: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureRecord {
    pub stage: String,
    pub job: String,
    pub reason: String,
}

/// A run `select` or `adapt` made to embed a task's class texts
/// (`<hub>.embed-<16 hex>`): internal, left out of the runs a message lists.
pub fn is_internal_run(run: &str) -> bool {
    run.rsplit_once(".embed-").is_some_and(|(_, h)| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn submission_artifact_name(run: &RunId) -> String {
    format!("runs/{run}/submission.json")
}

/// Reads a spec file for submission (a missing file is an input error).
pub fn read_submission(path: &std::path::Path) -> Result<Submission, ControlError> {
    let read_err = |source| SpecError::Read { path: path.display().to_string(), source };
    let spec_text = std::fs::read_to_string(path).map_err(read_err)?;
    Ok(Submission { spec_text, spec_path: std::fs::canonicalize(path).map_err(read_err)? })
}

/// What `submit` saves beside the artifacts so `resume` can replan without the
/// original file (and after the store lost its data).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Submission {
    pub spec_text: String,
    /// The spec file's path when submitted (its data_root is relative to it).
    pub spec_path: std::path::PathBuf,
}

/// The jobs of a run that `--wait` has not published yet. Runs that share the
/// workers share one FIFO work queue; a run that published all its jobs at
/// once would hold the workers until its last job. A waited run instead keeps
/// at most `window` jobs queued or running (its spec's `priority` times
/// `coordinator.window`) and publishes more as they finish, so each run's
/// share of the workers follows its window: in a FIFO queue a run's
/// throughput is its queued jobs over the common waiting time.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    /// Positions in `plan.jobs`, in publishing order ([`interleave_lanes`]).
    pending: std::collections::VecDeque<usize>,
    /// The same positions by lane (None: the main queue), each in plan order.
    by_lane: BTreeMap<Option<Lane>, std::collections::VecDeque<usize>>,
    /// Positions published already (through either order).
    published: std::collections::HashSet<usize>,
    left: usize,
    window: usize,
}

impl Backlog {
    fn new(jobs: &[mll_common::Job], pending: Vec<usize>, window: usize) -> Self {
        let mut by_lane: BTreeMap<Option<Lane>, std::collections::VecDeque<usize>> = BTreeMap::new();
        let mut in_plan_order = pending.clone();
        in_plan_order.sort_unstable();
        for i in in_plan_order {
            by_lane.entry(jobs[i].model().map(|m| Lane::of_model(&m.artifact))).or_default().push_back(i);
        }
        let left = pending.len();
        Backlog { pending: pending.into(), by_lane, published: Default::default(), left, window }
    }

    /// Jobs not published yet.
    pub fn len(&self) -> usize {
        self.left
    }
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// Takes the next job of `from` not published yet.
    fn pop(published: &mut std::collections::HashSet<usize>, from: &mut std::collections::VecDeque<usize>) -> Option<usize> {
        while let Some(i) = from.pop_front() {
            if published.insert(i) {
                return Some(i);
            }
        }
        None
    }

    /// Takes up to `n` of `lane`'s next jobs.
    fn take_lane(&mut self, lane: &Option<Lane>, n: usize) -> Vec<usize> {
        let Some(q) = self.by_lane.get_mut(lane) else { return Vec::new() };
        let got: Vec<usize> = std::iter::from_fn(|| Self::pop(&mut self.published, q)).take(n).collect();
        self.left -= got.len();
        got
    }

    /// Takes up to `n` jobs in publishing order.
    fn take_next(&mut self, n: usize) -> Vec<usize> {
        let got: Vec<usize> = std::iter::from_fn(|| Self::pop(&mut self.published, &mut self.pending)).take(n).collect();
        self.left -= got.len();
        got
    }

    /// Lanes with jobs not published yet.
    fn lanes(&mut self) -> Vec<Lane> {
        for q in self.by_lane.values_mut() {
            while q.front().is_some_and(|i| self.published.contains(i)) {
                q.pop_front();
            }
        }
        self.by_lane.iter().filter(|(l, q)| l.is_some() && !q.is_empty()).filter_map(|(l, _)| l.clone()).collect()
    }
}

/// The publishing order of a run's missing jobs (positions in `plan.jobs`):
/// jobs without a model first, then every lane's jobs in plan order,
/// interleaved in proportion to each lane's share (job k of a lane of n
/// comes at (k + ½) / n). A run whose window holds only part of it then has
/// work in every lane at once, so its workers spread over the models and
/// stay there as the window refills, instead of all moving from one model to
/// the next (model-major plan order would make every worker load every model).
pub fn interleave_lanes(jobs: &[mll_common::Job], positions: Vec<usize>) -> Vec<usize> {
    let lane = |i: usize| jobs[i].model().map(|m| m.artifact.as_str());
    let mut sizes: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for &i in &positions {
        if let Some(l) = lane(i) {
            *sizes.entry(l).or_default() += 1;
        }
    }
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut keyed: Vec<(f64, usize, usize)> = positions
        .iter()
        .enumerate()
        .map(|(order, &i)| match lane(i) {
            None => (0.0, order, i),
            Some(l) => {
                let k = seen.entry(l).or_default();
                let key = (*k as f64 + 0.5) / sizes[l] as f64;
                *k += 1;
                (key, order, i)
            }
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// What `coordinator retry` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryOutcome {
    /// The jobs whose failure records were cleared, with the reason they had failed.
    pub cleared: Vec<RetriedJob>,
    pub published: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetriedJob {
    pub stage: String,
    pub job: String,
    pub reason: String,
}

impl Submission {
    /// Plans the saved spec (its data root is relative to where the spec was).
    pub fn plan(&self) -> Result<Plan, ControlError> {
        self.plan_strict(false)
    }

    /// [`Self::plan`]; `strict_captions` makes a class without captions an
    /// error whatever the spec says (`--strict-captions`).
    pub fn plan_strict(&self, strict_captions: bool) -> Result<Plan, ControlError> {
        self.plan_spec(&self.spec()?, strict_captions)
    }

    /// The saved spec, parsed (presets resolved).
    pub fn spec(&self) -> Result<crate::spec::BenchmarkSpec, SpecError> {
        crate::spec::BenchmarkSpec::from_toml(&self.spec_text, &self.spec_path.display().to_string())
    }

    /// Plans `spec`, this submission's spec parsed (its data root is relative
    /// to the spec file): the one way every command turns a spec into jobs.
    pub fn plan_spec(&self, spec: &crate::spec::BenchmarkSpec, strict_captions: bool) -> Result<Plan, ControlError> {
        let root = crate::plan::data_root_of(spec, &self.spec_path);
        let opts = crate::plan::PlanOptions::for_spec_file(&self.spec_path, strict_captions);
        Ok(crate::plan::plan_with(spec, &root, &opts)?)
    }
}

impl RunControl {
    /// Registers the plan (spec text, meta, expected sets) and publishes every
    /// job without a result. Returns how many jobs were published.
    pub async fn submit(&self, plan: &Plan, submission: &Submission, retry_failed: bool) -> Result<usize, ControlError> {
        let (published, _) = self.submit_windowed(plan, submission, retry_failed, usize::MAX).await?;
        Ok(published)
    }

    /// [`Self::submit`] that publishes at most `window` jobs now and returns
    /// the rest as a [`Backlog`] for [`Self::top_up`] (what `--wait` does).
    pub async fn submit_windowed(
        &self,
        plan: &Plan,
        submission: &Submission,
        retry_failed: bool,
        window: usize,
    ) -> Result<(usize, Backlog), ControlError> {
        let run = &plan.run;
        self.save_submission(run, submission)?;
        let digest = mll_common::ids::sha256_hex(submission.spec_text.as_bytes());
        let state = match self.store.meta(run).await? {
            Some(m) if m.state == RunState::Cancelled => RunState::Cancelled,
            _ => RunState::Running,
        };
        if state == RunState::Cancelled {
            return Err(ControlError::Cancelled { run: run.clone() });
        }
        self.store.put_meta(run, &RunMeta { state, spec_digest: digest }).await?;
        for stage in plan.stages() {
            let ids: Vec<JobId> = plan.jobs_of(stage).map(|j| j.id.clone()).collect();
            self.store.expect(run, stage, &ids).await?;
        }
        // Damaged results count as missing: drop them so they are published again.
        crate::records::discard_damaged(&*self.store, plan).await?;
        let missing = interleave_lanes(&plan.jobs, self.missing(plan, retry_failed).await?);
        let mut backlog = Backlog::new(&plan.jobs, missing, window);
        let published = self.publish_next(plan, &mut backlog, window).await?;
        Ok((published, backlog))
    }

    /// Publishes the jobs of the plan that have no committed result (and, unless
    /// `retry_failed`, no failure record).
    pub async fn publish_missing(&self, plan: &Plan, retry_failed: bool) -> Result<usize, ControlError> {
        let mut backlog = Backlog::new(&plan.jobs, self.missing(plan, retry_failed).await?, usize::MAX);
        self.publish_next(plan, &mut backlog, usize::MAX).await
    }

    /// Positions in `plan.jobs` of the jobs without a result (and, unless
    /// `retry_failed`, without a failure record), stage by stage.
    async fn missing(&self, plan: &Plan, retry_failed: bool) -> Result<Vec<usize>, ControlError> {
        let run = &plan.run;
        let mut todo = Vec::new();
        for stage in plan.stages() {
            if retry_failed {
                self.store.clear_failures(run, stage).await?;
            }
            let done: BTreeSet<JobId> = self.store.done(run, stage).await?.into_iter().collect();
            let failed = self.store.failures(run, stage).await?;
            todo.extend(
                plan.jobs
                    .iter()
                    .enumerate()
                    .filter(|(_, j)| j.stage() == stage && !done.contains(&j.id) && !failed.contains_key(&j.id))
                    .map(|(i, _)| i),
            );
        }
        Ok(todo)
    }

    /// Publishes up to `count` jobs from the front of the backlog (grouped
    /// by stage for the publish batches; each lane's jobs keep their order).
    async fn publish_next(&self, plan: &Plan, backlog: &mut Backlog, count: usize) -> Result<usize, ControlError> {
        let mut positions = Vec::new();
        if count < backlog.len() {
            // A top-up: first keep the lanes that have workers supplied (two
            // ready jobs per worker), so no worker leaves a lane whose jobs
            // are only held back; then the rest in publishing order, so idle
            // workers find every lane.
            if let Ok(loads) = self.queue.lane_loads(&backlog.lanes()).await {
                for l in loads.iter().filter(|l| l.lane.is_some() && l.consumers > 0) {
                    let want = (2 * u64::from(l.consumers)).saturating_sub(l.ready) as usize;
                    let room = count - positions.len();
                    positions.extend(backlog.take_lane(&l.lane, want.min(room)));
                }
            }
        }
        let room = count - positions.len();
        positions.extend(backlog.take_next(room));
        let mut chosen: Vec<&mll_common::Job> = positions.iter().map(|&i| &plan.jobs[i]).collect();
        chosen.sort_by_key(|j| j.stage());
        let mut published = 0;
        for group in chosen.chunk_by(|a, b| a.stage() == b.stage()) {
            published += self.publish_jobs(&plan.run, group[0].stage(), group, published).await?;
        }
        Ok(published)
    }

    /// Keeps the run's queued and running jobs at its window: publishes from
    /// the backlog as many as have finished since (`status` is the run's
    /// progress just read). Returns how many it published.
    pub async fn top_up(&self, plan: &Plan, backlog: &mut Backlog, status: &RunStatus) -> Result<usize, ControlError> {
        if backlog.is_empty() || status.state != RunState::Running {
            return Ok(0);
        }
        let open: u64 = status.stages.values().map(|p| p.expected.saturating_sub(p.done + p.failed)).sum();
        let in_queue = (open as usize).saturating_sub(backlog.len());
        let room = backlog.window.saturating_sub(in_queue);
        if room == 0 {
            return Ok(0);
        }
        self.publish_next(plan, backlog, room).await
    }

    /// Saves the spec a run is planned from (what `resume` and `retry` replan).
    pub fn save_submission(&self, run: &RunId, submission: &Submission) -> Result<(), ControlError> {
        let json = serde_json::to_vec_pretty(submission).map_err(|source| ControlError::Submission { run: run.clone(), source })?;
        self.artifacts.put_named(&submission_artifact_name(run), &json)?;
        Ok(())
    }

    /// Records the lanes of `jobs` (with their models' artifact folders) in
    /// the store before they are published, so a worker looking for work
    /// finds every lane that has some.
    pub async fn register_lanes(&self, jobs: &[&mll_common::Job]) -> Result<(), ControlError> {
        let mut lanes: Vec<(Lane, String)> =
            jobs.iter().filter_map(|j| j.model()).map(|m| (Lane::of_model(&m.artifact), m.artifact.clone())).collect();
        lanes.sort();
        lanes.dedup();
        Ok(self.store.add_lanes(&lanes).await?)
    }

    /// Publishes `jobs` (all of `stage`) in confirmed batches; `before` is
    /// how many this command published already (for the error message).
    async fn publish_jobs(&self, run: &RunId, stage: Stage, jobs: &[&mll_common::Job], before: usize) -> Result<usize, ControlError> {
        let m = metrics();
        let mut published = 0;
        // Encoded a batch at a time: a hub's jobs encoded at once would hold
        // every message body in memory (GBs at 10^5 jobs).
        for chunk in jobs.chunks(self.publish_batch.max(1)) {
            let batch: Vec<Outgoing> = chunk.iter().map(|j| Outgoing::for_job(j)).collect::<Result<_, wire::WireError>>()?;
            m.coordinator_published.with_label_values(&[stage.as_str()]).inc_by(batch.len() as u64);
            self.register_lanes(chunk).await?;
            if let Err(e) = self.queue.publish(&batch).await {
                if matches!(e, mll_common::queue::QueueError::Unroutable { .. }) {
                    m.coordinator_returned.inc();
                }
                return Err(ControlError::Publish { stage, run: run.clone(), published: before + published, source: e });
            }
            m.coordinator_confirmed.with_label_values(&[stage.as_str()]).inc_by(batch.len() as u64);
            published += batch.len();
        }
        if !jobs.is_empty() {
            debug!(%stage, jobs = jobs.len(), "published");
        }
        Ok(published)
    }

    /// The operator's path after a failure's cause is fixed (`coordinator
    /// retry`): records what waits in the dead-letter queue, then clears the
    /// failure records of the chosen jobs (every failed job, those of `stage`,
    /// or the one `job`) and publishes exactly those again. Jobs without a
    /// failure record are left alone: in-flight work is not duplicated.
    pub async fn retry(&self, plan: &Plan, stage: Option<Stage>, job: Option<&JobId>) -> Result<RetryOutcome, ControlError> {
        let run = &plan.run;
        match self.store.meta(run).await? {
            None => return Err(self.unknown_run(run).await),
            Some(m) if m.state == RunState::Cancelled => {
                return Err(input(format!(
                    "run '{run}' was cancelled; its jobs are not published again: `coordinator delete {run}` removes it, \
                     then submit the spec again (or under another name)"
                )))
            }
            Some(_) => {}
        }
        self.record_dead_letters(run).await?;
        let mut outcome = RetryOutcome::default();
        let mut found_job = false;
        for st in plan.stages().into_iter().filter(|s| stage.is_none_or(|x| x == *s)) {
            let failed = self.store.failures(run, st).await?;
            let chosen: Vec<&mll_common::Job> =
                plan.jobs_of(st).filter(|j| failed.contains_key(&j.id) && job.is_none_or(|id| *id == j.id)).collect();
            for j in &chosen {
                if self.store.clear_failure(run, st, &j.id).await? {
                    outcome.cleared.push(RetriedJob {
                        stage: st.as_str().to_string(),
                        job: j.id.to_string(),
                        reason: failed[&j.id].clone(),
                    });
                }
                found_job |= job.is_some();
            }
            if !chosen.is_empty() {
                // Workers refuse the jobs of a finished run: open it again first.
                self.reopen(run).await?;
            }
            outcome.published += self.publish_jobs(run, st, &chosen, outcome.published).await?;
        }
        if let (Some(id), false) = (job, found_job) {
            return Err(input(format!(
                "job {id} of run '{run}' has no failure record{}; `coordinator status {run}` lists the failed jobs",
                stage.map(|s| format!(" in stage {s}")).unwrap_or_default()
            )));
        }
        Ok(outcome)
    }

    /// Moves what is in the dead-letter queue into failure records, each under
    /// its own run (the queue may be shared by several runs). Only the
    /// coordinator that drives `run` calls this; it logs `run`'s failures and
    /// returns how many of them it saw.
    pub async fn record_dead_letters(&self, run: &RunId) -> Result<usize, ControlError> {
        let dead = self.queue.drain_dead_letters().await?;
        self.record_drained(run, &dead).await
    }

    /// [`Self::record_dead_letters`] for dead letters already drained. Jobs a
    /// worker refused to run (their run unknown or finished, their id not
    /// their payload's) are logged, not recorded: the message only claims
    /// its run, and a failure record would change that run's state.
    pub async fn record_drained(&self, run: &RunId, dead: &[mll_common::queue::DeadLettered]) -> Result<usize, ControlError> {
        let mut own = 0;
        for d in dead {
            if d.is_refusal() {
                warn!(job = d.job_id.as_deref().unwrap_or("?"), reason = %d.reason, "a worker refused a job; no failure is recorded for it");
                continue;
            }
            match wire::decode(&d.body, usize::MAX) {
                Ok(job) => {
                    let stage = job.stage();
                    self.store.record_failure(&job.run, stage, &job.id, &d.reason).await?;
                    metrics().coordinator_dead_lettered.with_label_values(&[stage.as_str()]).inc();
                    if &job.run == run {
                        own += 1;
                        warn!(run = %job.run, job = %job.id, %stage, reason = %d.reason, "job failed for good");
                    } else {
                        tracing::debug!(run = %job.run, job = %job.id, "recorded a dead letter of another run under that run");
                    }
                }
                Err(e) => warn!(
                    job = d.job_id.as_deref().unwrap_or("?"),
                    reason = %d.reason,
                    error = %e,
                    "a malformed message was dead-lettered"
                ),
            }
        }
        Ok(own)
    }

    /// Marks a finished (done or failed) run as running again, before jobs of
    /// it are published once more (`retry`, `verify --repair`): workers refuse
    /// the jobs of a finished run. A cancelled run stays cancelled.
    pub async fn reopen(&self, run: &RunId) -> Result<(), ControlError> {
        if let Some(m) = self.store.meta(run).await? {
            if matches!(m.state, RunState::Done | RunState::Failed) {
                self.store.set_state(run, RunState::Running).await?;
            }
        }
        Ok(())
    }

    /// Says what exists when `run` is not in the store: the runs the store
    /// has and the runs whose spec was saved under the artifact root.
    pub async fn unknown_run(&self, run: &RunId) -> ControlError {
        let saved = self.saved_runs();
        if saved.contains(run) {
            return input(format!(
                "run '{run}' is not in the store (the store lost its data, or store.url/store.key_prefix point elsewhere); \
                 its spec is saved: `coordinator resume {run}` registers it again and republishes what is missing"
            ));
        }
        let stored = self.store.runs().await.unwrap_or_default();
        // The embed runs of `select` and `adapt` are internal: not listed.
        let list = |v: &[RunId]| {
            let shown: Vec<&str> = v.iter().map(|r| r.as_str()).filter(|r| !is_internal_run(r)).collect();
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            }
        };
        input(format!(
            "run '{run}' is not in the store and no spec of it is saved under {} (never submitted with these settings?). \
             Runs in the store: {}. Runs with a saved spec: {}. Submit it with `coordinator submit --benchmark FILE`",
            self.artifacts.root().display(),
            list(&stored),
            list(&saved)
        ))
    }

    /// Runs whose submission is saved under the artifact root.
    pub fn saved_runs(&self) -> Vec<RunId> {
        let mut runs: Vec<RunId> = std::fs::read_dir(self.artifacts.root().join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("submission.json").is_file())
            .filter_map(|e| RunId::new(&e.file_name().to_string_lossy()).ok())
            .collect();
        runs.sort();
        runs
    }

    pub async fn status(&self, run: &RunId) -> Result<RunStatus, ControlError> {
        let Some(meta) = self.store.meta(run).await? else { return Err(self.unknown_run(run).await) };
        let mut stages = BTreeMap::new();
        let mut failures = Vec::new();
        for stage in Stage::ALL {
            let p = self.store.progress(run, stage).await?;
            if p.expected == 0 {
                continue;
            }
            for (job, reason) in self.store.failures(run, stage).await? {
                failures.push(FailureRecord { stage: stage.to_string(), job: job.to_string(), reason });
            }
            let m = metrics();
            m.run_jobs_expected.with_label_values(&[run.as_str(), stage.as_str()]).set(p.expected as i64);
            m.run_jobs_done.with_label_values(&[run.as_str(), stage.as_str()]).set(p.done as i64);
            m.run_jobs_failed.with_label_values(&[run.as_str(), stage.as_str()]).set(p.failed as i64);
            stages.insert(stage.to_string(), p);
        }
        let finished = stages.values().all(|p| p.finished());
        let state = match meta.state {
            RunState::Cancelled => RunState::Cancelled,
            _ if !finished => RunState::Running,
            _ if failures.is_empty() => RunState::Done,
            _ => RunState::Failed,
        };
        let duplicate_executions = self.store.duplicate_executions(run).await?;
        Ok(RunStatus { run: run.to_string(), state, stages, failures, duplicate_executions })
    }

    /// Cancels a running run; a finished or cancelled one is left as it is.
    pub async fn cancel(&self, run: &RunId) -> Result<(), ControlError> {
        let status = self.status(run).await?;
        if status.state != RunState::Running {
            return Err(input(format!("run '{run}' is {} already; only a running run can be cancelled", status.state)));
        }
        self.store.set_state(run, RunState::Cancelled).await?;
        Ok(())
    }

    /// Reads what was saved at submit time.
    pub fn saved_submission(&self, run: &RunId) -> Result<Submission, ControlError> {
        let bytes = self.artifacts.get_named(&submission_artifact_name(run))?.ok_or_else(|| {
            let saved: Vec<RunId> = self.saved_runs().into_iter().filter(|r| !is_internal_run(r.as_str())).collect();
            input(format!(
                "no saved spec for run '{run}' under {} (was it submitted with this artifacts.root?); pass --benchmark FILE. \
                 Runs with a saved spec there: {}",
                self.artifacts.root().display(),
                if saved.is_empty() { "none".into() } else { saved.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ") }
            ))
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ControlError::Submission { run: run.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{hub_jobs, PlannedDataset};
    use crate::spec::BenchmarkSpec;

    #[test]
    fn a_window_spans_every_lane_in_proportion() {
        // Model a: 4 jobs, model b: 2 (shards of 1 sample over 4 and 2 samples).
        let toml = "name = \"r\"\n[execution]\nshard_size = 1\n\
                    [[hub]]\nkey = \"a/x\"\nartifact = \"models/a\"\n[[hub]]\nkey = \"b/x\"\nartifact = \"models/b\"\n\
                    [[datasets]]\nname = \"d\"\nformat = \"imagefolder\"\npath = \"d\"\n";
        let spec = BenchmarkSpec::from_toml(toml, "t.toml").unwrap();
        let d = PlannedDataset {
            spec: spec.datasets[0].clone(),
            classnames: vec!["x".into()],
            prompt_names: vec!["x".into()],
            templates: vec!["{c}".into()],
            samples: 4,
            caption_fallbacks: Vec::new(),
        };
        let mut jobs = hub_jobs(&RunId::new("r").unwrap(), &spec, None, &[d]);
        // b's dataset is smaller: drop two of its jobs to give the lanes 4 and 2.
        jobs.truncate(6);
        let lanes: Vec<&str> = jobs.iter().map(|j| j.model().unwrap().artifact.as_str()).collect();
        assert_eq!(lanes, ["models/a"; 4].iter().chain(&["models/b"; 2]).copied().collect::<Vec<_>>(), "plan order is model-major");
        let order = interleave_lanes(&jobs, (0..6).collect());
        let got: Vec<&str> = order.iter().map(|&i| lanes[i]).collect();
        // a at 1/8, 3/8, 5/8, 7/8; b at 1/4, 3/4.
        assert_eq!(got, ["models/a", "models/b", "models/a", "models/a", "models/b", "models/a"]);
        assert_eq!(order.iter().filter(|&&i| lanes[i] == "models/a").copied().collect::<Vec<_>>(), [0, 1, 2, 3], "a lane keeps its order");
    }
}
