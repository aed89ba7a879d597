//! The population of a run, and the SQLite file that is its source of truth.
//!
//! [`Store`] persists every candidate (scored, failed or rejected) as a row,
//! committed before the engine counts it as done. [`Population`] is the
//! in-memory view used for selection; it is always rebuildable from the store.

mod model_calls;
mod population;
mod store;

pub use model_calls::ModelCallTotals;
pub use population::Population;
pub use store::{Counts, DB_FILE, Record, RunMeta, Status, Store, StoreError};
