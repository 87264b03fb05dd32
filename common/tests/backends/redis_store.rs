//! Redis result store against the real server (127.0.0.1:6379, or MLL__STORE__URL).
//! Every test uses its own run name and deletes its keys at the end.

use mll_common::config::{Settings, StoreSettings};
use mll_common::store::redis::RedisStore;
use mll_common::store::{CommitOutcome, Committer, JobCheck, Ledger, RunMeta, RunState, StageProgress};
use mll_common::{JobId, RunId, Stage};

fn settings() -> StoreSettings {
    Settings::load(None).expect("config loads").store
}

fn run(test: &str) -> RunId {
    let suffix: u64 = rand::random();
    RunId::new(&format!("test-{test}-{suffix:x}")).unwrap()
}

fn job(run: &RunId, i: usize) -> JobId {
    JobId::derive(run, &["diagnostic", &i.to_string()])
}

async fn raw_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(settings().url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn commit_is_idempotent_and_clears_failures() {
    let store = RedisStore::connect(&settings()).await.unwrap();
    let r = run("commit");
    let (a, b) = (job(&r, 1), job(&r, 2));
    store.expect(&r, Stage::Evaluate, &[a.clone(), b.clone()]).await.unwrap();
    store.expect(&r, Stage::Evaluate, std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(store.expected(&r, Stage::Evaluate).await.unwrap().len(), 2, "expect is idempotent");

    store.record_failure(&r, Stage::Evaluate, &a, "worker crashed").await.unwrap();
    assert_eq!(store.progress(&r, Stage::Evaluate).await.unwrap(), StageProgress { expected: 2, done: 0, failed: 1 });
    assert_eq!(store.failures(&r, Stage::Evaluate).await.unwrap()[&a], "worker crashed");

    assert_eq!(store.commit(&r, Stage::Evaluate, &a, b"first").await.unwrap(), CommitOutcome::Committed);
    assert_eq!(store.commit(&r, Stage::Evaluate, &a, b"second").await.unwrap(), CommitOutcome::Duplicate);
    assert_eq!(store.result(&r, &a).await.unwrap().as_deref(), Some(&b"first"[..]), "the first result stays");
    assert!(store.failures(&r, Stage::Evaluate).await.unwrap().is_empty(), "commit clears the failure");
    assert!(store.is_done(&r, Stage::Evaluate, &a).await.unwrap());
    assert!(!store.is_done(&r, Stage::Evaluate, &b).await.unwrap());
    assert!(!store.is_done(&r, Stage::Embed, &a).await.unwrap(), "done sets are per stage");

    // A late dead-letter of a finished job does not shadow its result.
    store.record_failure(&r, Stage::Evaluate, &a, "late").await.unwrap();
    assert!(store.failures(&r, Stage::Evaluate).await.unwrap().is_empty());
    store.record_failure(&r, Stage::Evaluate, &b, "poison").await.unwrap();
    let p = store.progress(&r, Stage::Evaluate).await.unwrap();
    assert_eq!(p, StageProgress { expected: 2, done: 1, failed: 1 });
    assert!(p.finished());
    store.clear_failures(&r, Stage::Evaluate).await.unwrap();
    assert_eq!(store.progress(&r, Stage::Evaluate).await.unwrap().failed, 0);
    assert_eq!(store.done(&r, Stage::Evaluate).await.unwrap(), vec![a.clone()]);
    assert_eq!(store.result(&r, &b).await.unwrap(), None);

    // Binary results round-trip byte for byte.
    let bytes: Vec<u8> = (0..=255u8).collect();
    assert_eq!(store.commit(&r, Stage::Evaluate, &b, &bytes).await.unwrap(), CommitOutcome::Committed);
    assert_eq!(store.result(&r, &b).await.unwrap().unwrap(), bytes);
    store.delete_run(&r).await.unwrap();
}

#[tokio::test]
async fn concurrent_commits_of_one_job_commit_once() {
    let store = RedisStore::connect(&settings()).await.unwrap();
    let r = run("race");
    let j = job(&r, 1);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, r, j) = (store.clone(), r.clone(), j.clone());
            tokio::spawn(async move { store.commit(&r, Stage::Label, &j, format!("r{i}").as_bytes()).await.unwrap() })
        })
        .collect();
    let mut committed = 0;
    for t in tasks {
        if t.await.unwrap() == CommitOutcome::Committed {
            committed += 1;
        }
    }
    assert_eq!(committed, 1);
    store.delete_run(&r).await.unwrap();
}

