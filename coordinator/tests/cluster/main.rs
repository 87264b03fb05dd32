//! Cluster mode against the real RabbitMQ and Redis on loopback, with real
//! worker and coordinator processes: queue semantics, coordinator faults,
//! damaged results, partitions, runs sharing the workers, submit's input
//! checks, new tasks against a hub, deleting a cancelled run, and the toy
//! world end to end. One test
//! binary (one link); every test has its own queues, key prefix and folders
//! (support/mod.rs), so tests running side by side do not see each other.
//! Tests that restart the broker or flush Redis have binaries of their own
//! (cluster_broker_restart.rs, cluster_store_loss.rs, soak.rs), and so does
//! the placement count, which needs its workers uncrowded (cluster_placement.rs).

#[path = "../support/mod.rs"]
mod support;

mod adapt;
mod coordinators;
mod damaged_results;
mod delete;
mod fairness;
mod foreign_jobs;
mod partitions;
mod queue;
mod submit_inputs;
mod toy_e2e;
