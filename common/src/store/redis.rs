//! Redis result store (redis-rs 1.x, one multiplexed `ConnectionManager`).
//!
//! Keys of a run share the hash tag `{<run>}` so a cluster keeps them on one
//! slot and the commit script may touch several of them:
//! - `<prefix>:{<run>}:meta`            hash: state, spec_digest
//! - `<prefix>:{<run>}:expected:<stage>` set of job ids
//! - `<prefix>:{<run>}:done:<stage>`     set of job ids
//! - `<prefix>:{<run>}:failed:<stage>`   hash job id → reason
//! - `<prefix>:{<run>}:result:<job>`     the caller's result bytes, sealed
//!   with a checksum bound to the run and job ([`super::seal::seal_result`])
//!   and checked when read back, so a result copied under another job's key
//!   reads as corrupt
//! - `<prefix>:{<run>}:exec`             hash job id → execution count
//! - `<prefix>:{<run>}:dups`             executions beyond each job's first,
//!   summed (kept with `exec`, so `status` reads one number)
//!
//! The ConnectionManager reconnects after a dropped connection but fails the
//! command that hit it, so every call here is retried with backoff; that is
//! safe because every write is idempotent (the commit is a Lua script that
//! checks the done set first). No WATCH: it would be shared by every user of
//! the multiplexed connection.

use super::seal;
use super::{CommitOutcome, Committer, Fetched, JobCheck, Ledger, RunMeta, RunState, StageProgress, StoreError};
use crate::config::{redact_url, StoreSettings};
use crate::ids::{JobId, RunId};
use crate::queue::Lane;
use crate::stage::Stage;
use crate::telemetry::metrics;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, RedisResult, RetryMethod, Script};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS[1] done set, KEYS[2] result, KEYS[3] failed hash; ARGV[1] job, ARGV[2] result.
/// 1 = committed now, 0 = was already done (nothing changed).
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
",
    )
});

/// KEYS[1] done set, KEYS[2] failed hash; ARGV[1] job, ARGV[2] reason.
/// A failure never shadows a committed result (a late dead-letter of a job
/// that a redelivery already finished).
/// Counts executions beyond a job's first (KEYS[2]) as they happen, so
/// `status` of a 10^5-job run reads one number instead of summing 10^5
/// counts (which blocked Redis for ~40 ms per poll). Counts one execution
/// of job ARGV[1] in the execution hash (KEYS[1]). The first count of a run
/// without the counter (a new run, or one counted by an older release) sums
/// the hash once.
static COUNT_EXECUTION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
        if redis.call('EXISTS', KEYS[2]) == 0 then
            local extra = 0
            for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
                local c = tonumber(v) or 0
                if c > 1 then extra = extra + c - 1 end
            end
            redis.call('SET', KEYS[2], extra)
        elseif n > 1 then
            redis.call('INCR', KEYS[2])
        end
        return n
        ",
    )
});

/// The duplicate executions of a run: its counter, or the sum over its
/// execution hash when no worker of this release has counted for it yet.
static DUPLICATES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local d = redis.call('GET', KEYS[2])
        if d then return tonumber(d) end
        local extra = 0
        for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
            local c = tonumber(v) or 0
            if c > 1 then extra = extra + c - 1 end
        end
        return extra
        ",
    )
});

static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
",
    )
});

/// KEYS[1] done set, KEYS[2] result; ARGV[1] job. 1 = it was done.
static DISCARD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[2])
return redis.call('SREM', KEYS[1], ARGV[1])
",
    )
});

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    retries: u32,
    url: String,
}

