//! Sources of new candidate programs.
//!
//! Every source implements [`Mutator`]: given a parent and some inspiration
//! programs, propose a new whole program. The built-in [`OfflineMutator`] needs
//! no model; language-model clients implement the same trait.

mod lexer;
mod offline;

use std::sync::Arc;

use async_trait::async_trait;
pub use evolve_core::ModelCall;
use evolve_core::Program;
use thiserror::Error;

pub use offline::OfflineMutator;

/// Everything a mutator may look at to propose one candidate.
#[derive(Debug, Clone)]
pub struct MutationRequest {
    /// The program to change.
    pub parent: Arc<Program>,
    /// Other good programs to borrow from.
    pub inspirations: Vec<Arc<Program>>,
    /// Seed for this request, derived from the run seed and iteration.
    pub seed: u64,
    /// The iteration this request belongs to (keys replayed replies).
    pub iteration: u64,
}

/// A proposed candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The whole new program text.
    pub code: String,
    /// What kind of change made it (e.g. `numeric`, `crossover`, `diff`).
    pub kind: String,
    /// Which mutator or model proposed it.
    pub source: String,
}

/// Why no candidate came out of a request; recorded, never fatal to a run.
#[derive(Debug, Error)]
pub enum MutateError {
    /// The mutator ran but produced nothing that differs from the parent.
    #[error("no change: {0}")]
    NoChange(String),
    /// The reply could not be turned into a program.
    #[error("unusable reply: {0}")]
    Unusable(String),
    /// The source itself failed (network, server, quota...).
    #[error("source failed: {0}")]
    Source(String),
    /// The source has stopped for good (budget spent, keys refused...); the
    /// request was not made and its iteration is left for a later resume.
    #[error("stopped: {0}")]
    Stopped(String),
}

/// A source of new candidates.
#[async_trait]
pub trait Mutator: Send + Sync {
    /// A short name recorded with each proposal.
    fn name(&self) -> &str;

    /// Proposes one candidate derived from `request.parent`.
    async fn propose(&self, request: &MutationRequest) -> Result<Proposal, MutateError>;

    /// Model calls made since the last call of this method, to be stored.
    fn take_calls(&self) -> Vec<ModelCall> {
        Vec::new()
    }

    /// Set once the mutator must not be asked again (budget spent, every
    /// model failing, key rejected); the run then stops cleanly with it.
    fn stop_reason(&self) -> Option<String> {
        None
    }

    /// How many proposals may be in flight at once (model concurrency);
    /// `None` leaves it to the engine's `jobs`.
    fn concurrency(&self) -> Option<usize> {
        None
    }
}
