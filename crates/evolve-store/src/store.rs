//! The SQLite file of a run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use evolve_core::{
    Artifacts, Direction, Metrics, ObjectiveSpec, ProblemSpec, Program, ProgramId, code_hash,
};
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use crate::pareto;
use crate::population::{Population, PopulationConfig};

/// The `mutation` of a copy made by migration.
pub const MIGRATION: &str = "migration";
/// The `mutation` of a copy that re-seeded an island at reset.
pub const RESET: &str = "reset";

/// The database file inside a run directory.
pub const DB_FILE: &str = "evolve.db";

/// Schema steps in order: step `i` takes a file from version `i` to `i + 1`.
/// A new table or column is a new step appended here, never an edit of an
/// old one, so every file ever written can be brought up to date on open.
const MIGRATIONS: &[&str] = &[
    // 1: the walking skeleton's tables.
    "
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
",
    // 2: population upkeep (migration, island reset) logged per iteration so a
    // resumed run never repeats it; proposal timings; one candidate per iteration.
    "
ALTER TABLE programs ADD COLUMN propose_ms INTEGER NOT NULL DEFAULT 0;
CREATE TABLE upkeep (
    iteration  INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (iteration, kind)
);
CREATE UNIQUE INDEX programs_one_candidate_per_iteration
    ON programs(iteration) WHERE mutation NOT IN ('migration', 'reset');
",
    // 3: every request to a language model, its reply and parse outcome.
    crate::model_calls::MODEL_CALLS_SCHEMA,
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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
    /// Time the mutator or model took to propose it.
    pub propose_ms: u64,
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
    /// Copies made by migration and island reset.
    pub migrated: u64,
    /// Failed candidates by failure kind.
    pub failures: BTreeMap<String, u64>,
    /// Rejected (never evaluated) candidates by reason.
    pub rejections: BTreeMap<String, u64>,
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
        // Built under a temporary name and renamed into place, so a crash
        // while creating never leaves a half-made run behind.
        let building = path.with_extension("db-creating");
        for suffix in ["", "-wal", "-shm"] {
            let mut leftover = building.clone().into_os_string();
            leftover.push(suffix);
            // An earlier creation that crashed; absence is the normal case.
            let _ = std::fs::remove_file(leftover);
        }
        {
            let store = Store::connect(&building)?;
            let spec =
                serde_json::to_string(&meta.spec).map_err(|e| store.incompatible(e.to_string()))?;
            store.migrate_from(0)?;
            store.sql(|c| {
                let tx = c.unchecked_transaction()?;
                for (key, value) in [
                    ("spec", spec),
                    ("target_iterations", meta.target_iterations.to_string()),
                    ("created_at", now().to_string()),
                ] {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        params![key, value],
                    )?;
                }
                tx.commit()?;
                // Fold the WAL into the file before it changes name.
                c.pragma_update(None, "journal_mode", "DELETE")
            })?;
        }
        std::fs::rename(&building, path).map_err(|e| StoreError::Incompatible {
            path: path.into(),
            message: format!("cannot move the new database into place: {e}"),
        })?;
        Store::connect(path)
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
            Some(v) if v > SCHEMA_VERSION => {
                return Err(store.incompatible(format!(
                    "schema version {v} is newer than this evolve supports ({SCHEMA_VERSION})"
                )));
            }
            Some(v) if v >= 1 => store.migrate_from(v)?,
            _ => return Err(store.incompatible("not an evolve run database".into())),
        }
        Ok(store)
    }

    /// Applies every migration step after `version`, each in its own
    /// transaction together with the new version number.
    fn migrate_from(&self, version: i64) -> Result<(), StoreError> {
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let to = step as i64 + 1;
            self.sql(|c| {
                let tx = c.unchecked_transaction()?;
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [to.to_string()],
                )?;
                tx.commit()
            })?;
            if version > 0 {
                tracing::info!("migrated {} to schema version {to}", self.path.display());
            }
        }
        Ok(())
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
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
            // NORMAL under WAL: a commit survives a killed process (the WAL
            // write is in the OS before the commit returns); only a power loss
            // can drop the last commits, which resume then redoes. FULL's fsync
            // per candidate cost ~0.15 ms of CPU and ~0.5 ms of loop time each
            // (`evolve run … --profile`, no-op evaluator).
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            // Reading a large run back on resume goes through memory maps
            // instead of one read call per page.
            c.pragma_update(None, "mmap_size", 1i64 << 30)?;
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
        self.sql(|c| insert_row(c, record))
    }

    /// Appends many candidates in one transaction (bulk loads, tools, benches).
    pub fn insert_many(&self, records: &[Record]) -> Result<Vec<ProgramId>, StoreError> {
        self.sql(|c| {
            let tx = c.unchecked_transaction()?;
            let ids = records
                .iter()
                .map(|r| insert_row(&tx, r))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(ids)
        })
    }

    /// Records population upkeep (`migration` or `reset`) of `iteration` and
    /// the copies it made, atomically: either all of it is on disk or none.
    pub fn record_upkeep(
        &self,
        iteration: u64,
        kind: &str,
        copies: &[Record],
    ) -> Result<Vec<ProgramId>, StoreError> {
        self.sql(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO upkeep (iteration, kind, created_at) VALUES (?1, ?2, ?3)",
                params![iteration as i64, kind, now()],
            )?;
            let ids = copies
                .iter()
                .map(|r| insert_row(&tx, r))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(ids)
        })
    }

    /// True when upkeep `kind` of `iteration` was already recorded.
    pub fn upkeep_done(&self, iteration: u64, kind: &str) -> Result<bool, StoreError> {
        self.sql(|c| {
            c.prepare_cached("SELECT count(*) > 0 FROM upkeep WHERE iteration = ?1 AND kind = ?2")?
                .query_row(params![iteration as i64, kind], |r| r.get(0))
        })
    }

    /// Rebuilds the in-memory population by replaying the stored programs in
    /// the order they were committed (resets included), then the exact
    /// duplicate screen and the child counts.
    pub fn rebuild(&self, config: PopulationConfig) -> Result<Population, StoreError> {
        let mut population = Population::new(config);
        // One pass over the table: a run of a million programs is read once.
        self.sql(|c| {
            let mut statement = c.prepare(
                "SELECT id, parent_id, island, generation, code, score, metrics, artifacts,
                        mutation, status, code_hash
                 FROM programs ORDER BY id",
            )?;
            let mut children: HashMap<ProgramId, u32> = HashMap::new();
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let status = row.get_ref(9)?.as_str().unwrap_or("");
                if status == "rejected" {
                    continue;
                }
                population.mark_evaluated(row.get::<_, i64>(10)? as u64);
                let mutation = row.get_ref(8)?.as_str().unwrap_or("");
                let copy = mutation == MIGRATION || mutation == RESET;
                let parent: Option<ProgramId> = row.get(1)?;
                if let Some(parent) = parent.filter(|_| !copy) {
                    *children.entry(parent).or_default() += 1;
                }
                if status != "scored" {
                    continue;
                }
                let reset = mutation == RESET;
                let program = row_to_program(row)?;
                if reset {
                    population.reset_island(program.island as usize);
                }
                if program.parent.is_none() {
                    population.seed_unindexed(program);
                } else {
                    population.insert_unindexed(Arc::new(program));
                }
            }
            for (parent, count) in children {
                population.set_children(parent, count);
            }
            Ok(())
        })?;
        population.finish_rebuild();
        Ok(population)
    }

    /// The Pareto front of all scored programs over `objectives` (programs
    /// lacking a finite objective metric are left out), in id order.
    pub fn pareto_front(&self, objectives: &[ObjectiveSpec]) -> Result<Vec<Program>, StoreError> {
        let mut front: Vec<(Vec<f64>, Program)> = Vec::new();
        self.sql(|c| {
            let mut statement = c.prepare(
                "SELECT id, parent_id, island, generation, code, score, metrics, artifacts
                 FROM programs WHERE status = 'scored' AND mutation NOT IN ('migration', 'reset')
                 ORDER BY id",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let program = row_to_program(row)?;
                let point: Option<Vec<f64>> = objectives
                    .iter()
                    .map(|o| {
                        program
                            .metrics
                            .get(&o.metric)
                            .filter(|v| v.is_finite())
                            .map(|v| o.direction.fitness(*v))
                    })
                    .collect();
                let Some(point) = point else { continue };
                if front
                    .iter()
                    .any(|(p, _)| pareto::dominates(p, &point) || *p == point)
                {
                    continue;
                }
                front.retain(|(p, _)| !pareto::dominates(&point, p));
                front.push((point, program));
            }
            Ok(())
        })?;
        Ok(front.into_iter().map(|(_, p)| p).collect())
    }

    /// SQLite's own consistency check: `ok` when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.sql(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    }

    /// Iterations already recorded (so a resumed run redoes only the rest).
    pub fn completed_iterations(&self) -> Result<BTreeSet<u64>, StoreError> {
        self.sql(|c| {
            let mut statement =
                c.prepare("SELECT DISTINCT iteration FROM programs WHERE mutation NOT IN ('migration', 'reset')")?;
            let rows = statement.query_map([], |r| r.get::<_, i64>(0).map(|i| i as u64))?;
            rows.collect()
        })
    }

    /// The best scored program under `direction`, ties going to the earliest.
    pub fn best(&self, direction: Direction) -> Result<Option<Program>, StoreError> {
        let order = match direction {
            Direction::Maximize => "DESC",
            Direction::Minimize => "ASC",
        };
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

    /// Totals by status, failure kind and rejection reason.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.sql(|c| {
            let mut counts = Counts::default();
            let mut statement = c.prepare(
                "SELECT status, mutation IN ('migration', 'reset'), coalesce(failure_kind, ''), count(*) FROM programs GROUP BY 1, 2, 3",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let status: String = row.get(0)?;
                let migration: bool = row.get(1)?;
                let reason: String = row.get(2)?;
                let n = row.get::<_, i64>(3)? as u64;
                let by_reason = match (status.as_str(), migration) {
                    (_, true) => {
                        counts.migrated += n;
                        continue;
                    }
                    ("scored", _) => {
                        counts.scored += n;
                        continue;
                    }
                    ("failed", _) => {
                        counts.failed += n;
                        &mut counts.failures
                    }
                    _ => {
                        counts.rejected += n;
                        &mut counts.rejections
                    }
                };
                *by_reason.entry(reason).or_default() += n;
            }
            counts.evaluated = counts.scored + counts.failed;
            Ok(counts)
        })
    }
}

