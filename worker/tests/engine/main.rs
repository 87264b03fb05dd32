//! The worker's tests, one binary (one libtorch link instead of eight): dataset
//! readers, the engine against Python open_clip and sentence-transformers
//! (token ids, embeddings, preprocessing, `worker eval`), the label, evaluate
//! and embed executors on real jobs, and the prepared digits end to end.
//! `minilm_bench` is ignored by default (a throughput measurement).

#[path = "../support/mod.rs"]
mod support;

mod datasets;
mod engine_parity;
mod eval_parity;
mod hosted_embedder;
mod label_evaluate_jobs;
mod minilm_bench;
mod minilm_parity;
mod prepared_digits;
mod preprocess_parity;
