//! One exit-code policy for both binaries, decided by walking an error's
//! chain (the top error is often only context):
//! - 2: an input the person must fix (configuration, a path outside the data
//!   root, a refused broker or Redis login, a bad id or flag combination, and whatever
//!   the binary adds: a spec, a plan): retrying cannot help, so Kubernetes'
//!   podFailurePolicy fails the Job at once;
//! - 130: interrupted (Ctrl-C, SIGTERM); what was finished is saved;
//! - 1: anything else (a service down, a job that failed).

use crate::config::ConfigError;
use crate::paths::OutsideRoot;
use crate::queue::QueueError;
use crate::store::StoreError;
use std::error::Error;

pub const FAILURE: i32 = 1;
pub const INPUT: i32 = 2;
pub const INTERRUPTED: i32 = 130;

/// An input the person must fix, found outside the typed layers (a run id, a
/// job id, a command-line combination).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The command was interrupted by a signal; what was finished is saved.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The code the shared rules give one cause; None when they do not know it.
pub fn shared_code(cause: &(dyn Error + 'static)) -> Option<i32> {
    if cause.is::<Interrupted>() {
        return Some(INTERRUPTED);
    }
    let input = cause.is::<ConfigError>()
        || cause.is::<OutsideRoot>()
        || cause.is::<InputError>()
        || cause.downcast_ref::<QueueError>().is_some_and(|q| matches!(q, QueueError::Auth { .. }))
        || cause.downcast_ref::<StoreError>().is_some_and(|s| matches!(s, StoreError::Auth { .. }));
    input.then_some(INPUT)
}

/// The exit code for `e`: the first cause in its chain that `local` (the
/// binary's own error types) or the shared rules classify; else 1.
pub fn code(e: &anyhow::Error, local: impl Fn(&(dyn Error + 'static)) -> Option<i32>) -> i32 {
    e.chain().find_map(|cause| local(cause).or_else(|| shared_code(cause))).unwrap_or(FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_classified_cause_decides() {
        let refused: anyhow::Error = QueueError::Auth { url: "amqp://h".into(), user: "u".into(), reason: "ACCESS_REFUSED".into() }.into();
        assert_eq!(code(&refused.context("connecting to the broker").context("worker run"), |_| None), INPUT);
        assert_eq!(code(&anyhow::Error::new(Interrupted("stopped".into())), |_| None), INTERRUPTED);
        let redis: anyhow::Error = StoreError::Auth { url: "redis://h".into(), reason: "WRONGPASS".into() }.into();
        assert_eq!(code(&redis.context("connecting to the store"), |_| None), INPUT);
        assert_eq!(code(&anyhow::anyhow!("broker down"), |_| None), FAILURE);
        let local: anyhow::Error = anyhow::anyhow!("a binary's own input error");
        assert_eq!(code(&local.context("x"), |c| (c.to_string() == "a binary's own input error").then_some(INPUT)), INPUT);
    }
}