impl RedisStore {
    /// Connects (retrying `retries` times while Redis is not up yet).
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        let url = redact_url(&settings.url);
        let client =
            redis::Client::open(settings.url.as_str()).map_err(|e| StoreError::Connect { url: url.clone(), reason: e.to_string() })?;
        let response_timeout = Duration::from_millis(settings.response_timeout_ms.max(1));
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(response_timeout))
            .set_number_of_retries(settings.retries as usize)
            .set_max_delay(Duration::from_secs(2));
        let mut attempt = 0;
        let conn = loop {
            attempt += 1;
            match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                Ok(c) => break c,
                // A refused login stays refused: no retry, and an input error (exit 2).
                Err(e) if refused_login(&e) => {
                    return Err(StoreError::Auth { url, reason: e.to_string() });
                }
                Err(e) if attempt <= settings.retries && retryable(&e) => {
                    tracing::warn!(url = %url, attempt, error = %e, "Redis not reachable yet; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(StoreError::Connect { url, reason: e.to_string() }),
            }
        };
        Ok(RedisStore { conn, prefix: settings.key_prefix.clone(), retries: settings.retries, url })
    }

    /// The lanes published to, each with its model's artifact folder: one
    /// hash for every run under this prefix (runs of a model share its lane).
    fn lanes_key(&self) -> String {
        format!("{}:lanes", self.prefix)
    }

    fn key(&self, run: &RunId, rest: &str) -> String {
        format!("{}:{{{}}}:{rest}", self.prefix, run.as_str())
    }

    /// Every key name this store uses for a run (tests, clean-up).
    pub fn run_keys(&self, run: &RunId) -> Vec<String> {
        let mut keys = vec![self.key(run, "meta"), self.key(run, "exec"), self.key(run, "dups")];
        for st in Stage::ALL {
            for kind in ["expected", "done", "failed"] {
                keys.push(self.key(run, &format!("{kind}:{st}")));
            }
        }
        keys
    }

    /// Deletes everything stored for a run (results included).
    pub async fn delete_run(&self, run: &RunId) -> Result<(), StoreError> {
        let keys = self.scan(&format!("{}:{{{}}}:*", self.prefix, run.as_str())).await?;
        for chunk in keys.chunks(500) {
            self.retry("del", |mut c| async move { c.del::<_, ()>(chunk).await }).await?;
        }
        Ok(())
    }

    /// Every key matching a SCAN pattern.
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        self.retry("scan", |mut c| async move {
            let mut out = Vec::new();
            let mut iter: redis::AsyncIter<String> = c.scan_match(pattern).await?;
            while let Some(k) = iter.next_item().await {
                out.push(k?);
            }
            Ok(out)
        })
        .await
    }

    /// Runs `f` on a clone of the connection, retrying connection-level
    /// failures with backoff. `f` must be idempotent.
    async fn retry<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match f(self.conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt <= self.retries && retryable(&e) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                        // The manager reconnects in the background after these.
                        metrics().reconnects.with_label_values(&["store"]).inc();
                    }
                    tracing::warn!(op, attempt, url = %self.url, error = %e, "Redis command failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    return Err(StoreError::Operation {
                        op,
                        reason: format!("{e} (after {attempt} attempt(s) against {}; is Redis up?)", self.url),
                    })
                }
            }
        }
    }

    async fn job_set(&self, op: &'static str, key: String) -> Result<Vec<JobId>, StoreError> {
        let members: Vec<String> = self
            .retry(op, |mut c| {
                let key = key.clone();
                async move { c.smembers(key).await }
            })
            .await?;
        let mut ids = members
            .iter()
            .map(|m| JobId::parse(m).map_err(|reason| StoreError::Corrupt { key: key.clone(), reason }))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        Ok(ids)
    }

    async fn job_hash(&self, op: &'static str, key: String) -> Result<Vec<(JobId, String)>, StoreError> {
        let map: HashMap<String, String> = self
            .retry(op, |mut c| {
                let key = key.clone();
                async move { c.hgetall(key).await }
            })
            .await?;
        map.into_iter()
            .map(|(k, v)| JobId::parse(&k).map(|id| (id, v)).map_err(|reason| StoreError::Corrupt { key: key.clone(), reason }))
            .collect()
    }
}

/// Redis refused the credentials of store.url (a wrong password or user, or
/// a password sent to a server that has none).
fn refused_login(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        || e.to_string().contains("without any password configured")
}

fn retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.retry_method(), RetryMethod::Reconnect | RetryMethod::RetryImmediately | RetryMethod::WaitAndRetry)
}

/// Redis retries: 50 ms doubling, capped at 2 s, jittered (crate::backoff).
fn backoff(attempt: u32) -> Duration {
    crate::backoff::Backoff::new(Duration::from_millis(50), Duration::from_millis(2000)).delay(attempt)
}

