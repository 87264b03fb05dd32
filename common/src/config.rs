//! Typed settings shared by the worker and the coordinator.
//!
//! Layers, later wins: the built-in defaults (`configs/default.toml`, compiled
//! in, so an installed binary or a container behaves as one run from the
//! source tree), `$MLL_CONFIG_DIR/default.toml` when set, an optional profile file (`--config FILE`), then `MLL__SECTION__KEY`
//! environment variables. Every section denies unknown keys, so a typo fails at
//! start with a message naming the key instead of being silently ignored.

use crate::telemetry::LogFormat;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The defaults, compiled in so a binary copied anywhere still starts.
pub const DEFAULT_TOML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/default.toml"));

/// RabbitMQ's default consumer_timeout: a delivery unacked for longer gets its
/// channel closed, so a job must finish (or be given up) before it.
pub const RABBITMQ_CONSUMER_TIMEOUT_S: u64 = 1800;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0} (check the key's spelling and type in configs/default.toml)")]
    Load(String),
    #[error("config: {key} = {value} is not allowed: {reason}")]
    Invalid { key: &'static str, value: String, reason: String },
    #[error("config: cannot read the secret for {key} from {path}: {reason} (is the secret mounted?)")]
    Secret { key: &'static str, path: PathBuf, reason: String },
    #[error("config: the profile file {0} does not exist (check --config)")]
    MissingProfile(PathBuf),
}

#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub broker: BrokerSettings,
    pub store: StoreSettings,
    pub artifacts: ArtifactSettings,
    pub data: DataSettings,
    pub worker: WorkerSettings,
    pub coordinator: CoordinatorSettings,
    pub log: LogSettings,
}

#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    pub url: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
    pub prefetch: u16,
    pub heartbeat_s: u16,
    pub max_message_bytes: usize,
    pub connect_timeout_s: u64,
    pub reconnect_max_backoff_ms: u64,
}

#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub url: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub key_prefix: String,
    pub response_timeout_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSettings {
    pub root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub root: PathBuf,
}

