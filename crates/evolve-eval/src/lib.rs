//! Runs evaluators as separate processes and turns what they report into an
//! [`EvalOutcome`].
//!
//! Architecture invariant: this is the only crate that spawns or signals
//! processes. Each evaluation gets a private temporary directory, a cleared
//! environment, its own process group (killed as a whole when the evaluation
//! ends, so no grandchild survives), and a wall-clock timeout.

mod process;
mod result;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evolve_core::{EvalOutcome, EvaluatorKind, EvaluatorSpec, FailureKind, ProblemSpec};
use thiserror::Error;

pub use process::{Captured, Exit, OUTPUT_CAP};
pub use result::{Report, parse_report};

/// The Python harness, embedded so the binary works from any directory.
pub const PYTHON_HARNESS: &str = include_str!("../../../evaluators/python/evolve_harness.py");

/// Environment variables passed through to evaluators besides those a problem lists.
const PASSED_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// How much of stderr is kept as the `stderr` artifact of a failed candidate.
const STDERR_ARTIFACT_BYTES: usize = 4096;

/// The evaluator could not be set up at all (distinct from a candidate failing).
#[derive(Debug, Error)]
pub enum EvalError {
    /// The scratch directory or harness file could not be created.
    #[error("cannot prepare the evaluation directory {path}: {source}")]
    Scratch {
        /// The directory at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Scores candidate programs with a problem's evaluator.
#[derive(Debug)]
pub struct Evaluator {
    spec: EvaluatorSpec,
    problem_dir: PathBuf,
    extension: String,
    scratch: tempfile::TempDir,
    harness: PathBuf,
    python: String,
}

impl Evaluator {
    /// Prepares a scratch directory (holding the Python harness) for `problem`.
    pub fn new(problem: &ProblemSpec) -> Result<Evaluator, EvalError> {
        let scratch = tempfile::Builder::new()
            .prefix("evolve-eval-")
            .tempdir()
            .map_err(|source| EvalError::Scratch {
                path: std::env::temp_dir(),
                source,
            })?;
        let harness = scratch.path().join("evolve_harness.py");
        std::fs::write(&harness, PYTHON_HARNESS).map_err(|source| EvalError::Scratch {
            path: harness.clone(),
            source,
        })?;
        Ok(Evaluator {
            spec: problem.evaluator.clone(),
            problem_dir: problem.dir.clone(),
            extension: problem.program_extension().to_string(),
            scratch,
            harness,
            python: std::env::var("EVOLVE_PYTHON").unwrap_or_else(|_| "python3".into()),
        })
    }

    /// Evaluates one program; never fails, a broken candidate is a failed outcome.
    pub async fn evaluate(&self, code: &str) -> EvalOutcome {
        let started = Instant::now();
        let mut outcome = match self.run(code).await {
            Ok(outcome) => outcome,
            Err(error) => EvalOutcome::failed(FailureKind::SpawnFailed, error.to_string()),
        };
        outcome.elapsed_ms = started.elapsed().as_millis() as u64;
        outcome
    }

    async fn run(&self, code: &str) -> std::io::Result<EvalOutcome> {
        let work = tempfile::Builder::new()
            .prefix("candidate-")
            .tempdir_in(self.scratch.path())?;
        let program = work.path().join(format!("candidate.{}", self.extension));
        std::fs::write(&program, code)?;
        let result_file = work.path().join("result.json");

        let mut argv: Vec<String> = match &self.spec.kind {
            EvaluatorKind::Python { script } => {
                vec![
                    self.python.clone(),
                    self.harness.display().to_string(),
                    script.display().to_string(),
                ]
            }
            EvaluatorKind::Command { argv } => argv.clone(),
        };
        argv.push(program.display().to_string());
        let env = self.environment(work.path(), &program, &result_file);
        let timeout = Duration::from_secs_f64(self.spec.timeout_s);

        let captured = process::run(&argv, work.path(), &env, timeout).await?;
        let report = std::fs::read_to_string(&result_file).ok();
        Ok(self.judge(&captured, report.as_deref()))
    }

    fn environment(&self, work: &Path, program: &Path, result: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = PASSED_ENV
            .iter()
            .copied()
            .map(str::to_string)
            .chain(self.spec.env.iter().cloned())
            .filter_map(|name| std::env::var(&name).ok().map(|value| (name, value)))
            .collect();
        env.push(("HOME".into(), work.display().to_string()));
        env.push(("EVOLVE_RESULT".into(), result.display().to_string()));
        env.push(("EVOLVE_CANDIDATE".into(), program.display().to_string()));
        env.push((
            "EVOLVE_PROBLEM_DIR".into(),
            self.problem_dir.display().to_string(),
        ));
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        env
    }

    fn judge(&self, captured: &Captured, report: Option<&str>) -> EvalOutcome {
        let stdout = String::from_utf8_lossy(&captured.stdout);
        let parsed = parse_report(report, &stdout);
        let mut outcome = match (&captured.exit, parsed) {
            (Exit::TimedOut, _) => EvalOutcome::failed(
                FailureKind::Timeout,
                format!(
                    "evaluation exceeded the {} s timeout and was killed",
                    self.spec.timeout_s
                ),
            ),
            (_, Ok(report)) if report.error.is_some() => {
                let mut outcome = EvalOutcome::failed(
                    FailureKind::EvaluatorError,
                    report.error.clone().unwrap_or_default(),
                );
                outcome.artifacts = report.artifacts;
                outcome
            }
            (Exit::Code(0), Ok(report)) => report.into_outcome(&self.spec.objective),
            (Exit::Code(0), Err(failure)) => EvalOutcome::from(failure),
            (Exit::Code(code), _) => EvalOutcome::failed(
                FailureKind::ExitCode,
                format!(
                    "evaluator exited with status {code}{}",
                    last_line(&captured.stderr)
                ),
            ),
            (Exit::Signal(signal), _) => EvalOutcome::failed(
                FailureKind::Signal,
                format!(
                    "evaluator was killed by signal {signal}{}",
                    last_line(&captured.stderr)
                ),
            ),
        };
        if outcome.result.is_err() && !captured.stderr.is_empty() {
            outcome.artifacts.insert(
                "stderr".into(),
                tail(&captured.stderr, STDERR_ARTIFACT_BYTES),
            );
        }
        if captured.truncated {
            outcome.artifacts.insert(
                "output_truncated".into(),
                format!("output beyond {OUTPUT_CAP} bytes per stream was dropped"),
            );
        }
        outcome
    }
}

/// The last non-empty stderr line, formatted as `: line` for failure details.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
