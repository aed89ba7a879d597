//! Helpers shared by the integration tests: tiny problem folders and the
//! real `evolve` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The `evolve` binary built for this test run.
pub fn evolve() -> Command {
    let mut command = Command::cargo_bin("evolve").expect("the evolve binary is built");
    command.env_remove("RUST_LOG");
    command
}

/// `evolve run <problem> --out <run_dir> <extra...>`.
pub fn evolve_run(problem: &Path, run_dir: &Path, extra: &[&str]) -> Command {
    let mut command = evolve();
    command
        .arg("run")
        .arg(problem)
        .arg("--out")
        .arg(run_dir)
        .args(extra);
    command
}

/// The repository root, to reach the shipped problems.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A problem folder in a temp dir with the given files.
pub struct Problem {
    pub dir: tempfile::TempDir,
}

impl Problem {
    /// Writes `files` (name, content) into a fresh folder.
    pub fn new(files: &[(&str, &str)]) -> Problem {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, content).expect("write problem file");
        }
        Problem { dir }
    }

    /// The folder path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A run directory inside the problem's temp dir.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("runs").join(name)
    }
}

/// A problem.toml for a command evaluator `score.py` with the given objective settings.
pub fn command_spec(objective: &str, direction: &str, timeout_s: f64) -> String {
    format!(
        "name = \"t\"\ninitial_program = \"initial.py\"\ndescription = \"test\"\n\n[evaluator]\ncommand = [\"python3\", \"score.py\"]\ntimeout_s = {timeout_s}\nobjective = \"{objective}\"\ndirection = \"{direction}\"\n"
    )
}

/// A fast, deterministic problem: maximise -(x-3)^2 - (y+1)^2 with numbers in the block.
pub const QUAD_INITIAL: &str = "\"\"\"frame text\"\"\"\n# EVOLVE-BLOCK-START\nX = 0.5\nY = 0.25\n# EVOLVE-BLOCK-END\nprint('frame end')\n";

/// The Python evaluator of the quadratic problem; `delay` seconds of sleep per call.
pub fn quad_evaluator(delay: f64) -> String {
    format!(
        "import importlib.util, time\n\ndef evaluate(path):\n    time.sleep({delay})\n    spec = importlib.util.spec_from_file_location('cand', path)\n    m = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(m)\n    return {{'score': -(m.X - 3) ** 2 - (m.Y + 1) ** 2, 'x': m.X}}\n"
    )
}

/// problem.toml of the quadratic problem.
pub fn quad_spec(iterations: u64, islands: usize) -> String {
    format!(
        "name = \"quad\"\ninitial_program = \"initial.py\"\ndescription = \"maximise\"\n\n[evaluator]\npython = \"evaluator.py\"\ntimeout_s = 20\nobjective = \"score\"\ndirection = \"maximize\"\n\n[evolution]\niterations = {iterations}\nislands = {islands}\nseed = 3\nmigration_interval = 10\n"
    )
}

/// A quadratic problem folder.
pub fn quad_problem(iterations: u64, delay: f64) -> Problem {
    Problem::new(&[
        ("problem.toml", &quad_spec(iterations, 2)),
        ("initial.py", QUAD_INITIAL),
        ("evaluator.py", &quad_evaluator(delay)),
    ])
}

/// Rows of a run's store that define its history.
pub fn history(
    run_dir: &Path,
) -> Vec<(
    i64,
    Option<i64>,
    i64,
    String,
    Option<f64>,
    String,
    Option<String>,
)> {
    let conn = rusqlite::Connection::open(run_dir.join("evolve.db")).expect("open store");
    let mut statement = conn
        .prepare("SELECT iteration, parent_id, island, status, score, code, failure_kind FROM programs ORDER BY id")
        .expect("query");
    statement
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("decode")
}

/// Rows committed so far, or None while the store is still being created.
pub fn rows_so_far(run_dir: &Path) -> Option<usize> {
    let conn = rusqlite::Connection::open(run_dir.join("evolve.db")).ok()?;
    conn.query_row("SELECT count(*) FROM programs", [], |r| r.get::<_, i64>(0))
        .ok()
        .map(|n| n as usize)
}
