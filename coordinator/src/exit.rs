//! The coordinator's exit codes: the shared policy ([`mll_common::exit`]) plus
//! its own input errors (a spec, a plan, inputs missing at submit, a truth
//! table), looked for also inside run control's transparent wrappers, and 3
//! for `coordinator plan` when inputs are missing ([`PlanIncomplete`]).

use crate::aggregate::truth::TruthError;
use crate::control::ControlError;
use crate::inputs::InputCheckError;
use crate::plan::PlanError;
use crate::spec::SpecError;
use mll_common::exit::shared_code;
pub use mll_common::exit::{InputError, Interrupted, INPUT, INTERRUPTED};

/// `coordinator plan` found inputs missing (it listed them): 3, not 2, so a
/// script can tell "prepare the data first" from a wrong spec or path.
pub const INCOMPLETE: i32 = 3;

/// `coordinator plan` printed the plan, but inputs are missing.
#[derive(Debug, thiserror::Error)]
#[error("plan incomplete: {0} input problem(s), listed above with the commands that fix them (exit code 3)")]
pub struct PlanIncomplete(pub usize);

pub fn code(e: &anyhow::Error) -> i32 {
    mll_common::exit::code(e, |cause| {
        // Run control's transparent variants stand for the error they wrap.
        let cause = cause.downcast_ref::<ControlError>().and_then(ControlError::wrapped).unwrap_or(cause);
        if cause.is::<PlanIncomplete>() {
            return Some(INCOMPLETE);
        }
        let input = cause.is::<SpecError>()
            || cause.is::<PlanError>()
            || cause.is::<InputCheckError>()
            || cause.downcast_ref::<TruthError>().is_some_and(TruthError::is_input);
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
        // A truth table that is missing or malformed is an input.
        let missing = TruthError::Read { path: "t.csv".into(), source: std::io::ErrorKind::NotFound.into() };
        assert!(missing.to_string().contains("docs/published/openclip_classification_results.csv"), "{missing}");
        assert_eq!(code(&anyhow::Error::new(missing).context("report")), INPUT);
        assert_eq!(code(&TruthError::Parse { path: "t.csv".into(), line: 2, message: "x".into() }.into()), INPUT);
        assert_eq!(code(&PlanIncomplete(3).into()), INCOMPLETE);
    }
}
