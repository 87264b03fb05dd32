//! Everything of the coordinator that needs no broker or store, one test
//! binary: specs and the catalog, captions, planning under the presets, the
//! WordNet graph builders, ground truth from published tables, the accuracy
//! CSV, and local mode (its journal, its input checks, new tasks against the
//! toy hub), and what a new user meets first (runs found by name, delete,
//! progress lines, plan's missing inputs, the shipped truth table).

#[path = "../support/mod.rs"]
mod support;

mod adapt;
mod captions_mll;
mod disk_full;
mod first_hour;
mod graph_build;
mod graph_released;
mod hosted_embedder;
mod local_journal_and_inputs;
mod modelgpt;
mod plan_presets;
mod report_csv;
mod report_truth;
mod spec_mll;
