//! Seeded soak: the toy spec, run again and again through the real
//! RabbitMQ and Redis with a few worker processes, under a schedule of faults
//! drawn from a seed. Run by `scripts/soak --seed S --minutes M` (ignored by a
//! plain `cargo test`: it takes minutes and restarts the shared broker).
//!
//! Environment: `SOAK_SEED` (default 1), `SOAK_MINUTES` (default 3; faults are
//! injected until then, the round in progress then finishes undisturbed),
//! `SOAK_WORKERS` (default 3).
//!
//! Redis is one of the soak's own (a `redis-server` on a free loopback port):
//! other tests FLUSHALL the shared one. RabbitMQ is the machine's. Every worker
//! reaches them through fault proxies of its own (support/proxy.rs), the
//! waiting coordinator reaches Redis through one too.
//! Faults: a worker killed with -9 (and started again), the broker restarted
//! (`rabbitmqctl stop_app` / `start_app`), a worker's broker or Redis link cut,
//! a worker partitioned (both links silent past the heartbeat, so the broker
//! redelivers its job), a worker's Redis slowed, the coordinator's Redis link
//! cut. Redis itself is never restarted: it keeps nothing on disk, so a
//! restart is data loss, which cluster_store_loss.rs covers (FLUSHALL then
//! `coordinator resume`).
//!
//! Each round ends with the checker (docs/operations.md, "Reliability
//! semantics": expected = done for every stage, lost = 0, unexpected = 0, no
//! failure, an empty dead-letter queue) and every file of the report
//! byte-identical to an undisturbed local run.

mod support;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::proxy::FaultProxy;
use support::*;

const BROKER: &str = "127.0.0.1:5672";
/// Heartbeat of the soak's processes: a partitioned worker is dropped by the broker within about twice this.
const HEARTBEAT_S: u64 = 2;
/// A round that takes longer than this fails the soak.
const ROUND_LIMIT: Duration = Duration::from_secs(600);
/// At least this long between two broker restarts (each takes seconds and disturbs every process).
const BROKER_RESTART_GAP: Duration = Duration::from_secs(40);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{key}={v} does not parse")),
        Err(_) => default,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillWorker,
    RestartBroker,
    CutWorkerBroker,
    CutWorkerRedis,
    PartitionWorker,
    SlowWorkerRedis,
    CutCoordinatorRedis,
}

impl Fault {
    /// Draws a fault; weights in parts of 100.
    fn draw(rng: &mut ChaCha8Rng) -> Fault {
        match rng.random_range(0..100) {
            0..25 => Fault::KillWorker,
            25..33 => Fault::RestartBroker,
            33..48 => Fault::CutWorkerBroker,
            48..63 => Fault::CutWorkerRedis,
            63..80 => Fault::PartitionWorker,
            80..92 => Fault::SlowWorkerRedis,
            _ => Fault::CutCoordinatorRedis,
        }
    }
}

/// A child process killed with -9 when dropped (also when the soak fails).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            kill9(&mut self.0);
        }
    }
}

