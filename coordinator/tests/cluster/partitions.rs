//! Partitions and slow services, through a TCP fault proxy between the
//! processes and the real RabbitMQ / Redis (support/proxy.rs). Each test ends
//! with the checker of docs/operations.md ("Reliability semantics"):
//! lost = published − done = ∅, unexpected = done − published = ∅, no dead
//! letters, and the report equals that of an undisturbed local run.

use crate::support;

use std::time::{Duration, Instant};
use support::proxy::FaultProxy;
use support::*;

const BROKER: &str = "127.0.0.1:5672";
const REDIS: &str = "127.0.0.1:6379";

fn broker_url(port: u16) -> String {
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

fn redis_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// The checker, then the report against an undisturbed local run of the same spec.
fn check_exactly_once(c: &Cluster, run: &str, jobs: usize, spec: &std::path::Path, out: &std::path::Path) {
    let published = c.redis_set(run, "expected:diagnostic");
    let committed = c.redis_set(run, "done:diagnostic");
    assert_eq!(published.len(), jobs, "{}", c.logs());
    let lost: Vec<_> = published.difference(&committed).collect();
    let unexpected: Vec<_> = committed.difference(&published).collect();
    assert!(lost.is_empty(), "lost jobs: {lost:?}\n{}", c.logs());
    assert!(unexpected.is_empty(), "unexpected results: {unexpected:?}");
    let st = c.status(run);
    assert_eq!(st["stages"]["diagnostic"]["failed"].as_u64(), Some(0), "dead-lettered: {st}");
    assert_eq!(c.queue_messages("dead"), 0, "messages in the dead-letter queue\n{}", c.logs());
    c.coordinator_ok(&["report", run, "--out", out.to_str().unwrap()]);
    let undisturbed = c.path(&format!("{run}-undisturbed"));
    c.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", undisturbed.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("report.json")).unwrap(),
        std::fs::read(undisturbed.join("report.json")).unwrap(),
        "the report differs from an undisturbed run's"
    );
}

fn wait_until(what: &str, timeout: Duration, c: &Cluster, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A worker loses the broker and Redis mid-job (silence, not a closed
/// socket): the broker notices the missed heartbeats and redelivers the job to
/// another worker, which commits it. When the partition heals, the first
/// execution's late commit must not make a second result.
#[test]
fn worker_partitioned_mid_job_does_not_make_a_second_result() {
    let c = Cluster::new("part");
    let jobs = 3;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("part", jobs, 2500, &[]));
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap()]);

    let broker = FaultProxy::start(BROKER);
    let redis = FaultProxy::start(REDIS);
    let mut cut_off = c.spawn_worker_env(
        "cut-off",
        &[
            ("MLL__BROKER__URL", broker_url(broker.port())),
            ("MLL__STORE__URL", redis_url(redis.port())),
            ("MLL__BROKER__HEARTBEAT_S", "1".into()),
        ],
    );
    // Partition it once it holds a job (its execution is counted first).
    wait_until("the first execution", Duration::from_secs(60), &c, || {
        !c.redis(&["HGETALL", &format!("{}:{{part}}:exec", c.name)]).trim().is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    broker.stall();
    redis.stall();

    let mut healthy = c.spawn_worker("healthy");
    let st = c.wait_status("part", Duration::from_secs(90), |s| Cluster::done_count(s, "diagnostic") == jobs as u64);
    assert_eq!(st["state"], "done", "{st}");
    // The job held by the cut-off worker ran twice: the fault really hit.
    assert!(st["duplicate_executions"].as_u64().unwrap() >= 1, "no redelivery observed: {st}\n{}", c.logs());

    let before = results(&c, "part");
    assert_eq!(before.len(), jobs as usize);

    // Heal: the cut-off worker's commit arrives late and must be a no-op.
    broker.pass();
    redis.pass();
    wait_until("the cut-off worker's late commit", Duration::from_secs(90), &c, || {
        std::fs::read_to_string(c.path("worker-cut-off.log")).unwrap_or_default().contains("the first result stands")
    });
    kill9(&mut cut_off);
    kill9(&mut healthy);
    // Not a byte of any result changed: the late commit wrote nothing (a
    // second write would differ in its execution time at least).
    assert_eq!(results(&c, "part"), before, "the late commit changed a stored result");
    check_exactly_once(&c, "part", jobs as usize, &spec, &c.path("out"));
}

/// Every stored result of a run's diagnostic stage, by job id (raw bytes as redis-cli prints them).
fn results(c: &Cluster, run: &str) -> std::collections::BTreeMap<String, String> {
    c.redis_set(run, "done:diagnostic")
        .into_iter()
        .map(|job| {
            let value = c.redis(&["GET", &format!("{}:{{{run}}}:result:{job}", c.name)]);
            (job, value)
        })
        .collect()
}

/// Lines of a log file that contain `needle`.
fn log_count(c: &Cluster, file: &str, needle: &str) -> usize {
    std::fs::read_to_string(c.path(file)).unwrap_or_default().matches(needle).count()
}

/// Redis answers every request 1.5 s late for a while, mid-run: commits are
/// slow or retried, nothing is lost and nothing is dead-lettered for it.
#[test]
fn slow_redis_loses_nothing_and_dead_letters_nothing() {
    let c = Cluster::new("slowredis");
    let jobs = 12;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("slowredis", jobs, 300, &[]));
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap()]);
    let redis = FaultProxy::start(REDIS);
    let mut w = c.spawn_worker_env(
        "slow",
        &[
            ("MLL__STORE__URL", redis_url(redis.port())),
            // Shorter than the delay: commands time out, with unknown
            // outcome, and are retried (idempotently).
            ("MLL__STORE__RESPONSE_TIMEOUT_MS", "1000".into()),
        ],
    );
    // Slow it down once the worker is connected and committing.
    wait_until("a first result", Duration::from_secs(60), &c, || !c.redis_set("slowredis", "done:diagnostic").is_empty());
    redis.slow(Duration::from_millis(1500));
    std::thread::sleep(Duration::from_secs(10));
    // The slowness held the run up: not everything was done through it.
    let done_while_slow = c.redis_set("slowredis", "done:diagnostic").len();
    redis.pass();
    let st = c.wait_status("slowredis", Duration::from_secs(120), |s| s["state"] != "running");
    kill9(&mut w);
    assert_eq!(st["state"], "done", "{st}\n{}", c.logs());
    assert!(done_while_slow < jobs as usize, "the slow store held nothing up ({done_while_slow} of {jobs} done)");
    // The fault hit: the worker saw Redis replies time out and retried.
    let retried = log_count(&c, "worker-slow.log", "Redis command failed; retrying");
    assert!(retried > 0, "the worker never saw a slow reply\n{}", c.logs());
    eprintln!("slow redis: {done_while_slow} of {jobs} done while slow, {retried} command retries");
    check_exactly_once(&c, "slowredis", jobs as usize, &spec, &c.path("out"));
}

