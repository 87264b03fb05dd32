//! Logs and metrics shared by both binaries.
//!
//! Logs: human-readable on a terminal, JSON lines otherwise (or as configured).
//! Metrics: one process-wide Prometheus registry, served on `/metrics`.
//! Every metric a dashboard queries is declared here, so `k8s/` dashboards
//! and the code cannot drift apart unnoticed (a test parses the dashboards).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides `level`.
/// Logs go to stderr so stdout stays clean for `--json` output.
pub fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: tests and local mode may initialise more than once.
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}

/// Buckets for whole jobs: a no-op job takes milliseconds, a real shard minutes.
const JOB_SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0];
/// Buckets for one inference batch and for model loads.
const BATCH_SECONDS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

pub struct Metrics {
    pub registry: Registry,
    // worker
    pub worker_jobs: IntCounterVec,
    pub worker_job_duration: HistogramVec,
    pub worker_jobs_in_flight: IntGauge,
    pub worker_redeliveries: IntCounter,
    pub worker_ack_false: IntCounter,
    pub worker_dead_letters: IntCounterVec,
    pub worker_images: IntCounterVec,
    pub worker_batch_duration: Histogram,
    pub worker_model_load: Histogram,
    pub worker_model_cache: IntCounterVec,
    pub worker_gpu_memory: IntGauge,
    // both
    pub reconnects: IntCounterVec,
    // coordinator
    pub coordinator_published: IntCounterVec,
    pub coordinator_confirmed: IntCounterVec,
    pub coordinator_returned: IntCounter,
    pub coordinator_dead_lettered: IntCounterVec,
    pub run_jobs_expected: IntGaugeVec,
    pub run_jobs_done: IntGaugeVec,
    pub run_jobs_failed: IntGaugeVec,
    pub queue_depth: IntGaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}
fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let m = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}
fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let m = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}
fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}
fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let m = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric");
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}
fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let m = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let m = Metrics {
            worker_jobs: counter_vec(
                &r,
                "mll_worker_jobs_total",
                "Jobs handled by this worker, by kind and outcome (committed, duplicate, requeued, dead_lettered, cancelled).",
                &["kind", "status"],
            ),
            worker_job_duration: histogram_vec(
                &r,
                "mll_worker_job_duration_seconds",
                "Wall time of one job's execution, by kind.",
                &["kind"],
                JOB_SECONDS,
            ),
            worker_jobs_in_flight: gauge(&r, "mll_worker_jobs_in_flight", "Deliveries this worker holds unacked right now."),
            worker_redeliveries: counter(&r, "mll_worker_redeliveries_total", "Deliveries that the broker had delivered before."),
            worker_ack_false: counter(&r, "mll_worker_ack_false_total", "Acks the broker did not take (it will redeliver)."),
            worker_dead_letters: counter_vec(
                &r,
                "mll_worker_dead_letters_total",
                "Deliveries this worker dead-lettered, by reason class.",
                &["reason"],
            ),
            worker_images: counter_vec(&r, "mll_worker_images_total", "Images run through a model, by job kind.", &["kind"]),
            worker_batch_duration: histogram(&r, "mll_worker_batch_duration_seconds", "Wall time of one inference batch.", BATCH_SECONDS),
            worker_model_load: histogram(
                &r,
                "mll_worker_model_load_seconds",
                "Time to load a model artifact onto the device.",
                BATCH_SECONDS,
            ),
            worker_model_cache: counter_vec(
                &r,
                "mll_worker_model_cache_requests_total",
                "Model cache look-ups, by result (hit, miss).",
                &["result"],
            ),
            worker_gpu_memory: gauge(&r, "mll_worker_gpu_memory_bytes", "Device memory held by loaded models."),
            reconnects: counter_vec(&r, "mll_reconnects_total", "Reconnections, by component (broker, store).", &["component"]),
            coordinator_published: counter_vec(&r, "mll_coordinator_jobs_published_total", "Jobs published, by stage.", &["stage"]),
            coordinator_confirmed: counter_vec(
                &r,
                "mll_coordinator_jobs_confirmed_total",
                "Publishes confirmed by the broker, by stage.",
                &["stage"],
            ),
            coordinator_returned: counter(&r, "mll_coordinator_jobs_returned_total", "Publishes returned as unroutable."),
            coordinator_dead_lettered: counter_vec(
                &r,
                "mll_coordinator_jobs_dead_lettered_total",
                "Dead-lettered jobs recorded as failed, by stage.",
                &["stage"],
            ),
            run_jobs_expected: gauge_vec(&r, "mll_run_jobs_expected", "Jobs planned, by run and stage.", &["run", "stage"]),
            run_jobs_done: gauge_vec(&r, "mll_run_jobs_done", "Jobs with a committed result, by run and stage.", &["run", "stage"]),
            run_jobs_failed: gauge_vec(&r, "mll_run_jobs_failed", "Jobs failed for good, by run and stage.", &["run", "stage"]),
            queue_depth: gauge_vec(&r, "mll_queue_messages", "Messages ready in a queue, by queue (work, dead_letter).", &["queue"]),
            registry: r,
        };
        // Series that exist from the start at 0, so rate()/increase() over them
        // work before the first event (a healthy run may never reconnect).
        for component in ["broker", "store"] {
            m.reconnects.with_label_values(&[component]);
        }
        m
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is utf-8")
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Serves `/metrics` (and `/healthz`) on `addr` until the process ends.
/// Returns the bound address (useful with port 0).
pub async fn serve_metrics(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    use axum::{routing::get, Router};
    let app = Router::new()
        .route("/metrics", get(|| async { ([("content-type", "text/plain; version=0.0.4")], metrics().render()) }))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

/// An error and its causes on one line, `outer: cause: cause` (what `{:#}`
/// prints), leaving out a cause whose message the line already carries:
/// errors that keep their source and also say it in their own message.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if line.contains(&msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&msg);
    }
    line
}

#[cfg(test)]
mod report_tests {
    #[test]
    fn error_report_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading x: {source} (fix x)")]
        struct Said {
            source: std::io::Error,
        }
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(Said { source: io() }).context("loading");
        assert_eq!(super::error_report(&e), "loading: reading x: gone (fix x)");
        let e = anyhow::Error::new(io()).context("loading");
        assert_eq!(super::error_report(&e), format!("{e:#}"));
    }
}
