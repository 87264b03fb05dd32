//! The stages of a run, in the order the coordinator drives them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A stage groups the jobs of one kind. `embed`, `label` and `evaluate` run in
/// parallel on workers; `select`, `reuse` and `report` are computed by the
/// coordinator from their committed results. `diagnostic` is a queue-only stage
/// for smoke tests and the queue benchmark (its jobs touch no model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Embed,
    Label,
    Evaluate,
    Diagnostic,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Embed, Stage::Label, Stage::Evaluate, Stage::Diagnostic];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Embed => "embed",
            Stage::Label => "label",
            Stage::Evaluate => "evaluate",
            Stage::Diagnostic => "diagnostic",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown stage '{s}' (expected one of: embed, label, evaluate, diagnostic)"))
    }
}
