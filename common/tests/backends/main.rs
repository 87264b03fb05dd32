//! The queue and store backends against the real RabbitMQ and Redis, one test
//! binary: every test uses its own queue names or run name and removes them
//! at the end, so tests running side by side do not see each other. The
//! embedded store's journal is checked on a real (tmpfs) disk that fills up.

mod amqp_queue;
mod journal_disk_full;
mod redis_store;
