//! Test harness for cluster-mode tests: real RabbitMQ and Redis on loopback,
//! real `worker` and `coordinator` processes. Every test gets its own queues,
//! key prefix and folders, so tests do not see each other's jobs.
#![allow(dead_code)]

pub mod proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn coordinator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coordinator"))
}

/// The worker binary sits beside the coordinator's in the target dir; build it
/// when `cargo test -p mll-coordinator` ran alone.
pub fn worker_bin() -> PathBuf {
    let bin = coordinator_bin().with_file_name("worker");
    if !bin.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "mll-worker", "--bin", "worker"])
            .status()
            .expect("run cargo build for the worker");
        assert!(st.success(), "building the worker binary failed");
    }
    bin
}

pub struct Cluster {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
    /// The Redis the processes and `redis()` use (6379 unless [`Cluster::use_redis`]).
    pub redis_port: u16,
}

impl Cluster {
    pub fn new(test: &str) -> Cluster {
        let suffix: u32 = rand::random();
        let name = format!("t-{test}-{suffix:08x}");
        let dir = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), v);
        };
        for (k, v) in mll_common::config::isolated_env(&name) {
            set(k, v);
        }
        set("MLL__ARTIFACTS__ROOT", dir.path().join("artifacts").display().to_string());
        set("MLL__DATA__ROOT", dir.path().display().to_string());
        set("MLL__WORKER__METRICS_ADDR", "127.0.0.1:0".into());
        set("MLL__WORKER__RETRY_BACKOFF_MS", "50".into());
        set("MLL__COORDINATOR__METRICS_ADDR", "127.0.0.1:0".into());
        set("MLL__COORDINATOR__POLL_INTERVAL_MS", "100".into());
        set("MLL__LOG__FORMAT", "text".into());
        set("MLL__LOG__LEVEL", "info".into());
        Cluster { name, dir, env, redis_port: 6379 }
    }

    /// Points every process of this cluster, and `redis()`, at the Redis on `port` (127.0.0.1).
    pub fn use_redis(&mut self, port: u16) {
        self.redis_port = port;
        self.env.insert("MLL__STORE__URL".into(), format!("redis://127.0.0.1:{port}/"));
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write_spec(&self, file: &str, toml: &str) -> PathBuf {
        let p = self.path(file);
        std::fs::write(&p, toml).unwrap();
        p
    }

    fn command(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        c.envs(&self.env).env_remove("MLL_CONFIG").current_dir(self.dir.path());
        c
    }

    pub fn spawn_worker(&self, label: &str) -> Child {
        self.spawn_worker_env(label, &[])
    }

    /// A worker with extra environment (e.g. broker or store URLs through a fault proxy).
    pub fn spawn_worker_env(&self, label: &str, env: &[(&str, String)]) -> Child {
        let log = std::fs::File::create(self.path(&format!("worker-{label}.log"))).unwrap();
        self.command(&worker_bin())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start worker")
    }

    pub fn coordinator(&self, args: &[&str]) -> Output {
        self.command(&coordinator_bin()).args(args).output().expect("run coordinator")
    }

    /// Runs the coordinator and fails the test with its stderr on a non-zero exit.
    pub fn coordinator_ok(&self, args: &[&str]) -> String {
        let out = self.coordinator(args);
        assert!(out.status.success(), "coordinator {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn spawn_coordinator(&self, args: &[&str], label: &str) -> Child {
        self.spawn_coordinator_env(args, label, &[])
    }

    /// A coordinator with extra environment (e.g. a store URL through a fault proxy).
    pub fn spawn_coordinator_env(&self, args: &[&str], label: &str, env: &[(&str, String)]) -> Child {
        let log = std::fs::File::create(self.path(&format!("coordinator-{label}.log"))).unwrap();
        self.command(&coordinator_bin())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn status(&self, run: &str) -> serde_json::Value {
        serde_json::from_str(&self.coordinator_ok(&["status", run, "--json"])).expect("status --json is JSON")
    }

    /// Polls `status` until `pred` holds; panics with the last status after `timeout`.
    pub fn wait_status(&self, run: &str, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let out = self.coordinator(&["status", run, "--json"]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if pred(&v) {
                    return v;
                }
                if start.elapsed() > timeout {
                    panic!("timed out waiting; last status: {v}\n{}", self.logs());
                }
            } else if start.elapsed() > timeout {
                panic!("timed out; status fails: {}\n{}", String::from_utf8_lossy(&out.stderr), self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn done_count(status: &serde_json::Value, stage: &str) -> u64 {
        status["stages"][stage]["done"].as_u64().unwrap_or(0)
    }

    /// Waits until the log `file` in the cluster's folder (a worker's is
    /// `worker-<label>.log`) holds `needle`; false after `timeout`.
    pub fn wait_log(&self, file: &str, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::fs::read_to_string(self.path(file)).is_ok_and(|t| t.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Every log file of this cluster, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: String = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                s.push_str(&format!("--- {} (tail)\n{tail}\n", p.display()));
            }
        }
        s
    }

    pub fn redis(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &self.redis_port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Members of one of this run's Redis sets (`done:<stage>`, `expected:<stage>`).
    pub fn redis_set(&self, run: &str, key: &str) -> std::collections::BTreeSet<String> {
        self.redis(&["SMEMBERS", &format!("{}:{{{run}}}:{key}", self.name)])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
}

impl Cluster {
    /// Messages in one of this cluster's queues (`jobs`, `dead`) as rabbitmqctl
    /// lists them; a missing rabbitmqctl or queue fails the test.
    pub fn queue_messages(&self, queue: &str) -> u64 {
        let name = format!("{}.{queue}", self.name);
        let out = Command::new("rabbitmqctl")
            .args(["-q", "list_queues", "name", "messages"])
            .output()
            .expect("rabbitmqctl runs (RabbitMQ is on this machine)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next()? == name).then(|| it.next()?.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("queue {name} is not listed by rabbitmqctl: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The work and dead-letter queues, and the lanes of every model the
        // test published to (`<name>.jobs.lane.<hash>`).
        let mut queues: Vec<String> = ["jobs", "dead"].iter().map(|q| format!("{}.{q}", self.name)).collect();
        if let Ok(out) = Command::new("rabbitmqctl").args(["-q", "list_queues", "name"]).output() {
            let lanes = format!("{}.jobs.lane.", self.name);
            queues.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| l.starts_with(&lanes)).map(String::from));
        }
        for q in queues {
            let _ = Command::new("rabbitmqctl").args(["-q", "delete_queue", &q]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let keys = self.redis(&["--scan", "--pattern", &format!("{}:*", self.name)]);
        for k in keys.lines().filter(|l| !l.is_empty()) {
            self.redis(&["DEL", k]);
        }
    }
}

pub fn kill9(child: &mut Child) {
    let _ = Command::new("kill").args(["-9", &child.id().to_string()]).status();
    let _ = child.wait();
}

pub fn sigterm(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

pub fn diagnostic_spec(name: &str, jobs: u32, work_ms: u64, poison: &[u32]) -> String {
    format!("name = \"{name}\"\n[diagnostic]\njobs = {jobs}\nwork_ms = {work_ms}\npoison = {poison:?}\n")
}
