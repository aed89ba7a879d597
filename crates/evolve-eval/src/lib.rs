//! Runs evaluators as separate, sandboxed processes and turns what they
//! report into an [`EvalOutcome`].
//!
//! Architecture invariant: this is the only crate that forks, execs or
//! signals processes. Each evaluation gets a private temporary directory, a
//! cleared environment, its own process group (terminated, then killed, as a
//! whole when the evaluation ends, so no grandchild survives), a wall-clock
//! timeout, a cap on its output, and whatever further layers this machine
//! supports ([`sandbox::Layers`]): resource limits, a pids cgroup, a private
//! network namespace and Landlock, applied by a re-exec helper.
//!
//! Python evaluators can run in warm workers ([`warm`]) that import the
//! evaluator once and fork a fresh child per candidate.

mod cgroup;
mod judge;
mod landlock;
mod pid_namespace;
mod process;
mod result;
pub mod sandbox;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use evolve_core::{EvalOutcome, EvaluatorKind, EvaluatorSpec, FailureKind, ProblemSpec};
use thiserror::Error;

pub use process::{Captured, Exit};
pub use result::{Report, parse_report};
pub use sandbox::{Layers, MissingLayer, Plan, Support, helper_main, set_launcher};

use crate::judge::{StageRun, merge_stage, stage_outcome};
use crate::warm::{WarmPool, WarmRequest};

/// The Python harness, embedded so the binary works from any directory.
pub const PYTHON_HARNESS: &str = include_str!("../../../evaluators/python/evolve_harness.py");

/// Environment variables passed through to evaluators besides those a problem lists.
const PASSED_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// The Python function evaluated when there are no stages.
const DEFAULT_FUNCTION: &str = "evaluate";

static DEGRADED_WARNING: Once = Once::new();

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
    /// `sandbox = "strict"` asked for layers this machine lacks.
    #[error("sandbox = \"strict\" but this machine lacks: {}", describe_missing(.0))]
    SandboxUnavailable(Vec<MissingLayer>),
}