/// Which device a worker runs inference on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            other => Err(format!("unknown device '{other}' (use auto, cpu or cuda)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub job_timeout_s: u64,
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub shutdown_grace_s: u64,
    pub device: DeviceChoice,
    pub batch_size: usize,
    pub decode_threads: usize,
    pub model_cache_mb: u64,
    pub metrics_addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorSettings {
    pub metrics_addr: SocketAddr,
    pub poll_interval_ms: u64,
    pub publish_batch: usize,
    /// How long `--wait` keeps retrying while the run cannot be read.
    pub patience_s: u64,
    /// Jobs a `--wait`ed run keeps queued or running per unit of its spec's
    /// `priority` (0: publish every job at submit).
    pub window: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// The `MLL__…` overrides that give a run queues and keys of its own, named
/// after `tag`: work queue `<tag>.jobs`, dead letters `<tag>.dlx` and
/// `<tag>.dead`, store keys under `<tag>:`. Benchmarks and cluster tests use
/// them so that they never see one another's jobs on a shared broker and store.
pub fn isolated_env(tag: &str) -> [(&'static str, String); 4] {
    [
        ("MLL__BROKER__QUEUE", format!("{tag}.jobs")),
        ("MLL__BROKER__DEAD_LETTER_EXCHANGE", format!("{tag}.dlx")),
        ("MLL__BROKER__DEAD_LETTER_QUEUE", format!("{tag}.dead")),
        ("MLL__STORE__KEY_PREFIX", tag.to_string()),
    ]
}

impl Settings {
    /// Loads the layered settings from the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(config_file, None)
    }

    /// As [`Settings::load`], with the `MLL__…` variables taken from `env`
    /// instead of the process environment when given (tests).
    pub fn load_with_env(config_file: Option<&Path>, env: Option<HashMap<String, String>>) -> Result<Settings, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(base) = base_file() {
            builder = builder.add_source(File::from(base).format(FileFormat::Toml));
        }
        if let Some(profile) = config_file {
            if !profile.is_file() {
                return Err(ConfigError::MissingProfile(profile.to_path_buf()));
            }
            builder = builder.add_source(File::from(profile).format(FileFormat::Toml));
        }
        builder = builder.add_source(Environment::with_prefix("MLL").prefix_separator("__").separator("__").try_parsing(true).source(env));
        let mut sources = vec!["built-in defaults".to_string()];
        sources.extend(base_file().map(|p| p.display().to_string()));
        sources.extend(config_file.map(|p| p.display().to_string()));
        sources.push("MLL__* environment variables".into());
        let load_err = |e: config::ConfigError| {
            ConfigError::Load(format!("{} (layers read: {})", name_unknown_key(&e.to_string()), sources.join(", ")))
        };
        let merged = builder.build().map_err(load_err)?;
        // Before the typed read: a float or an integer too large for its
        // field would otherwise be rounded or wrapped on the way in.
        check_ranges(&merged)?;
        let mut settings: Settings = merged.try_deserialize().map_err(load_err)?;
        settings.resolve_secrets()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone (tests, tools that need no file).
    pub fn defaults() -> Settings {
        Self::load_with_env(None, Some(HashMap::new())).expect("the compiled-in defaults are valid")
    }

    fn resolve_secrets(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = self.broker.password_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            self.broker.url = url_with_password_file(&self.broker.url, path, "broker.password_file")?;
        }
        if let Some(path) = self.store.password_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            self.store.url = url_with_password_file(&self.store.url, path, "store.password_file")?;
        }
        Ok(())
    }

    /// Cross-key checks that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let w = &self.worker;
        let b = &self.broker;
        if w.job_timeout_s == 0 || w.job_timeout_s >= RABBITMQ_CONSUMER_TIMEOUT_S {
            return Err(ConfigError::Invalid {
                key: "worker.job_timeout_s",
                value: w.job_timeout_s.to_string(),
                reason: format!(
                    "it must be between 1 and {} s: RabbitMQ closes the channel of a delivery left unacked past its \
                     consumer_timeout ({RABBITMQ_CONSUMER_TIMEOUT_S} s by default) and requeues the job while it still runs; \
                     split the job into smaller shards instead",
                    RABBITMQ_CONSUMER_TIMEOUT_S - 1
                ),
            });
        }
        // A delivery held behind the job in hand (prefetch > 1) stays unacked
        // for up to the jobs ahead of it plus its own.
        if u64::from(b.prefetch) > 1 && u64::from(b.prefetch) * w.job_timeout_s >= RABBITMQ_CONSUMER_TIMEOUT_S {
            return Err(ConfigError::Invalid {
                key: "broker.prefetch",
                value: b.prefetch.to_string(),
                reason: format!(
                    "prefetch × worker.job_timeout_s ({} s) must stay below RabbitMQ's consumer_timeout                      ({RABBITMQ_CONSUMER_TIMEOUT_S} s): a delivery waiting behind the job in hand is unacked meanwhile;                      lower worker.job_timeout_s to {} s or less, or keep prefetch 1",
                    u64::from(b.prefetch) * w.job_timeout_s,
                    (RABBITMQ_CONSUMER_TIMEOUT_S - 1) / u64::from(b.prefetch)
                ),
            });
        }
        if w.max_attempts == 0 || w.max_attempts >= b.delivery_limit {
            return Err(ConfigError::Invalid {
                key: "worker.max_attempts",
                value: w.max_attempts.to_string(),
                reason: format!(
                    "it must be at least 1 and below broker.delivery_limit ({}), so a failing job is dead-lettered by the \
                     worker with its reason before the broker dead-letters it for the delivery count",
                    b.delivery_limit
                ),
            });
        }
        if b.prefetch == 0 {
            return Err(ConfigError::Invalid {
                key: "broker.prefetch",
                value: "0".into(),
                reason: "0 means unlimited in AMQP and would let one worker hoard every job; use 1 or more".into(),
            });
        }
        if b.max_message_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "broker.max_message_bytes",
                value: "0".into(),
                reason: "no message could pass; use at least a few KiB".into(),
            });
        }
        for (key, url, schemes) in
            [("broker.url", &b.url, &["amqp", "amqps"][..]), ("store.url", &self.store.url, &["redis", "rediss"][..])]
        {
            match url::Url::parse(url) {
                Ok(u) if schemes.contains(&u.scheme()) => {}
                Ok(u) => {
                    return Err(ConfigError::Invalid {
                        key,
                        value: redact_url(url),
                        reason: format!("the scheme '{}' is not one of {schemes:?}", u.scheme()),
                    })
                }
                Err(e) => return Err(ConfigError::Invalid { key, value: redact_url(url), reason: format!("not a URL: {e}") }),
            }
        }
        if self.store.key_prefix.is_empty() || self.store.key_prefix.contains(['{', '}', ' ']) {
            return Err(ConfigError::Invalid {
                key: "store.key_prefix",
                value: self.store.key_prefix.clone(),
                reason: "it must be non-empty without braces or spaces (braces would break the run's hash tag)".into(),
            });
        }
        if w.batch_size == 0 {
            return Err(ConfigError::Invalid { key: "worker.batch_size", value: "0".into(), reason: "use at least 1".into() });
        }
        Ok(())
    }

    /// The effective settings as `config` subcommands print them: TOML (the
    /// form of the config files, so it can be saved as a profile) or JSON,
    /// passwords redacted either way.
    pub fn render(&self, json: bool) -> String {
        let s = self.redacted();
        if json {
            serde_json::to_string_pretty(&s).expect("settings serialise")
        } else {
            toml::to_string_pretty(&s).expect("settings serialise as TOML")
        }
    }

    /// A copy whose URLs have their passwords replaced by `***` (for logging).
    pub fn redacted(&self) -> Settings {
        let mut s = self.clone();
        s.broker.url = redact_url(&s.broker.url);
        s.store.url = redact_url(&s.store.url);
        s
    }
}