/// A run's meta hash as read by HGETALL (empty: the run has no meta).
fn parse_meta(key: &str, map: &HashMap<String, String>) -> Result<Option<RunMeta>, StoreError> {
    if map.is_empty() {
        return Ok(None);
    }
    let state = map.get("state").ok_or_else(|| StoreError::Corrupt { key: key.to_string(), reason: "no 'state' field".into() })?;
    Ok(Some(RunMeta { state: parse_state(key, state)?, spec_digest: map.get("spec_digest").cloned().unwrap_or_default() }))
}

fn parse_state(key: &str, s: &str) -> Result<RunState, StoreError> {
    [RunState::Running, RunState::Done, RunState::Failed, RunState::Cancelled]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt { key: key.to_string(), reason: format!("unknown run state '{s}'") })
}

#[async_trait]
impl Committer for RedisStore {
    async fn meta(&self, run: &RunId) -> Result<Option<RunMeta>, StoreError> {
        let key = self.key(run, "meta");
        let map: HashMap<String, String> = self
            .retry("meta", |mut c| {
                let key = key.clone();
                async move { c.hgetall(key).await }
            })
            .await?;
        parse_meta(&key, &map)
    }

    async fn commit(&self, run: &RunId, stage: Stage, job: &JobId, result: &[u8]) -> Result<CommitOutcome, StoreError> {
        let keys =
            [self.key(run, &format!("done:{stage}")), self.key(run, &format!("result:{job}")), self.key(run, &format!("failed:{stage}"))];
        // A retry after a lost reply of a commit that did land reports
        // Duplicate; either way the result is stored exactly once.
        let sealed = seal::seal_result(run, job, result);
        let result = sealed.as_slice();
        let committed: i64 = self
            .retry("commit", |mut c| {
                let keys = keys.clone();
                async move { COMMIT.key(&keys[0]).key(&keys[1]).key(&keys[2]).arg(job.as_str()).arg(result).invoke_async(&mut c).await }
            })
            .await?;
        Ok(if committed == 1 { CommitOutcome::Committed } else { CommitOutcome::Duplicate })
    }

    async fn check_job(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<JobCheck, StoreError> {
        let keys = [self.key(run, "meta"), self.key(run, &format!("done:{stage}"))];
        // One pipeline, one round trip: both are reads, so a retry is safe.
        let (map, done): (HashMap<String, String>, bool) = self
            .retry("check_job", |mut c| {
                let keys = keys.clone();
                async move { redis::pipe().hgetall(&keys[0]).sismember(&keys[1], job.as_str()).query_async(&mut c).await }
            })
            .await?;
        Ok(JobCheck { meta: parse_meta(&keys[0], &map)?, done })
    }

    async fn record_failure(&self, run: &RunId, stage: Stage, job: &JobId, reason: &str) -> Result<(), StoreError> {
        let keys = [self.key(run, &format!("done:{stage}")), self.key(run, &format!("failed:{stage}"))];
        let _: i64 = self
            .retry("record_failure", |mut c| {
                let keys = keys.clone();
                async move { RECORD_FAILURE.key(&keys[0]).key(&keys[1]).arg(job.as_str()).arg(reason).invoke_async(&mut c).await }
            })
            .await?;
        Ok(())
    }

    async fn lanes(&self) -> Result<Vec<(Lane, String)>, StoreError> {
        let key = self.lanes_key();
        let entries: Vec<(String, String)> = self
            .retry("lanes", |mut c| {
                let key = key.clone();
                async move { c.hgetall(key).await }
            })
            .await?;
        let mut lanes: Vec<(Lane, String)> = entries.into_iter().filter_map(|(n, a)| Some((Lane::parse(&n)?, a))).collect();
        lanes.sort();
        Ok(lanes)
    }

    async fn count_execution(&self, run: &RunId, job: &JobId) -> Result<u64, StoreError> {
        let keys = [self.key(run, "exec"), self.key(run, "dups")];
        // Not idempotent: a retry after a lost reply counts one execution
        // twice. It only feeds the duplicate-execution statistic.
        self.retry("count_execution", |mut c| {
            let keys = keys.clone();
            async move { COUNT_EXECUTION.key(&keys[0]).key(&keys[1]).arg(job.as_str()).invoke_async(&mut c).await }
        })
        .await
    }
}

#[async_trait]
impl Ledger for RedisStore {
    async fn add_lanes(&self, lanes: &[(Lane, String)]) -> Result<(), StoreError> {
        if lanes.is_empty() {
            return Ok(());
        }
        let key = self.lanes_key();
        let fields: Vec<(String, String)> = lanes.iter().map(|(l, a)| (l.as_str().to_string(), a.clone())).collect();
        self.retry("add_lanes", |mut c| {
            let (key, fields) = (key.clone(), fields.clone());
            async move { c.hset_multiple::<_, _, _, ()>(key, &fields).await }
        })
        .await
    }
    async fn put_meta(&self, run: &RunId, meta: &RunMeta) -> Result<(), StoreError> {
        let key = self.key(run, "meta");
        let fields = [("state", meta.state.as_str().to_string()), ("spec_digest", meta.spec_digest.clone())];
        self.retry("put_meta", |mut c| {
            let (key, fields) = (key.clone(), fields.clone());
            async move { c.hset_multiple::<_, _, _, ()>(key, &fields).await }
        })
        .await
    }

