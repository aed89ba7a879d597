//! The vocabulary of evolve: problem specs, programs with evolvable regions,
//! SEARCH/REPLACE diffs, and evaluation outcomes.
//!
//! This crate does no I/O beyond reading the files it is given, so every other
//! crate can depend on it freely.

pub mod block;
pub mod diff;
pub mod evolution;
pub mod hash;
pub mod models;
pub mod outcome;
pub mod program;
pub mod reply;
pub mod sandbox_spec;
pub mod spec;

pub use block::{BlockError, SourceFile};
pub use evolution::{FeatureSpec, MigrationTopology, ObjectiveSpec, SelectionStrategy};
pub use hash::code_hash;
pub use models::{LlmSpec, ModelCall, ModelSpec, Provider};
pub use outcome::{Artifacts, Direction, EvalOutcome, Failure, FailureKind, Metrics};
pub use program::{Program, ProgramId};
pub use reply::{AppliedReply, ReplyChange, ReplyError, apply_model_reply};
pub use sandbox_spec::{SandboxMode, SandboxSpec, StageSpec};
pub use spec::{EvaluatorKind, EvaluatorSpec, EvolutionSpec, ProblemSpec, SpecError};