/// Every numeric key with its allowed range (inclusive) and why it has that
/// range; `Settings::load` refuses a value outside it, or one that is not a
/// whole number (`1.5`, `1e30`), naming the key.
pub const NUMERIC_RANGES: &[(&str, u64, u64, &str)] = &[
    ("broker.delivery_limit", 2, 1_000, "a job is tried at most this often"),
    ("broker.prefetch", 1, 1_000, "deliveries one worker holds"),
    ("broker.heartbeat_s", 0, 3_600, "seconds; 0 turns heartbeats off"),
    ("broker.max_message_bytes", 1_024, 64 * 1024 * 1024, "a job message is decoded whole in memory"),
    ("broker.connect_timeout_s", 1, 3_600, "seconds"),
    ("broker.reconnect_max_backoff_ms", 100, 3_600_000, "milliseconds"),
    ("store.response_timeout_ms", 1, 3_600_000, "milliseconds"),
    ("store.retries", 0, 100, "retries per command"),
    ("worker.job_timeout_s", 1, RABBITMQ_CONSUMER_TIMEOUT_S - 1, "below RabbitMQ's consumer_timeout"),
    ("worker.max_attempts", 1, 999, "below broker.delivery_limit"),
    ("worker.retry_backoff_ms", 0, 3_600_000, "milliseconds"),
    ("worker.shutdown_grace_s", 0, 3_600, "seconds"),
    ("worker.batch_size", 1, 4_096, "images per batch, each several MB in memory on the way to the model"),
    ("worker.decode_threads", 0, 1_024, "threads; 0 = one per core"),
    ("worker.model_cache_mb", 0, 16 * 1024 * 1024, "MiB"),
    ("coordinator.poll_interval_ms", 10, 3_600_000, "milliseconds"),
    ("coordinator.publish_batch", 1, 100_000, "messages per confirm round trip"),
    ("coordinator.patience_s", 0, 7 * 86_400, "seconds"),
    ("coordinator.window", 0, 10_000_000, "jobs; 0 publishes every job at submit"),
];

