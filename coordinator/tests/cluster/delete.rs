//! A cancelled run is not a dead end: submitting it again names
//! `coordinator delete`, which asks first (--yes in scripts), removes the
//! run's keys and saved spec, and the same submit then starts it afresh. A
//! local run of the same name is pointed at when the cluster has none.

use crate::support::*;

#[test]
fn a_cancelled_run_is_deleted_and_submitted_afresh() {
    let c = Cluster::new("delete");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("gone", 4, 0, &[]));
    let spec = spec.to_str().unwrap();
    // No worker: the jobs wait in the queue.
    c.coordinator_ok(&["submit", "--benchmark", spec]);
    let running = c.coordinator(&["delete", "gone", "--yes"]);
    assert_eq!(running.status.code(), Some(2), "a running run is cancelled first");
    assert!(String::from_utf8_lossy(&running.stderr).contains("coordinator cancel gone"), "{running:?}");
    c.coordinator_ok(&["cancel", "gone"]);

    let again = c.coordinator(&["submit", "--benchmark", spec]);
    let err = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(!again.status.success());
    assert!(err.contains("`coordinator delete gone`"), "the message names the way out: {err}");

    let asked = c.coordinator(&["delete", "gone"]);
    assert_eq!(asked.status.code(), Some(2), "no terminal to ask on, no --yes");
    assert!(String::from_utf8_lossy(&asked.stderr).contains("--yes"), "{asked:?}");
    assert!(!c.redis_set("gone", "expected:diagnostic").is_empty(), "nothing deleted yet");

    c.coordinator_ok(&["delete", "gone", "--yes"]);
    assert!(c.redis(&["--scan", "--pattern", &format!("{}:{{gone}}:*", c.name)]).trim().is_empty(), "every key of the run is gone");
    assert!(!c.path("artifacts/runs/gone").exists(), "its saved spec too");
    assert_eq!(c.coordinator(&["status", "gone"]).status.code(), Some(2));

    // Afresh: registered and published again, and a worker finishes it.
    let out: serde_json::Value = serde_json::from_str(&c.coordinator_ok(&["submit", "--benchmark", spec, "--json"])).unwrap();
    assert_eq!(out["published"], 4, "{out}");
    let mut w = c.spawn_worker("1");
    let st = c.wait_status("gone", std::time::Duration::from_secs(60), |s| s["state"] == "done");
    assert_eq!(st["stages"]["diagnostic"]["done"], 4, "{st}");
    kill9(&mut w);
}

#[test]
fn the_cluster_points_at_a_local_run_of_the_same_name() {
    let c = Cluster::new("hint");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("hinted", 2, 0, &[]));
    // A local run in the cluster's folder (its out/), made with the same settings.
    let run = c.coordinator(&["run", "--local", "--benchmark", spec.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // The test's settings name a broker and a store: the cluster is asked, and has no such run.
    let status = c.coordinator(&["status", "hinted"]);
    assert_eq!(status.status.code(), Some(2));
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(err.contains("a local run 'hinted' is in out/hinted") && err.contains("--local finds it"), "{err}");
    assert!(err.contains("MLL__BROKER__"), "it says why the cluster was asked: {err}");
    assert!(c.coordinator_ok(&["status", "hinted", "--local"]).starts_with("run hinted: done"));
}
