//! The coordinator's exit codes: the shared policy ([`mll_common::exit`]) plus
//! its own input errors (a spec, a plan, inputs missing at submit), looked for
//! also inside run control's transparent wrappers.

use crate::control::ControlError;
use crate::inputs::InputCheckError;
use crate::plan::PlanError;
use crate::spec::SpecError;
use mll_common::exit::shared_code;
pub use mll_common::exit::{InputError, Interrupted, INPUT, INTERRUPTED};

pub fn code(e: &anyhow::Error) -> i32 {
    mll_common::exit::code(e, |cause| {
        // Run control's transparent variants stand for the error they wrap.
        let cause = cause.downcast_ref::<ControlError>().and_then(ControlError::wrapped).unwrap_or(cause);
        let input = cause.is::<SpecError>() || cause.is::<PlanError>() || cause.is::<InputCheckError>();
        if input {
            Some(INPUT)
        } else {
            shared_code(cause)
        }
    })
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
