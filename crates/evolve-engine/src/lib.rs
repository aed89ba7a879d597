//! The evolve run loop: wires the population, a mutator and the evaluator
//! together on tokio. It holds no domain logic of its own: selection lives in
//! `evolve-store`, changes in `evolve-mutate`, scoring in `evolve-eval`.
//!
//! Each iteration goes through two phases, each its own task: *propose* (ask
//! the mutator for a candidate) and *evaluate*. Between them the loop drops
//! exact duplicates of anything already evaluated. Proposals in flight are
//! bounded by the mutator's concurrency (model requests; `jobs` for the
//! offline mutator) and evaluations by `jobs`, independently, so model calls
//! and evaluations overlap. With one of each a run is serial and fully
//! deterministic for its seed (and its replies, under `--replay`).

mod profile;
mod run;

pub use profile::{RunProfile, peak_rss_kib, process_cpu, thread_cpu};
pub use run::{Event, Run, RunOptions, Summary};

use evolve_store::StoreError;
use thiserror::Error;

/// A run that cannot start or continue.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The store failed (disk full, corrupt file, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The evaluator could not be prepared.
    #[error(transparent)]
    Eval(#[from] evolve_eval::EvalError),
    /// The run directory could not be created.
    #[error("cannot create run directory {path}: {source}")]
    RunDir {
        /// The directory at fault.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The initial program does not score, so there is nothing to evolve from.
    #[error(
        "the initial program failed its evaluation ({0}); fix it first (`evolve check` shows the details)"
    )]
    InitialFailed(String),
    /// Another evolve process is working on this run.
    #[error("{0} is in use by another evolve process (it holds {1}); wait for it or stop it first")]
    RunInUse(std::path::PathBuf, &'static str),
    /// The requested iteration target is below what the run already did.
    #[error("the run already recorded iteration {done}; --iterations must be at least {done}")]
    TargetTooLow {
        /// The highest iteration already recorded.
        done: u64,
    },
}
