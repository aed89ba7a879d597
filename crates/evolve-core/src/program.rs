//! A program of the population as other crates see it.

use serde::{Deserialize, Serialize};

use crate::outcome::{Artifacts, Metrics};

/// The database id of a stored program.
pub type ProgramId = i64;

/// A scored program: what parents and inspirations are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Its row id in the store.
    pub id: ProgramId,
    /// The program it was derived from (none for the initial program).
    pub parent: Option<ProgramId>,
    /// The island it lives on.
    pub island: u32,
    /// Distance in mutations from the initial program.
    pub generation: u32,
    /// The full source text.
    pub code: String,
    /// The objective value.
    pub score: f64,
    /// All metrics the evaluator reported.
    pub metrics: Metrics,
    /// All artifacts the evaluator reported (feedback for models).
    pub artifacts: Artifacts,
}