#[tokio::test]
async fn meta_state_and_executions() {
    let store = RedisStore::connect(&settings()).await.unwrap();
    let r = run("meta");
    assert_eq!(store.meta(&r).await.unwrap(), None);
    let meta = RunMeta { state: RunState::Running, spec_digest: "abc123".into() };
    store.put_meta(&r, &meta).await.unwrap();
    assert_eq!(store.meta(&r).await.unwrap(), Some(meta));
    store.set_state(&r, RunState::Cancelled).await.unwrap();
    assert_eq!(store.meta(&r).await.unwrap().unwrap().state, RunState::Cancelled);

    let (a, b) = (job(&r, 1), job(&r, 2));
    assert_eq!(store.count_execution(&r, &a).await.unwrap(), 1);
    assert_eq!(store.count_execution(&r, &a).await.unwrap(), 2);
    assert_eq!(store.count_execution(&r, &b).await.unwrap(), 1);
    let ex = store.executions(&r).await.unwrap();
    assert_eq!((ex[&a], ex[&b]), (2, 1));
    // Summed in Redis: a ran twice, b once; then a third time.
    assert_eq!(store.duplicate_executions(&r).await.unwrap(), 1);
    store.count_execution(&r, &a).await.unwrap();
    assert_eq!(store.duplicate_executions(&r).await.unwrap(), 2);
    assert_eq!(store.duplicate_executions(&run("meta-none")).await.unwrap(), 0);
    store.delete_run(&r).await.unwrap();

    // A run counted by an older release (execution hash, no counter): read
    // as the sum, and the counter starts from that sum at the next count.
    let old = run("meta-old");
    let mut c = raw_conn().await;
    let exec = store.run_keys(&old).into_iter().find(|k| k.ends_with(":exec")).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&exec)
        .arg(job(&old, 1).as_str())
        .arg(3)
        .arg(job(&old, 2).as_str())
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(store.duplicate_executions(&old).await.unwrap(), 2);
    assert_eq!(store.count_execution(&old, &job(&old, 2)).await.unwrap(), 2);
    assert_eq!(store.duplicate_executions(&old).await.unwrap(), 3);
    store.delete_run(&old).await.unwrap();
}

#[tokio::test]
async fn keys_of_a_run_share_its_hash_tag() {
    let s = settings();
    let store = RedisStore::connect(&s).await.unwrap();
    let r = run("tags");
    let j = job(&r, 1);
    store.put_meta(&r, &RunMeta { state: RunState::Running, spec_digest: "d".into() }).await.unwrap();
    store.expect(&r, Stage::Embed, std::slice::from_ref(&j)).await.unwrap();
    store.record_failure(&r, Stage::Embed, &job(&r, 2), "x").await.unwrap();
    store.commit(&r, Stage::Embed, &j, b"x").await.unwrap();
    store.count_execution(&r, &j).await.unwrap();

    let mut conn = raw_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}:{{{}}}:*", s.key_prefix, r)).query_async(&mut conn).await.unwrap();
    let tag = format!("{{{r}}}");
    let mut kinds: Vec<&str> = keys
        .iter()
        .map(|k| {
            assert_eq!(k.matches('{').count(), 1, "one hash tag in {k}");
            assert!(k.starts_with(&format!("{}:{tag}:", s.key_prefix)), "{k}");
            k.rsplit_once(&tag).unwrap().1.split(':').nth(1).unwrap()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["done", "dups", "exec", "expected", "failed", "meta", "result"]);
    // All on one cluster slot.
    let slots: std::collections::BTreeSet<u16> = keys.iter().map(|k| key_slot(k)).collect();
    assert_eq!(slots.len(), 1);
    store.delete_run(&r).await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS").arg(format!("{}:{{{}}}:*", s.key_prefix, r)).query_async(&mut conn).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn survives_a_killed_connection() {
    let mut conn = raw_conn().await;
    let before = client_ids(&mut conn).await;
    let store = RedisStore::connect(&settings()).await.unwrap();
    // The store's connection is the one that appeared since (a concurrent test's
    // connection caught here is harmless: it retries the same way).
    let theirs: Vec<i64> = client_ids(&mut conn).await.into_iter().filter(|id| !before.contains(id)).collect();
    assert!(!theirs.is_empty(), "the store's connection is visible in CLIENT LIST");
    let r = run("reconnect");
    let j = job(&r, 1);
    store.expect(&r, Stage::Label, std::slice::from_ref(&j)).await.unwrap();
    let reconnects = mll_common::telemetry::metrics().reconnects.with_label_values(&["store"]).get();
    for id in theirs {
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(&mut conn).await;
    }
    assert_eq!(store.commit(&r, Stage::Label, &j, b"ok").await.unwrap(), CommitOutcome::Committed);
    assert_eq!(store.progress(&r, Stage::Label).await.unwrap().done, 1);
    assert!(mll_common::telemetry::metrics().reconnects.with_label_values(&["store"]).get() > reconnects);
    store.delete_run(&r).await.unwrap();
}

