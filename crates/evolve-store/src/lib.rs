//! The population of a run, and the SQLite file that is its source of truth.
//!
//! [`Store`] persists every candidate (scored, failed or rejected) as a row,
//! committed before the engine counts it as done. [`Population`] is the
//! in-memory view used for selection: islands, each with an elite list and a
//! MAP-Elites grid, a novelty index, and Pareto ranks for multi-objective
//! runs. It is always rebuilt from the store on resume.

pub mod map_elites;
mod model_calls;
pub mod novelty;
pub mod pareto;
mod population;
pub mod selection;
mod store;

pub use model_calls::ModelCallTotals;
pub use population::{NearDuplicate, Population, PopulationConfig};
pub use selection::SelectionParams;
pub use store::{
    Counts, DB_FILE, MIGRATION, RESET, Record, RunMeta, SCHEMA_VERSION, Status, Store, StoreError,
};