pub(crate) fn insert_row(c: &Connection, record: &Record) -> rusqlite::Result<ProgramId> {
    let metrics = serde_json::to_string(&record.metrics).unwrap_or_else(|_| "{}".into());
    let artifacts = serde_json::to_string(&record.artifacts).unwrap_or_else(|_| "{}".into());
    let mut statement = c.prepare_cached(
        "INSERT INTO programs (iteration, parent_id, island, generation, status, score, code, code_hash,
            metrics, artifacts, failure_kind, failure_detail, mutation, source, eval_ms, propose_ms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
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
        record.propose_ms as i64,
        now(),
    ])?;
    Ok(c.last_insert_rowid())
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

#[cfg(test)]
mod tests {
    use evolve_core::{EvaluatorKind, EvaluatorSpec, EvolutionSpec};

    use super::*;

    fn meta() -> RunMeta {
        RunMeta {
            spec: ProblemSpec {
                name: "t".into(),
                dir: "/tmp".into(),
                initial_program: "/tmp/initial.py".into(),
                description: String::new(),
                evaluator: EvaluatorSpec::new(
                    EvaluatorKind::Command {
                        argv: vec!["true".into()],
                    },
                    "score",
                    Direction::Maximize,
                ),
                evolution: EvolutionSpec::default(),
                models: Vec::new(),
                llm: Default::default(),
            },
            target_iterations: 10,
        }
    }