    async fn set_state(&self, run: &RunId, state: RunState) -> Result<(), StoreError> {
        let key = self.key(run, "meta");
        self.retry("set_state", |mut c| {
            let key = key.clone();
            async move { c.hset::<_, _, _, ()>(key, "state", state.as_str()).await }
        })
        .await
    }

    async fn expect(&self, run: &RunId, stage: Stage, jobs: &[JobId]) -> Result<(), StoreError> {
        let key = self.key(run, &format!("expected:{stage}"));
        // Chunks keep each command small; SADD is idempotent, so a retried
        // chunk is harmless.
        for chunk in jobs.chunks(1000) {
            let ids: Vec<&str> = chunk.iter().map(JobId::as_str).collect();
            self.retry("expect", |mut c| {
                let (key, ids) = (key.clone(), ids.clone());
                async move { c.sadd::<_, _, ()>(key, ids).await }
            })
            .await?;
        }
        Ok(())
    }

    async fn expected(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError> {
        self.job_set("expected", self.key(run, &format!("expected:{stage}"))).await
    }

    async fn is_done(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        let key = self.key(run, &format!("done:{stage}"));
        self.retry("is_done", |mut c| {
            let key = key.clone();
            async move { c.sismember(key, job.as_str()).await }
        })
        .await
    }

    async fn done(&self, run: &RunId, stage: Stage) -> Result<Vec<JobId>, StoreError> {
        self.job_set("done", self.key(run, &format!("done:{stage}"))).await
    }

    async fn result(&self, run: &RunId, job: &JobId) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(run, &format!("result:{job}"));
        let sealed: Option<Vec<u8>> = self
            .retry("result", |mut c| {
                let key = key.clone();
                async move { c.get(key).await }
            })
            .await?;
        sealed
            .map(|v| {
                seal::open_result(run, job, &v)
                    .map(<[u8]>::to_vec)
                    .map_err(|e| StoreError::Corrupt { key: format!("{key} (the result of job {job})"), reason: e.to_string() })
            })
            .transpose()
    }

