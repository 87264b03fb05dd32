//! Data for jobs: the dataset and graph readers (shared with the coordinator,
//! in [`mll_common::data`]) and the pipeline that decodes and preprocesses
//! images on a thread pool while the model runs.
//!
//! - `pipeline` — samples → preprocessed batches over a bounded channel.

pub use mll_common::data::*;
pub mod pipeline;
