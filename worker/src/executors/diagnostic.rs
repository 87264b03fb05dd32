//! Executor for diagnostic jobs: simulated work with a chosen outcome. Used by
//! smoke tests, fault tests and the queue benchmark; touches no model.

use crate::executor::{ExecContext, ExecError, Executor};
use mll_common::job::{DiagnosticBehavior, JobPayload};
use mll_common::output::DiagnosticOutput;
use mll_common::{Job, JobOutput};
use std::time::{Duration, Instant};

pub struct DiagnosticExecutor;

/// The value a diagnostic job's result carries: a function of its id alone, so
/// reports from any number of workers and redeliveries agree.
pub fn diagnostic_value(job_id: &str) -> u64 {
    let digest = mll_common::ids::sha256_hex(job_id.as_bytes());
    u64::from_str_radix(&digest[..16], 16).expect("hex digest")
}

impl Executor for DiagnosticExecutor {
    fn execute(&self, job: &Job, ctx: &ExecContext) -> Result<JobOutput, ExecError> {
        let JobPayload::Diagnostic(d) = &job.payload else {
            return Err(ExecError::Permanent("the diagnostic executor got a non-diagnostic job".into()));
        };
        // Sleep in slices so a timeout or shutdown can stop the job.
        let until = Instant::now() + Duration::from_millis(d.work_ms);
        while Instant::now() < until {
            ctx.check_cancelled()?;
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
        }
        match d.behavior {
            DiagnosticBehavior::Succeed => {
                Ok(JobOutput::Diagnostic(DiagnosticOutput { index: d.index, value: diagnostic_value(job.id.as_str()) }))
            }
            DiagnosticBehavior::FailAlways => {
                Err(ExecError::Transient(format!("diagnostic job #{} is a poison job: it fails every time", d.index)))
            }
            DiagnosticBehavior::FailPermanently => {
                Err(ExecError::Permanent(format!("diagnostic job #{} fails permanently by design", d.index)))
            }
        }
    }
}
