//! The coordinator: plan → publish → (workers) → aggregate → method → report.
//!
//! - `cli` — the command line: one module per command family, `main.rs` only parses;
//! - `spec` — benchmark specs and the dataset catalog they reference;
//! - `plan` — a benchmark spec becomes jobs with deterministic ids;
//! - `captions` — class maps to caption keys, caption splitting, fallbacks;
//! - `dry_run` — `coordinator plan`: a plan printed, nothing published;
//! - `control` — register, publish what is missing, record dead letters, status, cancel;
//! - `inputs` — model folders and prepared datasets checked before submit;
//! - `drive` — follow a run to its end, then build and write its report;
//!   `progress` — the progress block on a terminal, a line every few seconds
//!   elsewhere; `logs` — where log lines go (above the block; run.log in local mode);
//! - `aggregate` — committed results and artifacts (or a published accuracy
//!   table) back into matrices, handed to the method (the `mll-method` crate:
//!   selection, reuse, metrics, baselines, experiments, the outcome and the
//!   report files);
//! - `graph` — the WordNet semantic graph builder;
//! - `local` — the embedded one-process mode (cargo feature `local`, on by
//!   default: it runs the worker's executors in process, so it links libtorch);
//!   `world` — generated data roots;
//! - `hub` — finished runs as labelled hubs; `adapt` — new tasks against a
//!   hub (`select`, `adapt`: the paper's Algorithm 1);
//! - `modelgpt` — the LLM baseline; `llm_captions` — LLM-written node and
//!   class captions; `llm_cache` — every LLM answer kept as a checked record.

pub mod adapt;
pub mod aggregate;
pub mod captions;
pub mod cli;
pub mod control;
pub mod drive;
pub mod dry_run;
pub mod exit;
pub mod graph;
pub mod hub;
pub mod inputs;
pub mod llm_cache;
pub mod llm_captions;
#[cfg(feature = "local")]
pub mod local;
pub mod logs;
pub mod modelgpt;
pub mod plan;
pub mod progress;
pub mod records;
pub mod spec;
pub mod verify;
pub mod world;
