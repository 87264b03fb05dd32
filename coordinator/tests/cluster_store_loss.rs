//! Redis loses its data mid-run (FLUSHALL): `coordinator resume` republishes
//! what is missing and the run ends with the same report as an undisturbed one.
//! (Its own test binary: FLUSHALL would disturb other tests.)

mod support;

use std::time::Duration;
use support::*;

#[test]
fn flushall_mid_run_then_resume_gives_the_same_report() {
    let c = Cluster::new("flush");
    let jobs = 20;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("flush", jobs, 100, &[]));
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap()]);
    let mut w = c.spawn_worker("1");
    c.wait_status("flush", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") >= 5);
    c.redis(&["FLUSHALL"]);
    // The run is gone from the store; resume rebuilds it from the saved spec.
    assert!(!c.coordinator(&["status", "flush", "--json"]).status.success());
    let out = c.path("out");
    c.coordinator_ok(&["resume", "flush", "--wait", "--out", out.to_str().unwrap()]);
    kill9(&mut w);
    let st = c.status("flush");
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(Cluster::done_count(&st, "diagnostic"), jobs as u64);

    let local = c.path("out-local");
    c.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", local.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), std::fs::read(local.join("report.json")).unwrap());
}
