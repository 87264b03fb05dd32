//! RabbitMQ restarted mid-run: workers and coordinator reconnect, the run
//! completes, and the consumer's prefetch is still 1 after the reconnect.
//! (Its own test binary: restarting the broker would disturb other tests.)

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl on PATH");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Prefetch counts of the consumers on `queue`.
fn prefetch_counts(queue: &str) -> Vec<u32> {
    rabbitmqctl(&["-q", "list_consumers", "queue_name", "prefetch_count"])
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == queue).then(|| it.next()?.parse().ok()).flatten()
        })
        .collect()
}

#[test]
fn broker_restart_mid_run_completes_and_prefetch_stays_one() {
    let c = Cluster::new("restart");
    let jobs = 30;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("restart", jobs, 150, &[]));
    let out = c.path("out");
    let mut coord =
        c.spawn_coordinator(&["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", out.to_str().unwrap()], "coord");
    let mut w = c.spawn_worker("1");
    let queue = format!("{}.jobs", c.name);
    c.wait_status("restart", Duration::from_secs(60), |s| Cluster::done_count(s, "diagnostic") >= 3);
    assert_eq!(prefetch_counts(&queue), vec![1]);

    rabbitmqctl(&["stop_app"]);
    std::thread::sleep(Duration::from_secs(2));
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    let st = c.wait_status("restart", Duration::from_secs(180), |s| s["state"] != "running");
    assert_eq!(st["state"], "done", "{st}\n{}", c.logs());
    assert_eq!(Cluster::done_count(&st, "diagnostic"), jobs as u64);
    assert_eq!(coord.wait().unwrap().code(), Some(0), "{}", c.logs());
    // The worker reconnected and applied prefetch 1 to its new channel.
    let counts = prefetch_counts(&queue);
    kill9(&mut w);
    assert_eq!(counts, vec![1], "prefetch after reconnect\n{}", c.logs());
    let log = std::fs::read_to_string(c.path("worker-1.log")).unwrap();
    assert!(log.to_lowercase().contains("reconnect"), "the worker did not log a reconnect:\n{log}");
}