    fn scored(
        iteration: u64,
        parent: Option<i64>,
        island: u32,
        score: f64,
        metrics: &[(&str, f64)],
    ) -> Record {
        Record {
            iteration,
            parent,
            island,
            generation: 0,
            status: Status::Scored,
            score: Some(score),
            code: format!("x = {iteration}\n"),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            artifacts: Default::default(),
            failure_kind: None,
            failure_detail: None,
            mutation: "numeric".into(),
            source: "offline".into(),
            eval_ms: 1,
            propose_ms: 2,
        }
    }

    #[test]
    fn a_version_1_file_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute("INSERT INTO meta VALUES ('schema_version', '1')", [])
                .unwrap();
            let spec = serde_json::to_string(&meta().spec).unwrap();
            c.execute("INSERT INTO meta VALUES ('spec', ?1)", [spec])
                .unwrap();
            c.execute(
                "INSERT INTO programs (iteration, island, generation, status, score, code, code_hash,
                    metrics, artifacts, mutation, source, eval_ms, created_at)
                 VALUES (0, 0, 0, 'scored', 1.5, 'x', 1, '{}', '{}', 'initial', 'initial', 3, 0)",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.counts().unwrap().scored, 1);
        assert!(!store.upkeep_done(5, MIGRATION).unwrap());
        store.insert(&scored(1, Some(1), 0, 2.0, &[])).unwrap();
        drop(store);
        // Reopening a current file applies nothing and loses nothing.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.counts().unwrap().scored, 2);
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_file_from_a_newer_evolve_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(Store::create(&path, &meta()).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        let error = Store::open(&path).unwrap_err().to_string();
        assert!(error.contains("newer"), "{error}");
    }

