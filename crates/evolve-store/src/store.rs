//! The SQLite file of a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use evolve_core::{Artifacts, Metrics, ProblemSpec, Program, ProgramId, code_hash};
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

/// The database file inside a run directory.
pub const DB_FILE: &str = "evolve.db";

/// The schema this code writes; older files are migrated on open.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS programs (
    id             INTEGER PRIMARY KEY,
    iteration      INTEGER NOT NULL,
    parent_id      INTEGER REFERENCES programs(id),
    island         INTEGER NOT NULL,
    generation     INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('scored', 'failed', 'rejected')),
    score          REAL,
    code           TEXT NOT NULL,
    code_hash      INTEGER NOT NULL,
    metrics        TEXT NOT NULL,
    artifacts      TEXT NOT NULL,
    failure_kind   TEXT,
    failure_detail TEXT,
    mutation       TEXT NOT NULL,
    source         TEXT NOT NULL,
    eval_ms        INTEGER NOT NULL,
    created_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS programs_iteration ON programs(iteration);
CREATE INDEX IF NOT EXISTS programs_status_score ON programs(status, score);
";

/// A store that cannot be used.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not an evolve run, or from a newer evolve.
    #[error("database {path}: {message}")]
    Incompatible {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// The fate of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Evaluated, with a finite objective.
    Scored,
    /// Evaluated, and failed.
    Failed,
    /// Never evaluated (duplicate, or the mutation produced nothing usable).
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Scored => "scored",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
        }
    }
}

/// One candidate, as written to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The iteration that produced it (0 for the initial program).
    pub iteration: u64,
    /// The program it came from.
    pub parent: Option<ProgramId>,
    /// The island it belongs to.
    pub island: u32,
    /// Parent's generation plus one.
    pub generation: u32,
    /// Scored, failed or rejected.
    pub status: Status,
    /// The objective, for scored candidates only.
    pub score: Option<f64>,
    /// The whole program text.
    pub code: String,
    /// Finite metrics reported.
    pub metrics: Metrics,
    /// Artifacts reported.
    pub artifacts: Artifacts,
    /// Failure or rejection category.
    pub failure_kind: Option<String>,
    /// Failure or rejection explanation.
    pub failure_detail: Option<String>,
    /// How it was made: `initial`, `numeric`, `crossover`, `migration`, ...
    pub mutation: String,
    /// Which mutator or model made it.
    pub source: String,
    /// Evaluation wall time.
    pub eval_ms: u64,
}

/// The identity of a run, written once at creation.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    /// The effective problem spec.
    pub spec: ProblemSpec,
    /// Iterations the run aims for.
    pub target_iterations: u64,
}

/// Totals over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Candidates that were evaluated (scored plus failed), migrations excluded.
    pub evaluated: u64,
    /// Evaluated candidates with a finite objective.
    pub scored: u64,
    /// Evaluated candidates that failed.
    pub failed: u64,
    /// Candidates never evaluated.
    pub rejected: u64,
    /// Copies made by migration.
    pub migrated: u64,
    /// Failed and rejected candidates by category.
    pub by_reason: BTreeMap<String, u64>,
}