fn describe_missing(missing: &[MissingLayer]) -> String {
    missing
        .iter()
        .map(|m| format!("{} ({})", m.layer, m.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One step of an evaluation: what to run and how long it may take.
#[derive(Debug, Clone)]
struct Step {
    function: Option<String>,
    command: Option<Vec<String>>,
    timeout_s: f64,
    threshold: Option<f64>,
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
    plan: Plan,
    steps: Vec<Step>,
    warm: Option<WarmPool>,
}

impl Evaluator {
    /// Prepares a scratch directory (holding the Python harness) for `problem`,
    /// with the sandbox layers this machine supports.
    pub fn new(problem: &ProblemSpec) -> Result<Evaluator, EvalError> {
        let limits = &problem.evaluator.sandbox;
        let plan = match Plan::decide(limits, Layers::probe()) {
            Ok((plan, missing)) => {
                if !missing.is_empty() {
                    DEGRADED_WARNING.call_once(|| {
                        tracing::warn!(
                            "evaluating with fewer sandbox layers: {} (`evolve doctor` explains; \
                             sandbox = \"strict\" refuses instead)",
                            describe_missing(&missing)
                        )
                    });
                }
                plan
            }
            Err(missing) => return Err(EvalError::SandboxUnavailable(missing)),
        };
        Evaluator::with_plan(problem, plan)
    }

    /// Like [`Evaluator::new`] with the layers given explicitly.
    pub fn with_plan(problem: &ProblemSpec, plan: Plan) -> Result<Evaluator, EvalError> {
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
        let spec = problem.evaluator.clone();
        let steps = steps_of(&spec);
        let python = std::env::var("EVOLVE_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut evaluator = Evaluator {
            spec,
            problem_dir: problem.dir.clone(),
            extension: problem.program_extension().to_string(),
            scratch,
            harness,
            python,
            plan,
            steps,
            warm: None,
        };
        if let EvaluatorKind::Python { script } = &evaluator.spec.kind
            && evaluator.spec.sandbox.warm_workers
        {
            let argv = vec![
                evaluator.python.clone(),
                evaluator.harness.display().to_string(),
                "--worker".into(),
                script.display().to_string(),
            ];
            let env = evaluator.base_environment(evaluator.scratch.path());
            evaluator.warm = Some(WarmPool::new(
                argv,
                env,
                evaluator.plan.clone(),
                evaluator.scratch.path().to_path_buf(),
            ));
        }
        Ok(evaluator)
    }

    /// Turns warm Python workers off (every candidate then spawns a fresh interpreter).
    pub fn disable_warm_workers(&mut self) {
        self.warm = None;
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
        let mut merged: Option<EvalOutcome> = None;
        let staged = self.steps.len() > 1;
        for (index, step) in self.steps.iter().enumerate() {
            let number = index + 1;
            let result_file = work.path().join(format!("result-{number}.json"));
            let _ = std::fs::remove_file(&result_file);
            let captured = self
                .run_step(step, number, work.path(), &program, &result_file)
                .await?;
            let report = std::fs::read_to_string(&result_file).ok();
            let run = StageRun {
                number: staged.then_some(number),
                timeout_s: step.timeout_s,
                threshold: step.threshold,
                direction: self.spec.direction,
                objective: &self.spec.objective,
            };
            let outcome = stage_outcome(&run, &captured, report.as_deref());
            let failed = outcome.result.is_err();
            merged = Some(merge_stage(merged, outcome, run.number));
            if failed {
                break;
            }
        }
        Ok(merged.unwrap_or_else(|| EvalOutcome::failed(FailureKind::NoResult, "no stage ran")))
    }

    async fn run_step(
        &self,
        step: &Step,
        number: usize,
        work: &Path,
        program: &Path,
        result_file: &Path,
    ) -> std::io::Result<Captured> {
        let mut env = self.base_environment(work);
        env.push(("EVOLVE_RESULT".into(), result_file.display().to_string()));
        env.push(("EVOLVE_CANDIDATE".into(), program.display().to_string()));
        env.push(("EVOLVE_STAGE".into(), number.to_string()));
        let timeout = Duration::from_secs_f64(step.timeout_s);
        let cpu_s = Some(self.spec.sandbox.cpu_seconds(step.timeout_s));
        let function = step.function.as_deref().unwrap_or(DEFAULT_FUNCTION);

        if let (Some(pool), None) = (&self.warm, &step.command) {
            let request = WarmRequest {
                program,
                function,
                result: result_file,
                cwd: work,
                env: &env,
                timeout,
                cpu_s,
            };
            if let Some(captured) = pool.evaluate(&request).await {
                return Ok(captured);
            }
        }

        let mut argv: Vec<String> = match (&step.command, &self.spec.kind) {
            (Some(argv), _) => argv.clone(),
            (None, EvaluatorKind::Python { script }) => vec![
                self.python.clone(),
                self.harness.display().to_string(),
                script.display().to_string(),
            ],
            (None, EvaluatorKind::Command { argv }) => argv.clone(),
        };
        argv.push(program.display().to_string());
        if step.command.is_none() && matches!(self.spec.kind, EvaluatorKind::Python { .. }) {
            argv.push(function.to_string());
        }
        let launch = process::Launch {
            argv: &argv,
            cwd: work,
            env: &env,
            timeout,
            cpu_s,
        };
        process::run(&self.plan, launch).await
    }

    /// The environment every evaluator process gets: an allowlist, never the parent's secrets.
    fn base_environment(&self, work: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = PASSED_ENV
            .iter()
            .copied()
            .map(str::to_string)
            .chain(self.spec.env.iter().cloned())
            .filter_map(|name| std::env::var(&name).ok().map(|value| (name, value)))
            .collect();
        env.push(("HOME".into(), work.display().to_string()));
        env.push(("TMPDIR".into(), work.display().to_string()));
        env.push((
            "EVOLVE_PROBLEM_DIR".into(),
            self.problem_dir.display().to_string(),
        ));
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        env
    }
}

/// The evaluator's steps: its stages, or a single plain evaluation.
fn steps_of(spec: &EvaluatorSpec) -> Vec<Step> {
    if spec.stages.is_empty() {
        return vec![Step {
            function: None,
            command: None,
            timeout_s: spec.timeout_s,
            threshold: None,
        }];
    }
    spec.stages
        .iter()
        .map(|stage| Step {
            function: stage.function.clone(),
            command: stage.command.clone(),
            timeout_s: stage.timeout_s,
            threshold: stage.threshold,
        })
        .collect()
}
