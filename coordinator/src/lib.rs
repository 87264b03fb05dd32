//! The coordinator: plan → publish → (workers) → aggregate → method → report.
//!
//! - `plan` — a benchmark spec becomes jobs with deterministic ids;
//! - `captions` — class maps to caption keys, caption splitting, fallbacks;
//! - `dry_run` — `coordinator plan`: a plan printed, nothing published;
//! - `control` — register, publish what is missing, record dead letters, status, cancel;
//! - `inputs` — model folders and prepared datasets checked before submit;
//! - `drive` — follow a run to its end with progress bars, then build and write its report;
//! - `aggregate` — committed results and artifacts (or a published accuracy
//!   table) back into matrices, handed to the method;
//! - `method` — the MLL method, reuse, metrics, baselines and the paper's
//!   experiments (pure functions), assembled into the run's outcome;
//! - `outcome` — that outcome as data (report.json's shape);
//! - `report` — formatting and writing: report.json / report.md / CSV / charts;
//! - `names` — dataset names across MLL, CLIP_benchmark and open_clip;
//! - `graph` — the WordNet semantic graph builder;
//! - `local` — the embedded one-process mode (cargo feature `local`, on by
//!   default: it runs the worker's executors in process, so it links libtorch);
//!   `world` — generated data roots;
//! - `hub` — finished runs as labelled hubs; `adapt` — new tasks against a
//!   hub (`select`, `adapt`: the paper's Algorithm 1).

pub mod adapt;
pub mod aggregate;
pub mod captions;
pub mod control;
pub mod drive;
pub mod dry_run;
pub mod exit;
pub mod graph;
pub mod hub;
pub mod inputs;
#[cfg(feature = "local")]
pub mod local;
pub mod method;
pub mod names;
pub mod outcome;
pub mod plan;
pub mod records;
pub mod report;
pub mod spec_checks;
pub mod verify;
pub mod world;