    async fn results(&self, run: &RunId, jobs: &[JobId]) -> Result<Vec<Fetched>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET: the keys share the run's hash tag, so a cluster serves it from one slot.
        let keys: Vec<String> = jobs.iter().map(|job| self.key(run, &format!("result:{job}"))).collect();
        let sealed: Vec<Option<Vec<u8>>> = self
            .retry("results", |mut c| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }
            })
            .await?;
        if sealed.len() != jobs.len() {
            return Err(StoreError::Operation {
                op: "results",
                reason: format!("MGET of {} keys answered {} values", jobs.len(), sealed.len()),
            });
        }
        Ok(sealed
            .into_iter()
            .zip(keys.iter().zip(jobs))
            .map(|(v, (key, job))| {
                v.map(|v| {
                    seal::open_result(run, job, &v)
                        .map(<[u8]>::to_vec)
                        .map_err(|e| StoreError::Corrupt { key: format!("{key} (the result of job {job})"), reason: e.to_string() })
                })
                .transpose()
            })
            .collect())
    }

    async fn discard(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        let keys = [self.key(run, &format!("done:{stage}")), self.key(run, &format!("result:{job}"))];
        let removed: i64 = self
            .retry("discard", |mut c| {
                let keys = keys.clone();
                async move { DISCARD.key(&keys[0]).key(&keys[1]).arg(job.as_str()).invoke_async(&mut c).await }
            })
            .await?;
        Ok(removed == 1)
    }

    async fn runs(&self) -> Result<Vec<RunId>, StoreError> {
        let keys = self.scan(&format!("{}:{{*}}:meta", self.prefix)).await?;
        let start = self.prefix.len() + 2;
        let mut runs: Vec<RunId> =
            keys.iter().filter_map(|k| k.get(start..k.len().checked_sub(6)?).and_then(|r| RunId::new(r).ok())).collect();
        runs.sort();
        runs.dedup();
        Ok(runs)
    }

    async fn failures(&self, run: &RunId, stage: Stage) -> Result<BTreeMap<JobId, String>, StoreError> {
        Ok(self.job_hash("failures", self.key(run, &format!("failed:{stage}"))).await?.into_iter().collect())
    }

    async fn clear_failures(&self, run: &RunId, stage: Stage) -> Result<(), StoreError> {
        let key = self.key(run, &format!("failed:{stage}"));
        self.retry("clear_failures", |mut c| {
            let key = key.clone();
            async move { c.del::<_, ()>(key).await }
        })
        .await
    }

    async fn clear_failure(&self, run: &RunId, stage: Stage, job: &JobId) -> Result<bool, StoreError> {
        let key = self.key(run, &format!("failed:{stage}"));
        let removed: i64 = self
            .retry("clear_failure", |mut c| {
                let key = key.clone();
                async move { c.hdel(key, job.as_str()).await }
            })
            .await?;
        Ok(removed > 0)
    }

    async fn executions(&self, run: &RunId) -> Result<BTreeMap<JobId, u64>, StoreError> {
        let key = self.key(run, "exec");
        self.job_hash("executions", key.clone())
            .await?
            .into_iter()
            .map(|(id, n)| {
                n.parse::<u64>().map(|n| (id, n)).map_err(|e| StoreError::Corrupt { key: key.clone(), reason: format!("count '{n}': {e}") })
            })
            .collect()
    }

    async fn duplicate_executions(&self, run: &RunId) -> Result<u64, StoreError> {
        let keys = [self.key(run, "exec"), self.key(run, "dups")];
        self.retry("duplicate_executions", |mut c| {
            let keys = keys.clone();
            async move { DUPLICATES.key(&keys[0]).key(&keys[1]).invoke_async(&mut c).await }
        })
        .await
    }

    async fn progress(&self, run: &RunId, stage: Stage) -> Result<StageProgress, StoreError> {
        let keys = [
            self.key(run, &format!("expected:{stage}")),
            self.key(run, &format!("done:{stage}")),
            self.key(run, &format!("failed:{stage}")),
        ];
        let (expected, done, failed): (u64, u64, u64) = self
            .retry("progress", |mut c| {
                let keys = keys.clone();
                async move { redis::pipe().scard(&keys[0]).scard(&keys[1]).hlen(&keys[2]).query_async(&mut c).await }
            })
            .await?;
        Ok(StageProgress { expected, done, failed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        for (attempt, ceiling) in [(1, 50), (2, 100), (30, 2000)] {
            let d = backoff(attempt);
            assert!(d >= Duration::from_millis(ceiling / 2) && d <= Duration::from_millis(ceiling), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn states_round_trip() {
        for st in [RunState::Running, RunState::Done, RunState::Failed, RunState::Cancelled] {
            assert_eq!(parse_state("k", st.as_str()).unwrap(), st);
        }
        assert!(parse_state("k", "paused").is_err());
    }
}