/// Checks every numeric key of the merged layers against [`NUMERIC_RANGES`].
fn check_ranges(merged: &config::Config) -> Result<(), ConfigError> {
    use config::ValueKind;
    for &(key, min, max, why) in NUMERIC_RANGES {
        let Ok(v) = merged.get::<config::Value>(key) else { continue }; // missing: the typed read names it
        let n: Option<i128> = match &v.kind {
            ValueKind::I64(x) => Some(i128::from(*x)),
            ValueKind::I128(x) => Some(*x),
            ValueKind::U64(x) => Some(i128::from(*x)),
            ValueKind::U128(x) => i128::try_from(*x).ok(),
            ValueKind::String(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        let reason = match n {
            None => format!("it must be a whole number from {min} to {max} ({why})"),
            Some(n) if n < i128::from(min) || n > i128::from(max) => format!("it must be from {min} to {max} ({why})"),
            Some(_) => continue,
        };
        let value = v.to_string();
        return Err(ConfigError::Invalid { key, value: if value.is_empty() { "''".into() } else { value }, reason });
    }
    Ok(())
}

/// The on-disk base file `$MLL_CONFIG_DIR/default.toml`, when set. Never the
/// source tree the binary was built from: an installed binary or a container
/// must behave the same wherever it was compiled. `None` = the built-in copy only.
fn base_file() -> Option<PathBuf> {
    let dir = std::env::var_os("MLL_CONFIG_DIR")?;
    let p = Path::new(&dir).join("default.toml");
    p.is_file().then_some(p)
}

/// serde says "unknown field `x`, expected one of … for key `section`"; say
/// "unknown key `section.x`" first so the full path is what a reader sees.
fn name_unknown_key(msg: &str) -> String {
    let field = msg.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(f, _)| f);
    let section = msg.rsplit_once(" for key `").and_then(|(_, r)| r.split_once('`')).map(|(k, _)| k);
    match (field, section) {
        (Some(f), Some(sec)) => format!("unknown key `{sec}.{f}`: {msg}"),
        (Some(f), None) => format!("unknown section `{f}`: {msg}"),
        _ => msg.to_string(),
    }
}

fn url_with_password_file(url: &str, path: &Path, key: &'static str) -> Result<String, ConfigError> {
    let secret = std::fs::read_to_string(path).map_err(|e| ConfigError::Secret { key, path: path.to_path_buf(), reason: e.to_string() })?;
    let secret = secret.trim();
    let mut u = url::Url::parse(url).map_err(|e| ConfigError::Invalid {
        key,
        value: redact_url(url),
        reason: format!("the URL it applies to does not parse: {e}"),
    })?;
    u.set_password(Some(secret)).map_err(|()| ConfigError::Invalid {
        key,
        value: redact_url(url),
        reason: "this URL cannot carry a password (it needs a host)".into(),
    })?;
    Ok(u.to_string())
}

/// Replaces the password of a URL by `***`; URLs without one are unchanged.
/// Works on strings that do not parse as URLs too (anything between `:` and
/// `@` after the scheme is hidden), so a malformed URL never leaks a secret.
pub fn redact_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else { return raw.to_string() };
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // The last '@' ends the userinfo (a password may itself contain '@').
    let Some(at) = authority.rfind('@') else { return raw.to_string() };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else { return raw.to_string() };
    format!("{}{}:***{}", &raw[..scheme_end + 3], &userinfo[..colon], &rest[at..])
}