/// A worker loses Redis for longer than the broker's delivery limit of
/// requeues would last (delivery_limit 5): it must
/// hold the job it received and retry the store, not requeue it, or the
/// broker dead-letters healthy jobs for an outage (with no reason recorded).
#[test]
fn worker_without_redis_holds_its_job_instead_of_using_up_deliveries() {
    let c = Cluster::new("noredis");
    let jobs = 12;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("noredis", jobs, 300, &[]));
    let redis = FaultProxy::start(REDIS);
    // The worker connects, then loses Redis while idle; the jobs arrive during
    // the outage (a job in hand when Redis goes is the commit retry's case).
    // store.retries = 0: each store call fails at once, as after the store's
    // own retries (about 25 s at the defaults) in a longer outage.
    let mut w = c.spawn_worker_env("cut", &[("MLL__STORE__URL", redis_url(redis.port())), ("MLL__STORE__RETRIES", "0".into())]);
    wait_until("the worker consuming", Duration::from_secs(60), &c, || log_count(&c, "worker-cut.log", "worker consuming") > 0);
    redis.cut();
    c.coordinator_ok(&["submit", "--benchmark", spec.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(12));
    let done_during_cut = c.redis_set("noredis", "done:diagnostic").len();
    redis.pass();
    let st = c.wait_status("noredis", Duration::from_secs(120), |s| s["state"] != "running");
    kill9(&mut w);
    assert_eq!(st["state"], "done", "{st}\n{}", c.logs());
    assert!(done_during_cut < jobs as usize, "the cut held nothing up ({done_during_cut} of {jobs} done)");
    // The fault hit: the worker held a job while the store was gone.
    let held = log_count(&c, "worker-cut.log", "holding the job");
    assert!(held > 0, "the worker never waited for the store\n{}", c.logs());
    eprintln!("worker without redis: {done_during_cut} of {jobs} done during the 12 s cut, {held} store retries while holding a job");
    check_exactly_once(&c, "noredis", jobs as usize, &spec, &c.path("out"));
}

/// The coordinator following a run with --wait loses Redis for a few seconds:
/// it rides the outage out and writes the same report.
#[test]
fn coordinator_cut_from_redis_while_waiting_rides_it_out() {
    let c = Cluster::new("coordcut");
    let jobs = 20;
    let spec = c.write_spec("spec.toml", &diagnostic_spec("coordcut", jobs, 200, &[]));
    let redis = FaultProxy::start(REDIS);
    let out = c.path("out-wait");
    let mut coord = c.spawn_coordinator_env(
        &["submit", "--benchmark", spec.to_str().unwrap(), "--wait", "--out", out.to_str().unwrap()],
        "coord",
        &[("MLL__STORE__URL", redis_url(redis.port()))],
    );
    let mut w = c.spawn_worker("w");
    wait_until("a first result", Duration::from_secs(60), &c, || !c.redis_set("coordcut", "done:diagnostic").is_empty());
    let connections = redis.accepted();
    redis.cut();
    std::thread::sleep(Duration::from_secs(4));
    // The cut hit the coordinator while it was waiting (it is still there).
    assert!(coord.try_wait().unwrap().is_none(), "the coordinator ended during the cut\n{}", c.logs());
    redis.pass();
    let start = Instant::now();
    let code = loop {
        if let Some(st) = coord.try_wait().unwrap() {
            break st.code();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "coordinator did not finish\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    kill9(&mut w);
    assert_eq!(code, Some(0), "coordinator --wait failed\n{}", c.logs());
    assert!(redis.accepted() > connections, "the coordinator never reconnected through the proxy\n{}", c.logs());
    // It noticed: a Redis command failed and was retried (or a poll failed and waited).
    let noticed = log_count(&c, "coordinator-coord.log", "Redis command failed; retrying")
        + log_count(&c, "coordinator-coord.log", "cannot read the run's progress");
    assert!(noticed > 0, "the coordinator never noticed the cut\n{}", c.logs());
    let waited = std::fs::read(out.join("report.json")).expect("--wait wrote the report");
    check_exactly_once(&c, "coordcut", jobs as usize, &spec, &c.path("out"));
    assert_eq!(waited, std::fs::read(c.path("out").join("report.json")).unwrap());
}
