//! The worker: takes jobs from the queue, runs them, commits results, acks.
//!
//! - `consume` — the loop: decode, execute off the async runtime, commit, ack;
//! - `placement` — what the loop remembers to weigh a move to another lane;
//! - `executor` — the contract executors implement;
//! - `executors` — one executor per job kind;
//! - `engine` — open_clip models on libtorch: artifacts, preprocessing, tokenizers;
//! - `data` — ImageFolder and WebDataset readers.

pub mod consume;
pub mod data;
pub mod debug_cmds;
pub mod debug_cmds_eval;
pub mod engine;
pub mod executor;
pub mod executors;
pub mod placement;
pub mod service;
