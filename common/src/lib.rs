//! Shared vocabulary of the MLL evaluation cluster.
//!
//! One job's life, and where each step lives:
//! 1. a benchmark spec (the coordinator's `spec`) names the hub, the datasets and the graph;
//! 2. `job` / `ids` — the coordinator plans it into jobs with deterministic ids;
//! 3. `wire` — each job travels as a versioned, size-checked envelope;
//! 4. `queue` — a broker backend (RabbitMQ, or in-process for local mode) delivers it;
//! 5. `output` / `artifact` — a worker's executor produces a small result plus large tensors;
//! 6. `store` — the result is committed exactly once (Redis, or embedded for local mode),
//!    and only then is the delivery acked;
//! 7. the coordinator reads the done sets back, aggregates and reports.
//!
//! `config`, `telemetry` and `exit` (the exit-code policy) are the cross-cutting
//! pieces both binaries share;
//! `data` the dataset and graph readers both read;
//! `backoff` the one retry delay policy (exponential, capped, jittered);
//! `shutdown` the stop signal (SIGTERM, Ctrl-C) every long-running command selects on.

pub mod artifact;
pub mod backoff;
pub mod config;
pub mod data;
pub mod exit;
pub mod hosted;
pub mod ids;
pub mod job;
pub mod output;
pub mod paths;
pub mod queue;
pub mod shutdown;
pub mod stage;
pub mod store;
pub mod telemetry;
pub mod wire;

pub use ids::{JobId, RunId};
pub use job::{Job, JobPayload};
pub use output::JobOutput;
pub use stage::Stage;
