//! Exit codes of the coordinator, decided by walking the error chain:
//! 2 = the input is wrong (configuration, spec, a path or file the spec names,
//! a run id, a refused broker login): retrying cannot help, so Kubernetes' podFailurePolicy fails the
//! Job at once; 130 = interrupted (Ctrl-C); 1 = anything else.

use crate::control::ControlError;
use crate::plan::PlanError;
use mll_common::config::ConfigError;
use mll_common::paths::OutsideRoot;
use mll_common::queue::QueueError;
use mll_common::spec::SpecError;

pub const INPUT: i32 = 2;
pub const INTERRUPTED: i32 = 130;

/// An input the user must fix, found outside the typed layers (a run id, a
/// command-line combination).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The run was interrupted by a signal; what was finished is saved.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

pub fn code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        // Run control's transparent variants stand for the error they wrap.
        let cause = cause.downcast_ref::<ControlError>().and_then(ControlError::wrapped).unwrap_or(cause);
        if cause.is::<Interrupted>() {
            return INTERRUPTED;
        }
        if cause.is::<ConfigError>()
            || cause.is::<SpecError>()
            || cause.is::<PlanError>()
            || cause.is::<OutsideRoot>()
            || cause.is::<InputError>()
            || cause.is::<crate::inputs::InputError>()
            || cause.downcast_ref::<QueueError>().is_some_and(|q| matches!(q, QueueError::Auth { .. }))
        {
            return INPUT;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn input_errors_anywhere_in_the_chain_exit_2() {
        let plan: anyhow::Error = PlanError::Dataset { name: "d".into(), reason: "template without {c}".into() }.into();
        assert_eq!(code(&plan.context("planning run x").context("submit")), INPUT);
        let missing: anyhow::Result<()> = Err(PlanError::Graph { path: "g.json".into(), reason: "not found".into() }.into());
        assert_eq!(code(&missing.context("resume").unwrap_err()), INPUT);
        assert_eq!(code(&anyhow::Error::new(Interrupted("stopped".into()))), INTERRUPTED);
        assert_eq!(code(&anyhow::anyhow!("broker down")), 1);
        // Through run control's typed errors too.
        let wrapped: anyhow::Error = ControlError::from(PlanError::Graph { path: "g.json".into(), reason: "not found".into() }).into();
        assert_eq!(code(&wrapped.context("submit")), INPUT);
        assert_eq!(code(&ControlError::from(InputError("no such run".into())).into()), INPUT);
        assert_eq!(code(&ControlError::Cancelled { run: mll_common::RunId::new("r").unwrap() }.into()), 1);
    }
}
