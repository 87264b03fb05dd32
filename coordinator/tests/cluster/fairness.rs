//! Several runs on one cluster (docs/operations.md, "Scale"): runs waited
//! for together share the workers by their specs' `priority` instead of first
//! come, first served, each run's `status` stays its own, and cancelling one
//! leaves the other untouched. Real RabbitMQ, Redis, worker and coordinator processes.

use crate::support;

use std::process::Child;
use std::time::{Duration, Instant};
use support::*;

fn spec_with_priority(name: &str, jobs: u32, work_ms: u64, priority: u32) -> String {
    format!("priority = {priority}\n{}", diagnostic_spec(name, jobs, work_ms, &[]))
}

fn wait_exit(child: &mut Child, timeout: Duration, what: &str, c: &Cluster) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(start.elapsed() < timeout, "{what} did not exit within {timeout:?}:\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run A (priority 1) is well under way when run B (priority 2) is
/// submitted; one worker serves both. With every job published at submit
/// (one FIFO queue) A would finish before B's first job ran; with windows B
/// gets about two jobs for each of A's and finishes first.
#[test]
fn runs_waited_together_share_the_workers_by_priority() {
    let mut c = Cluster::new("fair");
    // Windows of about a second of work, so a coordinator slow to top up
    // (a loaded machine) does not let its run's share run dry.
    c.env.insert("MLL__COORDINATOR__WINDOW".into(), "16".into());
    let (jobs_a, jobs_b, work_ms) = (320, 120, 60);
    let a = c.write_spec("a.toml", &spec_with_priority("fair-a", jobs_a, work_ms, 1));
    let b = c.write_spec("b.toml", &spec_with_priority("fair-b", jobs_b, work_ms, 2));
    let mut worker = c.spawn_worker("1");
    let mut coord_a =
        c.spawn_coordinator(&["submit", "--benchmark", a.to_str().unwrap(), "--wait", "--out", c.path("out-a").to_str().unwrap()], "a");
    // A's window is 16 jobs: the queue never holds more of A's.
    c.wait_status("fair-a", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") >= 10);
    let queued_a = c.queue_messages("jobs");
    assert!(queued_a <= 16, "A keeps {queued_a} jobs queued, its window is 16");
    let mut coord_b =
        c.spawn_coordinator(&["submit", "--benchmark", b.to_str().unwrap(), "--wait", "--out", c.path("out-b").to_str().unwrap()], "b");
    // From B's first finished job to its last, the worker serves both.
    c.wait_status("fair-b", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") >= 1);
    let a_from = Cluster::done_count(&c.status("fair-a"), "diagnostic");
    let st_b = c.wait_status("fair-b", Duration::from_secs(120), |s| s["state"] == "done");
    let st_a = c.status("fair-a");
    let a_during = Cluster::done_count(&st_a, "diagnostic") - a_from;
    eprintln!(
        "fairness: A did {a_from} jobs before B's first finished, then {a_during} while B did the other {} (priority 1 : 2)",
        jobs_b - 1
    );
    assert_eq!(Cluster::done_count(&st_b, "diagnostic"), jobs_b as u64, "{st_b}");
    assert_eq!(st_a["state"], "running", "A finished before B although B has twice its priority: {st_a}");
    // Shares 1 : 2 give A about half of B's jobs meanwhile; a FIFO queue
    // would have run all of A's jobs before B's first.
    let expected = (jobs_b - 1) as f64 / 2.0;
    assert!(
        (a_during as f64) > expected * 0.5 && (a_during as f64) < expected * 1.5,
        "A did {a_during} jobs while B did {}; shares 1 : 2 give about {expected}",
        jobs_b - 1
    );
    assert!(wait_exit(&mut coord_b, Duration::from_secs(30), "B's coordinator", &c).success(), "{}", c.logs());
    assert!(wait_exit(&mut coord_a, Duration::from_secs(120), "A's coordinator", &c).success(), "{}", c.logs());
    let st_a = c.status("fair-a");
    assert_eq!((st_a["state"].as_str(), Cluster::done_count(&st_a, "diagnostic")), (Some("done"), jobs_a as u64), "{st_a}");
    for (st, run) in [(&st_a, "a"), (&c.status("fair-b"), "b")] {
        assert_eq!(st["duplicate_executions"], 0, "run {run}: {st}");
        assert!(c.path(&format!("out-{run}/report.json")).is_file(), "run {run} wrote no report");
    }
    kill9(&mut worker);
}

/// Two runs of equal priority under way; `coordinator cancel` of one stops
/// it (its coordinator returns, its queued jobs are dropped) while the other
/// runs to the end with its own, correct status.
#[test]
fn cancelling_one_run_leaves_the_other_untouched() {
    let mut c = Cluster::new("fair-cancel");
    c.env.insert("MLL__COORDINATOR__WINDOW".into(), "16".into());
    let (jobs, work_ms) = (100, 60);
    let a = c.write_spec("a.toml", &spec_with_priority("keep", jobs, work_ms, 1));
    let b = c.write_spec("b.toml", &spec_with_priority("drop", jobs, work_ms, 1));
    let mut worker = c.spawn_worker("1");
    let out = |r: &str| c.path(&format!("out-{r}")).display().to_string();
    let mut keep = c.spawn_coordinator(&["submit", "--benchmark", a.to_str().unwrap(), "--wait", "--out", &out("keep")], "keep");
    let mut drop = c.spawn_coordinator(&["submit", "--benchmark", b.to_str().unwrap(), "--wait", "--out", &out("drop")], "drop");
    c.wait_status("drop", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") >= 20);
    let keep_at_cancel = Cluster::done_count(&c.status("keep"), "diagnostic");
    assert!(keep_at_cancel >= 2, "the runs did not share the worker: 'keep' had {keep_at_cancel} jobs done");
    c.coordinator_ok(&["cancel", "drop"]);
    assert!(wait_exit(&mut drop, Duration::from_secs(30), "the cancelled run's coordinator", &c).success(), "{}", c.logs());
    let dropped_at = Cluster::done_count(&c.status("drop"), "diagnostic");
    let st = c.wait_status("keep", Duration::from_secs(120), |s| s["state"] == "done");
    assert_eq!(Cluster::done_count(&st, "diagnostic"), jobs as u64, "{st}");
    assert!(st["failures"].as_array().unwrap().is_empty(), "{st}");
    assert!(wait_exit(&mut keep, Duration::from_secs(60), "the kept run's coordinator", &c).success(), "{}", c.logs());
    let st_drop = c.status("drop");
    assert_eq!(st_drop["state"], "cancelled", "{st_drop}");
    // At most the job in hand at the cancel finished after it; nothing more was published or run.
    let done_drop = Cluster::done_count(&st_drop, "diagnostic");
    assert!(done_drop <= dropped_at + 1 && done_drop < jobs as u64, "the cancelled run went on: {dropped_at} then {done_drop}");
    assert!(!c.path("out-drop/report.json").exists(), "a cancelled run wrote a report");
    kill9(&mut worker);
}