/// The SQLite database of one run.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Store {
    /// Creates a new run database at `path`, which must not exist yet.
    pub fn create(path: &Path, meta: &RunMeta) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::Incompatible {
                path: path.into(),
                message: "already exists; use `evolve resume`".into(),
            });
        }
        let store = Store::connect(path)?;
        let spec =
            serde_json::to_string(&meta.spec).map_err(|e| store.incompatible(e.to_string()))?;
        store.sql(|c| {
            c.execute_batch(SCHEMA)?;
            let tx = c.unchecked_transaction()?;
            for (key, value) in [
                ("schema_version", SCHEMA_VERSION.to_string()),
                ("spec", spec),
                ("target_iterations", meta.target_iterations.to_string()),
                ("created_at", now().to_string()),
            ] {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )?;
            }
            tx.commit()
        })?;
        Ok(store)
    }

    /// Opens an existing run database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Incompatible {
                path: path.into(),
                message: "no such run database".into(),
            });
        }
        let store = Store::connect(path)?;
        let version: Option<String> = store.meta("schema_version")?;
        match version.and_then(|v| v.parse::<i64>().ok()) {
            Some(SCHEMA_VERSION) => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(store.incompatible(format!(
                    "schema version {v} is newer than this evolve supports ({SCHEMA_VERSION})"
                )));
            }
            _ => return Err(store.incompatible("not an evolve run database".into())),
        }
        Ok(store)
    }

    fn connect(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.into(),
            source,
        })?;
        let store = Store {
            conn,
            path: path.into(),
        };
        store.sql(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            c.busy_timeout(std::time::Duration::from_secs(10))
        })?;
        Ok(store)
    }

    pub(crate) fn sql<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        f(&self.conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    fn incompatible(&self, message: String) -> StoreError {
        StoreError::Incompatible {
            path: self.path.clone(),
            message,
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.sql(|c| {
            let exists: bool = c.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(None);
            }
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    /// The run's identity as stored at creation (target possibly raised since).
    pub fn run_meta(&self) -> Result<RunMeta, StoreError> {
        let spec = self
            .meta("spec")?
            .ok_or_else(|| self.incompatible("missing spec".into()))?;
        let spec = serde_json::from_str(&spec)
            .map_err(|e| self.incompatible(format!("stored spec unreadable: {e}")))?;
        let target = self
            .meta("target_iterations")?
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ok(RunMeta {
            spec,
            target_iterations: target,
        })
    }

    /// Records a new iteration target (for resuming a run further).
    pub fn set_target_iterations(&self, target: u64) -> Result<(), StoreError> {
        self.sql(|c| {
            c.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'target_iterations'",
                [target.to_string()],
            )
            .map(drop)
        })
    }

    /// Appends a candidate, committed before this returns; gives its id.
    pub fn insert(&self, record: &Record) -> Result<ProgramId, StoreError> {
        let metrics = serde_json::to_string(&record.metrics).unwrap_or_else(|_| "{}".into());
        let artifacts = serde_json::to_string(&record.artifacts).unwrap_or_else(|_| "{}".into());
        self.sql(|c| {
            let mut statement = c.prepare_cached(
                "INSERT INTO programs (iteration, parent_id, island, generation, status, score, code, code_hash,
                    metrics, artifacts, failure_kind, failure_detail, mutation, source, eval_ms, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            statement.execute(params![
                record.iteration as i64,
                record.parent,
                record.island,
                record.generation,
                record.status.as_str(),
                record.score,
                record.code,
                code_hash(&record.code) as i64,
                metrics,
                artifacts,
                record.failure_kind,
                record.failure_detail,
                record.mutation,
                record.source,
                record.eval_ms as i64,
                now(),
            ])?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Every scored program in insertion order, to rebuild a [`crate::Population`].
    pub fn scored_programs(&self) -> Result<Vec<Program>, StoreError> {
        self.sql(|c| {
            let mut statement = c.prepare(
                "SELECT id, parent_id, island, generation, code, score, metrics, artifacts
                 FROM programs WHERE status = 'scored' ORDER BY id",
            )?;
            let rows = statement.query_map([], row_to_program)?;
            rows.collect()
        })
    }

    /// Content hashes of every evaluated program, to skip re-evaluating duplicates.
    pub fn evaluated_hashes(&self) -> Result<Vec<u64>, StoreError> {
        self.sql(|c| {
            let mut statement =
                c.prepare("SELECT code_hash FROM programs WHERE status != 'rejected'")?;
            let rows = statement.query_map([], |r| r.get::<_, i64>(0).map(|h| h as u64))?;
            rows.collect()
        })
    }

    /// Iterations already recorded (so a resumed run redoes only the rest).
    pub fn completed_iterations(&self) -> Result<BTreeSet<u64>, StoreError> {
        self.sql(|c| {
            let mut statement =
                c.prepare("SELECT DISTINCT iteration FROM programs WHERE mutation != 'migration'")?;
            let rows = statement.query_map([], |r| r.get::<_, i64>(0).map(|i| i as u64))?;
            rows.collect()
        })
    }

    /// The best scored program under `direction`, ties going to the earliest.
    pub fn best(&self, maximize: bool) -> Result<Option<Program>, StoreError> {
        let order = if maximize { "DESC" } else { "ASC" };
        self.sql(|c| {
            c.query_row(
                &format!(
                    "SELECT id, parent_id, island, generation, code, score, metrics, artifacts
                     FROM programs WHERE status = 'scored' ORDER BY score {order}, id ASC LIMIT 1"
                ),
                [],
                row_to_program,
            )
            .optional()
        })
    }

    /// The initial program's row, if it was scored.
    pub fn initial(&self) -> Result<Option<(Status, Option<f64>)>, StoreError> {
        self.sql(|c| {
            c.query_row(
                "SELECT status, score FROM programs WHERE iteration = 0 ORDER BY id LIMIT 1",
                [],
                |r| {
                    let status: String = r.get(0)?;
                    let status = match status.as_str() {
                        "scored" => Status::Scored,
                        "failed" => Status::Failed,
                        _ => Status::Rejected,
                    };
                    Ok((status, r.get(1)?))
                },
            )
            .optional()
        })
    }

    /// Totals by status and by failure reason.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.sql(|c| {
            let mut counts = Counts::default();
            let mut statement = c.prepare(
                "SELECT status, mutation = 'migration', coalesce(failure_kind, ''), count(*) FROM programs GROUP BY 1, 2, 3",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let status: String = row.get(0)?;
                let migration: bool = row.get(1)?;
                let reason: String = row.get(2)?;
                let n = row.get::<_, i64>(3)? as u64;
                match (status.as_str(), migration) {
                    (_, true) => counts.migrated += n,
                    ("scored", _) => counts.scored += n,
                    ("failed", _) => counts.failed += n,
                    _ => counts.rejected += n,
                }
                if !reason.is_empty() {
                    *counts.by_reason.entry(reason).or_default() += n;
                }
            }
            counts.evaluated = counts.scored + counts.failed;
            Ok(counts)
        })
    }

    /// Every candidate's (iteration, parent, island, status, score, hash) in id order: a run's history.
    pub fn history(
        &self,
    ) -> Result<Vec<(u64, Option<ProgramId>, u32, String, Option<f64>, u64)>, StoreError> {
        self.sql(|c| {
            let mut statement =
                c.prepare("SELECT iteration, parent_id, island, status, score, code_hash FROM programs ORDER BY id")?;
            let rows = statement.query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)? as u64))
            })?;
            rows.collect()
        })
    }
}

fn row_to_program(row: &rusqlite::Row<'_>) -> rusqlite::Result<Program> {
    let metrics: String = row.get(6)?;
    let artifacts: String = row.get(7)?;
    Ok(Program {
        id: row.get(0)?,
        parent: row.get(1)?,
        island: row.get(2)?,
        generation: row.get(3)?,
        code: row.get(4)?,
        score: row.get(5)?,
        metrics: serde_json::from_str(&metrics).unwrap_or_default(),
        artifacts: serde_json::from_str(&artifacts).unwrap_or_default(),
    })
}
