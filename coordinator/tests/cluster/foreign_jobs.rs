//! Jobs that do not belong where they claim (issue 27, item 2): real job
//! messages with their run rewritten, published straight to this test's
//! queue. A worker runs none of them: each is dead-lettered with its reason,
//! no result or key appears, and the finished run's `status` is unchanged,
//! also after a coordinator has drained the dead letters.

use crate::support;

use mll_common::config::Settings;
use mll_common::job::{DiagnosticBehavior, DiagnosticJob};
use mll_common::queue::amqp::AmqpQueue;
use mll_common::queue::{JobQueue, Outgoing};
use mll_common::store::redis::RedisStore;
use mll_common::{Job, JobPayload, RunId};
use mll_coordinator::control::RunControl;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn planned(spec: &str, dir: &std::path::Path) -> Vec<Job> {
    let spec = mll_coordinator::spec::BenchmarkSpec::from_toml(spec, "test").unwrap();
    mll_coordinator::plan::plan(&spec, dir).unwrap().jobs
}

fn outgoing(job: &Job) -> Outgoing {
    Outgoing::for_job(job).unwrap()
}

#[test]
fn jobs_with_altered_runs_are_dead_lettered_with_reasons_and_change_nothing() {
    let c = Cluster::new("foreign");
    let mut w = c.spawn_worker("1");
    let spec_text = diagnostic_spec("fin", 3, 0, &[]);
    let spec = c.write_spec("spec.toml", &spec_text);
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", c.path("out").to_str().unwrap()]);
    let before = c.status("fin");
    assert_eq!(before["state"], "done", "{before}");
    let keys = || {
        let mut k: Vec<String> = c.redis(&["--scan", "--pattern", &format!("{}:*", c.name)]).lines().map(String::from).collect();
        k.sort();
        k
    };
    let keys_before = keys();

    let fin = RunId::new("fin").unwrap();
    // The job of another run, its run rewritten to the finished one (its id
    // is the other run's).
    let other = planned(&diagnostic_spec("elsewhere", 1, 0, &[]), c.dir.path()).remove(0);
    let moved = Job { run: fin.clone(), ..other };
    // A job of the finished run under its proper id, published after its end.
    let late = Job::new(fin.clone(), JobPayload::Diagnostic(DiagnosticJob { index: 9, work_ms: 0, behavior: DiagnosticBehavior::Succeed }));
    // A job of a run nobody submitted, under its proper id.
    let ghost = Job::new(RunId::new("ghost").unwrap(), late.payload.clone());
    // A real job whose run is rewritten to a path, byte for byte in the message.
    let mut traversal = outgoing(&planned(&diagnostic_spec("abcdefghi", 1, 0, &[]), c.dir.path()).remove(0));
    let at = traversal.body.windows(9).position(|w| w == b"abcdefghi").expect("the run id is in the message");
    traversal.body[at..at + 9].copy_from_slice(b"../../etc");

    let env = c.env.clone().into_iter().collect();
    let settings = Settings::load_with_env(None, Some(env)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let queue = Arc::new(rt.block_on(AmqpQueue::connect(&settings.broker)).unwrap());
    rt.block_on(queue.publish(&[outgoing(&moved), outgoing(&late), outgoing(&ghost), traversal])).unwrap();

    let start = Instant::now();
    while c.queue_messages("dead") < 4 {
        assert!(start.elapsed() < Duration::from_secs(60), "not every job was dead-lettered:\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    kill9(&mut w);
    let log = std::fs::read_to_string(c.path("worker-1.log")).unwrap();
    assert_eq!(log.matches("executing").count(), 3, "only the run's own 3 jobs ran:\n{log}");

    let dead = rt.block_on(queue.drain_dead_letters()).unwrap();
    assert_eq!(dead.len(), 4, "{dead:?}");
    let reason_of =
        |job: &Job| dead.iter().find(|d| d.job_id.as_deref() == Some(job.id.as_str())).map(|d| d.reason.clone()).unwrap_or_default();
    let r = reason_of(&moved);
    assert!(r.starts_with("refused: ") && r.contains("is not the id of its payload"), "{r}");
    let r = reason_of(&late);
    assert!(r.starts_with("refused: ") && r.contains("'fin' is finished"), "{r}");
    let r = reason_of(&ghost);
    assert!(r.starts_with("refused: ") && r.contains("'ghost' is not known"), "{r}");
    let bad: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).filter(|r| r.starts_with("malformed")).collect();
    assert!(bad.len() == 1 && bad[0].contains("../../etc") && bad[0].contains("is not valid"), "{bad:?}");

    // A coordinator drains them as it drives a run: nothing is recorded.
    let ctl = RunControl {
        queue: queue.clone(),
        store: Arc::new(rt.block_on(RedisStore::connect(&settings.store)).unwrap()),
        artifacts: mll_common::artifact::ArtifactStore::new(c.path("artifacts")),
        publish_batch: 10,
    };
    assert_eq!(rt.block_on(ctl.record_drained(&fin, &dead)).unwrap(), 0);
    assert_eq!(c.status("fin"), before, "the finished run is unchanged");
    assert_eq!(keys(), keys_before, "no key was written");
}