async fn client_ids(conn: &mut redis::aio::MultiplexedConnection) -> Vec<i64> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await.unwrap();
    list.lines().filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id="))?.parse().ok()).collect()
}

/// Redis Cluster's key slot (CRC16/XMODEM of the hash tag, mod 16384).
fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for &b in hashed {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

/// rediss:// goes through rustls: against the plain-text server the handshake
/// fails with an error, proving the TLS backend and its crypto provider exist.
#[tokio::test]
async fn rediss_urls_use_tls() {
    let mut s = settings();
    s.url = s.url.replacen("redis://", "rediss://", 1);
    s.retries = 0;
    s.response_timeout_ms = 2000;
    let err = RedisStore::connect(&s).await.err().expect("a TLS handshake with a plain-text port fails");
    let text = err.to_string();
    assert!(text.contains("rediss://"), "{text}");
    assert!(!text.to_lowercase().contains("feature"), "TLS support is compiled in: {text}");
    eprintln!("{text}");
}

/// A result value damaged in Redis (bytes 12..20 overwritten) is reported as
/// corrupt with its job, never returned; `discard` makes the job missing again.
#[tokio::test]
async fn a_damaged_result_value_is_refused_and_can_be_discarded() {
    let mut s = settings();
    s.key_prefix = format!("t-seal-{:x}", rand::random::<u64>());
    let store = RedisStore::connect(&s).await.unwrap();
    let r = run("seal");
    let a = job(&r, 1);
    store.put_meta(&r, &RunMeta { state: RunState::Running, spec_digest: "d".into() }).await.unwrap();
    store.expect(&r, Stage::Evaluate, std::slice::from_ref(&a)).await.unwrap();
    store.commit(&r, Stage::Evaluate, &a, b"per-class counts: 1 2 3 4 5 6").await.unwrap();
    assert_eq!(store.result(&r, &a).await.unwrap().as_deref(), Some(&b"per-class counts: 1 2 3 4 5 6"[..]));

    let key = format!("{}:{{{}}}:result:{a}", s.key_prefix, r.as_str());
    let mut c = raw_conn().await;
    let _: () = redis::cmd("SETRANGE").arg(&key).arg(12).arg(&[0xFFu8; 8][..]).query_async(&mut c).await.unwrap();
    let err = store.result(&r, &a).await.expect_err("a damaged value is not returned");
    let text = err.to_string();
    assert!(matches!(err, mll_common::store::StoreError::Corrupt { .. }), "{text}");
    assert!(text.contains(a.as_str()), "the error names the job: {text}");
    // Read in a batch (one MGET), the damaged one is refused on its own, in its place.
    let (b, missing) = (job(&r, 2), job(&r, 3));
    store.commit(&r, Stage::Evaluate, &b, b"counts of b").await.unwrap();
    let batch = store.results(&r, &[b.clone(), a.clone(), missing.clone(), b.clone()]).await.unwrap();
    assert_eq!(batch.len(), 4);
    assert_eq!(batch[0].as_ref().unwrap().as_deref(), Some(&b"counts of b"[..]));
    let err = batch[1].as_ref().expect_err("the damaged value is refused in a batch too");
    assert!(matches!(err, mll_common::store::StoreError::Corrupt { .. }) && err.to_string().contains(a.as_str()), "{err}");
    assert_eq!(*batch[2].as_ref().unwrap(), None, "a job without a result");
    assert_eq!(batch[3].as_ref().unwrap().as_deref(), Some(&b"counts of b"[..]));
    assert!(store.results(&r, &[]).await.unwrap().is_empty());
    store.discard(&r, Stage::Evaluate, &b).await.unwrap();
    assert_eq!(store.runs().await.unwrap(), vec![r.clone()], "runs() lists this prefix's runs only");

    assert!(store.discard(&r, Stage::Evaluate, &a).await.unwrap(), "it was done");
    assert!(!store.is_done(&r, Stage::Evaluate, &a).await.unwrap());
    assert_eq!(store.result(&r, &a).await.unwrap(), None);
    assert!(!store.discard(&r, Stage::Evaluate, &a).await.unwrap(), "discard is idempotent");
    store.delete_run(&r).await.unwrap();
}

/// The worker's pre-execution read: the run's meta and the job's done-ness in
/// one round trip, the same answers as `meta` and `is_done` give apart.
#[tokio::test]
async fn check_job_answers_as_meta_and_is_done_do() {
    let store = RedisStore::connect(&settings()).await.unwrap();
    let r = run("check");
    let (a, b) = (job(&r, 1), job(&r, 2));
    // An unknown run: no meta (not a cancel), nothing done.
    let c = store.check_job(&r, Stage::Evaluate, &a).await.unwrap();
    assert_eq!(c, JobCheck { meta: None, done: false });
    assert!(!c.cancelled());
    store.put_meta(&r, &RunMeta { state: RunState::Running, spec_digest: "d".into() }).await.unwrap();
    store.commit(&r, Stage::Evaluate, &a, b"1").await.unwrap();
    for (stage, j) in [(Stage::Evaluate, &a), (Stage::Evaluate, &b), (Stage::Embed, &a)] {
        let c = store.check_job(&r, stage, j).await.unwrap();
        assert_eq!(c.meta, store.meta(&r).await.unwrap());
        assert_eq!(c.done, store.is_done(&r, stage, j).await.unwrap(), "{stage} {j}");
    }
    assert!(store.check_job(&r, Stage::Evaluate, &a).await.unwrap().done);
    assert!(!store.check_job(&r, Stage::Embed, &a).await.unwrap().done, "done sets are per stage");
    store.set_state(&r, RunState::Cancelled).await.unwrap();
    assert!(store.check_job(&r, Stage::Evaluate, &b).await.unwrap().cancelled());
    // A damaged meta is reported, as `meta` reports it.
    let mut conn = raw_conn().await;
    let key = format!("{}:{{{}}}:meta", settings().key_prefix, r.as_str());
    let _: () = redis::cmd("HSET").arg(&key).arg("state").arg("paused").query_async(&mut conn).await.unwrap();
    assert!(matches!(store.check_job(&r, Stage::Evaluate, &b).await, Err(mll_common::store::StoreError::Corrupt { .. })));
    store.delete_run(&r).await.unwrap();
}

/// A result is sealed for its run and job: the valid result of another job
/// copied (or renamed) under a job's key is refused as corrupt, naming the
/// job, alone and in a batch (issue 27, item 3).
#[tokio::test]
async fn a_result_copied_under_another_jobs_key_is_refused() {
    let mut s = settings();
    s.key_prefix = format!("t-bind-{:x}", rand::random::<u64>());
    let store = RedisStore::connect(&s).await.unwrap();
    let r = run("bind");
    let (a, b) = (job(&r, 1), job(&r, 2));
    store.put_meta(&r, &RunMeta { state: RunState::Running, spec_digest: "d".into() }).await.unwrap();
    store.commit(&r, Stage::Evaluate, &a, b"top-1 of shard 0").await.unwrap();
    store.commit(&r, Stage::Evaluate, &b, b"top-1 of shard 1").await.unwrap();
    let key = |j: &JobId| format!("{}:{{{}}}:result:{j}", s.key_prefix, r.as_str());
    let mut c = raw_conn().await;
    let copied: i64 = redis::cmd("COPY").arg(key(&a)).arg(key(&b)).arg("REPLACE").query_async(&mut c).await.unwrap();
    assert_eq!(copied, 1);
    assert_eq!(store.result(&r, &a).await.unwrap().as_deref(), Some(&b"top-1 of shard 0"[..]), "the original is intact");
    let err = store.result(&r, &b).await.expect_err("another job's result is not returned as this job's");
    assert!(matches!(err, mll_common::store::StoreError::Corrupt { .. }) && err.to_string().contains(b.as_str()), "{err}");
    let batch = store.results(&r, &[a.clone(), b.clone()]).await.unwrap();
    assert!(batch[0].is_ok() && batch[1].is_err(), "{batch:?}");
    store.delete_run(&r).await.unwrap();
}

/// A refused login is `StoreError::Auth` (our connect loop does not retry it;
/// only the connection manager's own bounded reconnects run), which the exit
/// policy makes exit 2: a second Redis with a password (its own port, killed
/// at the end), asked with a wrong one; the default server asked with a
/// password it does not have.
#[tokio::test]
async fn a_refused_login_is_an_input_error_without_retries() {
    use mll_common::store::StoreError;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--requirepass", "right", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (Debian's redis-server) starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the second Redis did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let urls =
        [format!("redis://:wrong@127.0.0.1:{port}/"), format!("redis://:{}@{}", "nopass", settings().url.trim_start_matches("redis://"))];
    for url in urls {
        let s = StoreSettings { url, retries: 5, ..settings() };
        let started = std::time::Instant::now();
        let err = RedisStore::connect(&s).await.err().expect("a wrong password is refused");
        assert!(matches!(err, StoreError::Auth { .. }), "{err}");
        assert!(!err.to_string().contains("wrong@") && !err.to_string().contains("nopass"), "the password is in the error: {err}");
        assert!(err.to_string().contains("refused the login"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "a refused login was retried like an outage");
        assert_eq!(mll_common::exit::code(&anyhow::Error::new(err), |_| None), mll_common::exit::INPUT);
    }
    let _ = server.kill();
    let _ = server.wait();
}
