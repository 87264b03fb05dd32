//! The method crate's tests, one binary (one link instead of one per file):
//! metrics against scipy, reuse, selection against hand-worked graphs, and
//! the report built, written and rendered from a seeded synthetic world.

mod metrics;
mod report_build;
mod report_charts;
mod report_empty_hub;
mod report_experiments;
mod reuse;
mod selection;
mod support_world;
