//! Formatting and writing only: a [`Report`] (computed by `aggregate` and
//! `method`, defined in `outcome`) becomes report.json, report.md,
//! accuracy_matrix.csv and SVG charts. Nothing here computes a number the
//! report shows.

mod svg;
mod write;

/// The types this module writes, at their old paths for callers.
pub use crate::outcome::*;
pub use write::{accuracy_matrix_csv, report_json, report_markdown, write_atomically, write_report};