    #[test]
    fn an_iteration_holds_one_candidate_but_any_number_of_copies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join(DB_FILE), &meta()).unwrap();
        let first = store.insert(&scored(0, None, 0, 1.0, &[])).unwrap();
        store.insert(&scored(1, Some(first), 0, 1.0, &[])).unwrap();
        assert!(store.insert(&scored(1, Some(first), 0, 2.0, &[])).is_err());
        let copy = |island| Record {
            mutation: MIGRATION.into(),
            ..scored(1, Some(first), island, 1.0, &[])
        };
        let ids = store
            .record_upkeep(1, MIGRATION, &[copy(1), copy(2)])
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(store.upkeep_done(1, MIGRATION).unwrap());
        // Recording the same upkeep twice fails as a whole: no stray copies.
        assert!(store.record_upkeep(1, MIGRATION, &[copy(3)]).is_err());
        let counts = store.counts().unwrap();
        assert_eq!((counts.scored, counts.migrated), (2, 2));
        assert_eq!(store.completed_iterations().unwrap().len(), 2);
    }

    #[test]
    fn rebuild_replays_resets_and_matches_the_live_population() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join(DB_FILE), &meta()).unwrap();
        let mut config = PopulationConfig::simple(2, 3, Direction::Maximize);
        config.novelty_threshold = Some(0.9);
        let mut live = Population::new(config.clone());
        let initial = scored(0, None, 0, 1.0, &[]);
        let root = store.insert(&initial).unwrap();
        live.seed(Program {
            id: root,
            parent: None,
            island: 0,
            generation: 0,
            code: initial.code.clone(),
            score: 1.0,
            metrics: Default::default(),
            artifacts: Default::default(),
        });
        let add = |live: &mut Population, record: Record| {
            let id = store.insert(&record).unwrap();
            if let Some(parent) = record.parent.filter(|_| record.mutation != RESET) {
                live.note_child(parent);
            }
            live.insert(Arc::new(Program {
                id,
                parent: record.parent,
                island: record.island,
                generation: 0,
                code: record.code,
                score: record.score.unwrap(),
                metrics: record.metrics,
                artifacts: record.artifacts,
            }));
            id
        };
        for i in 1..=8u64 {
            add(
                &mut live,
                scored(i, Some(root), (i % 2) as u32, i as f64, &[]),
            );
        }
        // Island 0 is reset with island 1's best.
        let donor = live.island_best(1).unwrap().clone();
        let copy = Record {
            code: donor.code.clone(),
            mutation: RESET.into(),
            ..scored(9, Some(donor.id), 0, donor.score, &[])
        };
        let ids = store
            .record_upkeep(9, RESET, std::slice::from_ref(&copy))
            .unwrap();
        live.reset_island(0);
        live.insert(Arc::new(Program {
            id: ids[0],
            island: 0,
            parent: Some(donor.id),
            ..(*donor).clone()
        }));
        let rebuilt = store.rebuild(config).unwrap();
        for island in 0..2 {
            let ids = |p: &Population| {
                let mut v: Vec<i64> = p.members(island).iter().map(|m| m.id).collect();
                v.sort();
                v
            };
            assert_eq!(ids(&rebuilt), ids(&live), "island {island}");
        }
        assert_eq!(rebuilt.members(0).len(), 1);
        assert_eq!(rebuilt.best().unwrap().score, 8.0);
        assert_eq!(rebuilt.children_of(root), 8);
        assert!(rebuilt.was_evaluated(code_hash("x = 3\n")));
        assert!(rebuilt.near_duplicate(1, &donor.code).is_some());
    }

    #[test]
    fn the_pareto_front_holds_exactly_the_non_dominated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join(DB_FILE), &meta()).unwrap();
        let points = [
            (1.0, 5.0),
            (2.0, 4.0),
            (1.5, 3.0),
            (3.0, 1.0),
            (2.0, 4.0),
            (0.5, 0.5),
        ];
        for (i, (a, b)) in points.iter().enumerate() {
            store
                .insert(&scored(i as u64, None, 0, *a, &[("a", *a), ("b", *b)]))
                .unwrap();
        }
        store
            .insert(&scored(10, None, 0, 9.0, &[("a", 9.0)]))
            .unwrap();
        let objectives = [
            ObjectiveSpec {
                metric: "a".into(),
                direction: Direction::Maximize,
            },
            ObjectiveSpec {
                metric: "b".into(),
                direction: Direction::Maximize,
            },
        ];
        let front: Vec<u64> = store
            .pareto_front(&objectives)
            .unwrap()
            .iter()
            .map(|p| p.id as u64)
            .collect();
        assert_eq!(front, [1, 2, 4]);
    }
}