/// A Redis of the soak's own on a free loopback port, nothing on disk: other
/// tests on this machine FLUSHALL the shared one (cluster_store_loss.rs).
fn private_redis() -> (Guard, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let guard = Guard(child);
    for _ in 0..100 {
        let pong = Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output().unwrap();
        if String::from_utf8_lossy(&pong.stdout).trim() == "PONG" {
            return (guard, port);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the soak's redis-server on port {port} did not start");
}

/// One worker process and its two proxies.
struct Slot {
    label: String,
    broker: FaultProxy,
    redis: FaultProxy,
    child: Guard,
    starts: u32,
}

impl Slot {
    fn spawn(c: &Cluster, i: usize, broker: FaultProxy, redis: FaultProxy, starts: u32) -> Slot {
        let label = format!("w{i}-{starts}");
        let child = c.spawn_worker_env(
            &label,
            &[
                ("MLL__BROKER__URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port())),
                ("MLL__STORE__URL", format!("redis://127.0.0.1:{}/", redis.port())),
            ],
        );
        Slot { label, broker, redis, child: Guard(child), starts }
    }
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl on PATH");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every file of a report folder, by name (not local mode's own store journal).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        // The report files only: not the local run's state or its log.
        if e.path().is_file() && e.file_name() != "state.journal" && e.file_name() != "run.log" {
            out.insert(e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Occurrences of `needle` in every log of a cluster.
fn in_logs(c: &Cluster, needle: &str) -> usize {
    std::fs::read_dir(c.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().matches(needle).count())
        .sum()
}

#[derive(Default)]
struct Tally {
    faults: BTreeMap<Fault, u32>,
    rounds: u32,
    jobs: u64,
    duplicate_executions: u64,
    late_commits: usize,
    broker_reconnects: usize,
    lost_acks: usize,
    store_retries: usize,
}

struct Soak {
    rng: ChaCha8Rng,
    deadline: Instant,
    spec: PathBuf,
    reference: BTreeMap<String, Vec<u8>>,
    workers: usize,
    last_broker_restart: Option<Instant>,
    tally: Tally,
    /// The soak's own Redis (see [`private_redis`]).
    redis: String,
    redis_port: u16,
}

impl Soak {
    fn round(&mut self, n: u32) {
        let started = Instant::now();
        let mut c = Cluster::new(&format!("soak{n}"));
        c.env.insert("MLL__DATA__ROOT".into(), repo().join("out/toy-world").display().to_string());
        c.env.insert("MLL__BROKER__HEARTBEAT_S".into(), HEARTBEAT_S.to_string());
        c.use_redis(self.redis_port);
        let redis = self.redis.clone();
        let mut slots: Vec<Slot> =
            (0..self.workers).map(|i| Slot::spawn(&c, i, FaultProxy::start(BROKER), FaultProxy::start(&redis), 0)).collect();
        let coord_redis = FaultProxy::start(&redis);
        let out = c.path("out");
        let mut coord = Guard(c.spawn_coordinator_env(
            &["submit", "--benchmark", self.spec.to_str().unwrap(), "--wait", "--out", out.to_str().unwrap()],
            "coord",
            &[("MLL__STORE__URL", format!("redis://127.0.0.1:{}/", coord_redis.port()))],
        ));
        // Faults start once the run is published and under way.
        while c.redis_set("toy", "done:label").is_empty() && c.redis_set("toy", "done:evaluate").is_empty() {
            assert!(started.elapsed() < ROUND_LIMIT, "round {n}: no result at all\n{}", c.logs());
            assert!(coord.0.try_wait().unwrap().is_none(), "round {n}: the coordinator ended early\n{}", c.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
        let code = loop {
            if let Some(st) = coord.0.try_wait().unwrap() {
                break st.code();
            }
            assert!(started.elapsed() < ROUND_LIMIT, "round {n} did not finish in {ROUND_LIMIT:?}\n{}", c.logs());
            if Instant::now() >= self.deadline {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            std::thread::sleep(Duration::from_millis(self.rng.random_range(1000..4000)));
            if coord.0.try_wait().unwrap().is_some() || Instant::now() >= self.deadline {
                continue;
            }
            self.inject(&c, &mut slots, &coord_redis, n);
        };
        let secs = started.elapsed().as_secs_f64();
        drop(slots);
        assert_eq!(code, Some(0), "round {n}: coordinator --wait failed\n{}", c.logs());
        let jobs = self.check(&c, &out, n);
        let dups = c.status("toy")["duplicate_executions"].as_u64().unwrap();
        let t = &mut self.tally;
        t.rounds += 1;
        t.jobs += jobs;
        t.duplicate_executions += dups;
        t.late_commits += in_logs(&c, "the first result stands");
        t.broker_reconnects += in_logs(&c, "reconnected to the broker");
        t.lost_acks += in_logs(&c, "will be redelivered");
        t.store_retries += in_logs(&c, "Redis command failed; retrying");
        eprintln!("[soak] round {n}: {jobs} jobs, {dups} duplicate executions, {secs:.0} s, report identical");
    }

    /// Draws and applies one fault (a timed one blocks for its duration).
    fn inject(&mut self, c: &Cluster, slots: &mut [Slot], coord_redis: &FaultProxy, n: u32) {
        let mut fault = Fault::draw(&mut self.rng);
        if fault == Fault::RestartBroker && self.last_broker_restart.is_some_and(|t| t.elapsed() < BROKER_RESTART_GAP) {
            fault = Fault::KillWorker;
        }
        let i = self.rng.random_range(0..slots.len());
        let target = match fault {
            Fault::RestartBroker | Fault::CutCoordinatorRedis => String::new(),
            _ => format!(" {}", slots[i].label),
        };
        let ms = |rng: &mut ChaCha8Rng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..hi));
        let hold = |d: Duration| std::thread::sleep(d);
        match fault {
            Fault::KillWorker => {
                let s = &mut slots[i];
                kill9(&mut s.child.0);
                hold(ms(&mut self.rng, 0, 1500));
                let (broker, redis) = (FaultProxy::start(BROKER), FaultProxy::start(&self.redis));
                let starts = s.starts + 1;
                let old = std::mem::replace(s, Slot::spawn(c, i, broker, redis, starts));
                drop(old);
            }
            Fault::RestartBroker => {
                rabbitmqctl(&["stop_app"]);
                hold(ms(&mut self.rng, 500, 3000));
                rabbitmqctl(&["start_app"]);
                rabbitmqctl(&["await_startup"]);
                self.last_broker_restart = Some(Instant::now());
            }
            Fault::CutWorkerBroker => {
                slots[i].broker.cut();
                hold(ms(&mut self.rng, 500, 5000));
                slots[i].broker.pass();
            }
            Fault::CutWorkerRedis => {
                slots[i].redis.cut();
                hold(ms(&mut self.rng, 500, 5000));
                slots[i].redis.pass();
            }
            Fault::PartitionWorker => {
                slots[i].broker.stall();
                slots[i].redis.stall();
                // Past two heartbeats: the broker gives the worker up and redelivers its job.
                hold(ms(&mut self.rng, 2500 * HEARTBEAT_S, 4000 * HEARTBEAT_S));
                slots[i].broker.pass();
                slots[i].redis.pass();
            }
            Fault::SlowWorkerRedis => {
                slots[i].redis.slow(ms(&mut self.rng, 100, 1500));
                hold(ms(&mut self.rng, 2000, 8000));
                slots[i].redis.pass();
            }
            Fault::CutCoordinatorRedis => {
                coord_redis.cut();
                hold(ms(&mut self.rng, 500, 4000));
                coord_redis.pass();
            }
        }
        eprintln!("[soak] round {n}: {fault:?}{target}");
        *self.tally.faults.entry(fault).or_default() += 1;
    }

    /// The checker; returns how many jobs the run had.
    fn check(&self, c: &Cluster, out: &Path, n: u32) -> u64 {
        let st = c.status("toy");
        assert_eq!(st["state"], "done", "round {n}: {st}");
        assert!(st["failures"].as_array().unwrap().is_empty(), "round {n}: failures {st}");
        let mut jobs = 0;
        for (stage, p) in st["stages"].as_object().unwrap() {
            let expected = c.redis_set("toy", &format!("expected:{stage}"));
            let done = c.redis_set("toy", &format!("done:{stage}"));
            let lost: Vec<_> = expected.difference(&done).collect();
            let unexpected: Vec<_> = done.difference(&expected).collect();
            assert!(lost.is_empty(), "round {n}: lost {stage} jobs {lost:?}\n{}", c.logs());
            assert!(unexpected.is_empty(), "round {n}: unexpected {stage} results {unexpected:?}");
            assert_eq!(p["expected"].as_u64(), Some(expected.len() as u64), "round {n}: {st}");
            assert_eq!(p["failed"].as_u64(), Some(0), "round {n}: {st}");
            jobs += expected.len() as u64;
        }
        assert_eq!(c.queue_messages("dead"), 0, "round {n}: messages in the dead-letter queue");
        let got = files(out);
        assert_eq!(got.keys().collect::<Vec<_>>(), self.reference.keys().collect::<Vec<_>>(), "round {n}: report files");
        for (name, bytes) in &self.reference {
            assert!(&got[name] == bytes, "round {n}: {name} differs from the undisturbed run's");
        }
        jobs
    }
}

#[test]
#[ignore = "minutes long and restarts the shared RabbitMQ: run by scripts/soak"]
fn soak_toy_spec_under_seeded_faults() {
    let seed: u64 = env_or("SOAK_SEED", 1);
    let minutes: f64 = env_or("SOAK_MINUTES", 3.0);
    let workers: usize = env_or("SOAK_WORKERS", 3);
    let start = Instant::now();
    let spec = repo().join("configs/benchmarks/toy.toml");

    // The undisturbed run (it also generates the toy world when missing).
    let base = Cluster::new("soakref");
    let reference_out = base.path("undisturbed");
    base.coordinator_ok(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", reference_out.to_str().unwrap()]);
    let reference = files(&reference_out);
    assert!(reference.contains_key("report.json"), "the undisturbed run wrote no report.json");
    eprintln!(
        "[soak] seed {seed}, {minutes} min of faults, {workers} workers; undisturbed run {:.0} s ({} report files)",
        start.elapsed().as_secs_f64(),
        reference.len()
    );

    let (_redis, redis_port) = private_redis();
    let mut soak = Soak {
        rng: ChaCha8Rng::seed_from_u64(seed),
        deadline: Instant::now() + Duration::from_secs_f64(minutes * 60.0),
        spec,
        reference,
        workers,
        last_broker_restart: None,
        tally: Tally::default(),
        redis: format!("127.0.0.1:{redis_port}"),
        redis_port,
    };
    let mut n = 0;
    while Instant::now() < soak.deadline {
        n += 1;
        soak.round(n);
    }
    let t = &soak.tally;
    let faults: Vec<String> = t.faults.iter().map(|(f, k)| format!("{f:?} {k}")).collect();
    let total: u32 = t.faults.values().sum();
    eprintln!(
        "[soak] PASS seed {seed}: {} rounds, {} jobs, lost 0, unexpected 0, reports identical, {:.0} s\n\
         [soak] faults {total}: {}\n\
         [soak] observed: {} duplicate executions, {} late commits refused, {} broker reconnects, {} acks lost, {} Redis retries",
        t.rounds,
        t.jobs,
        start.elapsed().as_secs_f64(),
        faults.join(", "),
        t.duplicate_executions,
        t.late_commits,
        t.broker_reconnects,
        t.lost_acks,
        t.store_retries
    );
    assert!(total > 0, "no fault was injected: raise --minutes");
}