impl fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("queue", &self.queue)
            .field("dead_letter_exchange", &self.dead_letter_exchange)
            .field("dead_letter_queue", &self.dead_letter_queue)
            .field("delivery_limit", &self.delivery_limit)
            .field("prefetch", &self.prefetch)
            .field("heartbeat_s", &self.heartbeat_s)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("connect_timeout_s", &self.connect_timeout_s)
            .field("reconnect_max_backoff_ms", &self.reconnect_max_backoff_ms)
            .finish()
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("key_prefix", &self.key_prefix)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .field("retries", &self.retries)
            .finish()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sections print their own redacted URLs.
        f.debug_struct("Settings")
            .field("broker", &self.broker)
            .field("store", &self.store)
            .field("artifacts", &self.artifacts)
            .field("data", &self.data)
            .field("worker", &self.worker)
            .field("coordinator", &self.coordinator)
            .field("log", &self.log)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn profile(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_load_and_match_the_documented_values() {
        let s = Settings::defaults();
        assert_eq!(s.broker.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.broker.queue, "mll.jobs");
        assert_eq!(s.broker.delivery_limit, 5);
        assert_eq!(s.broker.prefetch, 1);
        assert_eq!(s.store.url, "redis://127.0.0.1:6379/");
        assert_eq!(s.store.key_prefix, "mll");
        assert_eq!(s.worker.job_timeout_s, 1500);
        assert_eq!(s.worker.max_attempts, 3);
        assert_eq!(s.worker.device, DeviceChoice::Auto);
        assert_eq!(s.worker.metrics_addr, "0.0.0.0:9100".parse().unwrap());
        assert_eq!(s.coordinator.publish_batch, 500);
        assert_eq!(s.coordinator.window, 256);
        assert_eq!(s.log.format, LogFormat::Auto);
    }

    #[test]
    fn config_prints_toml_that_loads_back_and_hides_passwords() {
        let p = profile("[broker]\nurl = \"amqp://u:secret@h:5672/%2f\"\n");
        let s = Settings::load_with_env(Some(p.path()), env(&[])).unwrap();
        let text = s.render(false);
        assert!(text.contains("[broker]") && text.contains("patience_s = "), "{text}");
        assert!(!text.contains("secret") && !text.contains("BrokerSettings"), "{text}");
        let back: Settings = toml::from_str(&text).expect("the printed config is a valid config file");
        assert_eq!(back, s.redacted());
        let json: serde_json::Value = serde_json::from_str(&s.render(true)).unwrap();
        assert_eq!(json["coordinator"]["patience_s"], 300);
    }

    #[test]
    fn the_source_tree_is_not_read_at_run_time() {
        // Without MLL_CONFIG_DIR the compiled-in defaults are the only base.
        if std::env::var_os("MLL_CONFIG_DIR").is_none() {
            assert_eq!(base_file(), None);
        }
    }

    #[test]
    fn profile_then_env_override_in_order() {
        let p = profile("[worker]\nbatch_size = 16\ndevice = \"cpu\"\n[store]\nkey_prefix = \"prof\"\n");
        let s = Settings::load_with_env(
            Some(p.path()),
            env(&[
                ("MLL__WORKER__BATCH_SIZE", "8"),
                ("MLL__BROKER__URL", "amqps://u:p@rabbit:5671/%2f"),
                ("MLL__DATA__ROOT", "/data"),
                ("MLL__BROKER__DEAD_LETTER_QUEUE", "dlq"),
            ]),
        )
        .unwrap();
        assert_eq!(s.worker.batch_size, 8, "env wins over the profile");
        assert_eq!(s.worker.device, DeviceChoice::Cpu, "profile wins over defaults");
        assert_eq!(s.store.key_prefix, "prof");
        assert_eq!(s.broker.url, "amqps://u:p@rabbit:5671/%2f");
        assert_eq!(s.broker.dead_letter_queue, "dlq");
        assert_eq!(s.data.root, PathBuf::from("/data"));
        assert_eq!(s.worker.max_attempts, 3, "untouched keys keep their defaults");
    }

    #[test]
    fn unknown_key_in_a_file_is_named() {
        let p = profile("[broker]\nprefetchh = 2\n");
        let e = Settings::load_with_env(Some(p.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown key `broker.prefetchh`"), "{e}");
        assert!(e.contains(&p.path().display().to_string()), "the layers are listed: {e}");
        eprintln!("{e}");
        let p = profile("[brokerr]\nurl = \"amqp://x\"\n");
        let e = Settings::load_with_env(Some(p.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown section `brokerr`"), "{e}");
    }

    #[test]
    fn unknown_key_from_env_is_named() {
        let e = Settings::load_with_env(None, env(&[("MLL__WORKER__PREFETCH", "2")])).unwrap_err().to_string();
        assert!(e.contains("unknown key `worker.prefetch`"), "{e}");
        eprintln!("{e}");
    }

    #[test]
    fn bad_value_type_is_named() {
        let e = Settings::load_with_env(None, env(&[("MLL__BROKER__PREFETCH", "abc")])).unwrap_err().to_string();
        assert!(e.contains("broker.prefetch"), "{e}");
        eprintln!("{e}");
        let e = Settings::load_with_env(None, env(&[("MLL__WORKER__PREFETCH", "abc")])).unwrap_err().to_string();
        assert!(e.contains("prefetch"), "{e}");
        let p = profile("[worker]\nbatch_size = \"big\"\n");
        let e = Settings::load_with_env(Some(p.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("worker.batch_size"), "{e}");
        let e = Settings::load_with_env(None, env(&[("MLL__WORKER__DEVICE", "tpu")])).unwrap_err().to_string();
        assert!(e.contains("worker.device"), "{e}");
        let e = Settings::load_with_env(None, env(&[("MLL__WORKER__METRICS_ADDR", "nowhere")])).unwrap_err().to_string();
        assert!(e.contains("worker.metrics_addr"), "{e}");
    }

    #[test]
    fn cross_key_rules_explain_themselves() {
        let e = Settings::load_with_env(None, env(&[("MLL__WORKER__JOB_TIMEOUT_S", "1800")])).unwrap_err().to_string();
        assert!(e.contains("worker.job_timeout_s") && e.contains("consumer_timeout"), "{e}");
        let e = Settings::load_with_env(None, env(&[("MLL__WORKER__MAX_ATTEMPTS", "5")])).unwrap_err().to_string();
        assert!(e.contains("worker.max_attempts") && e.contains("delivery_limit"), "{e}");
        let e = Settings::load_with_env(None, env(&[("MLL__BROKER__PREFETCH", "2")])).unwrap_err().to_string();
        assert!(e.contains("broker.prefetch") && e.contains("899 s"), "{e}");
        assert!(Settings::load_with_env(None, env(&[("MLL__BROKER__PREFETCH", "2"), ("MLL__WORKER__JOB_TIMEOUT_S", "899")])).is_ok());
        assert!(Settings::load_with_env(None, env(&[("MLL__WORKER__MAX_ATTEMPTS", "5"), ("MLL__BROKER__DELIVERY_LIMIT", "6")])).is_ok());
        let e = Settings::load_with_env(None, env(&[("MLL__STORE__URL", "http://x")])).unwrap_err().to_string();
        assert!(e.contains("store.url"), "{e}");
    }

    /// Every numeric key has a range, checked before the typed read: a batch
    /// that would allocate terabytes, numbers past 2^63, floats (never
    /// rounded) are refused naming the key (issue 27, item 7).
    #[test]
    fn numeric_keys_are_whole_numbers_within_their_range() {
        for (value, says) in [
            ("99999999999", "from 1 to 4096"),
            ("9223372036854775808", "whole number"),
            ("1e30", "whole number"),
            ("1.5", "whole number"),
            ("-3", "from 1 to 4096"),
            ("0", "from 1 to 4096"),
        ] {
            let e = Settings::load_with_env(None, env(&[("MLL__WORKER__BATCH_SIZE", value)])).err();
            let e = e.unwrap_or_else(|| panic!("worker.batch_size = {value} was accepted")).to_string();
            assert!(e.contains("worker.batch_size") && e.contains(says), "{value}: {e}");
        }
        let p = profile("[worker]\nbatch_size = 1.5\n");
        let e = Settings::load_with_env(Some(p.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("worker.batch_size") && e.contains("whole number"), "{e}");
        let p = profile("[coordinator]\nwindow = 9223372036854775807\n");
        let e = Settings::load_with_env(Some(p.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("coordinator.window"), "{e}");
        // Every key of the table exists, and the defaults lie in their ranges.
        let defaults: toml::Value = toml::from_str(DEFAULT_TOML).unwrap();
        for (key, ..) in NUMERIC_RANGES {
            let (section, name) = key.split_once('.').unwrap();
            assert!(defaults[section].get(name).is_some(), "{key} is not a key of configs/default.toml");
        }
        let s = Settings::load_with_env(None, env(&[("MLL__WORKER__BATCH_SIZE", "4096")])).unwrap();
        assert_eq!(s.worker.batch_size, 4096);
        assert!(s.render(false).contains("batch_size = 4096"));
    }

    #[test]
    fn missing_profile_is_an_error() {
        let e = Settings::load_with_env(Some(Path::new("/nonexistent/p.toml")), env(&[])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/p.toml"), "{e}");
    }

    #[test]
    fn password_files_replace_url_passwords_and_never_print() {
        let mut broker_secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(broker_secret, "  s3cr3t/pw  ").unwrap();
        let mut store_secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(store_secret, "r3dis").unwrap();
        let s = Settings::load_with_env(
            None,
            env(&[
                ("MLL__BROKER__PASSWORD_FILE", broker_secret.path().to_str().unwrap()),
                ("MLL__STORE__PASSWORD_FILE", store_secret.path().to_str().unwrap()),
                ("MLL__STORE__URL", "rediss://default:old@redis:6380/0"),
            ]),
        )
        .unwrap();
        let u = url::Url::parse(&s.broker.url).unwrap();
        assert_eq!(u.username(), "guest");
        assert_eq!(percent_decode(u.password().unwrap()), "s3cr3t/pw", "the trimmed file content becomes the password");
        assert_eq!(url::Url::parse(&s.store.url).unwrap().password(), Some("r3dis"));
        let printed = format!("{s:?} {:?}", s.redacted());
        assert!(!printed.contains("s3cr3t") && !printed.contains("r3dis"), "{printed}");
        assert!(printed.contains("guest:***@"), "{printed}");
        let e = Settings::load_with_env(None, env(&[("MLL__BROKER__PASSWORD_FILE", "/nonexistent/secret")])).unwrap_err().to_string();
        assert!(e.contains("broker.password_file") && e.contains("/nonexistent/secret"), "{e}");
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("amqp://guest:guest@h:5672/%2f"), "amqp://guest:***@h:5672/%2f");
        assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact_url("rediss://u:p@ss@h/0?x=1"), "rediss://u:***@h/0?x=1");
        assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
        assert_eq!(redact_url("amqp://user@h/"), "amqp://user@h/");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
