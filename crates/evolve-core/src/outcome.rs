//! What an evaluation produces: metrics, artifacts, and success or failure.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Named numeric results of one evaluation.
pub type Metrics = BTreeMap<String, f64>;
/// Named textual results of one evaluation (feedback, logs, summaries).
pub type Artifacts = BTreeMap<String, String>;

/// Whether the objective metric should go up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Larger objective values are better.
    Maximize,
    /// Smaller objective values are better.
    Minimize,
}

impl Direction {
    /// True when `a` is strictly better than `b`.
    pub fn is_better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }

    /// Maps a raw objective to a fitness where larger is always better.
    pub fn fitness(self, objective: f64) -> f64 {
        match self {
            Direction::Maximize => objective,
            Direction::Minimize => -objective,
        }
    }

    /// The lowercase name used in problem.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Maximize => "maximize",
            Direction::Minimize => "minimize",
        }
    }
}

/// Why a candidate failed; each kind is counted separately in run summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The evaluator ran past its wall-clock timeout and was killed.
    Timeout,
    /// The evaluator exited with a non-zero status.
    ExitCode,
    /// The evaluator was killed by a signal.
    Signal,
    /// The evaluator (or the Python harness) reported an exception.
    EvaluatorError,
    /// Neither the result file nor stdout held a JSON object.
    NoResult,
    /// The result was JSON but not of the expected shape.
    BadResult,
    /// The objective metric was absent from the result.
    ObjectiveMissing,
    /// The objective metric was NaN or infinite.
    ObjectiveNotFinite,
    /// The evaluator process could not be started.
    SpawnFailed,
    /// The evaluator ran out of its address-space limit (`memory_mb`).
    MemoryLimit,
    /// The evaluator used up its CPU-seconds limit (`cpu_s`).
    CpuLimit,
    /// The evaluator wrote more than `output_kb` to stdout or stderr.
    OutputTooLarge,
    /// The evaluator tried to write a file larger than `file_size_mb`.
    FileTooLarge,
    /// A cascade stage's objective did not reach its threshold.
    ThresholdNotReached,
}

impl FailureKind {
    /// Every kind, in display order.
    pub const ALL: [FailureKind; 14] = [
        FailureKind::Timeout,
        FailureKind::ExitCode,
        FailureKind::Signal,
        FailureKind::EvaluatorError,
        FailureKind::NoResult,
        FailureKind::BadResult,
        FailureKind::ObjectiveMissing,
        FailureKind::ObjectiveNotFinite,
        FailureKind::SpawnFailed,
        FailureKind::MemoryLimit,
        FailureKind::CpuLimit,
        FailureKind::OutputTooLarge,
        FailureKind::FileTooLarge,
        FailureKind::ThresholdNotReached,
    ];

    /// The stable snake_case name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ExitCode => "exit_code",
            FailureKind::Signal => "signal",
            FailureKind::EvaluatorError => "evaluator_error",
            FailureKind::NoResult => "no_result",
            FailureKind::BadResult => "bad_result",
            FailureKind::ObjectiveMissing => "objective_missing",
            FailureKind::ObjectiveNotFinite => "objective_not_finite",
            FailureKind::SpawnFailed => "spawn_failed",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::CpuLimit => "cpu_limit",
            FailureKind::OutputTooLarge => "output_too_large",
            FailureKind::FileTooLarge => "file_too_large",
            FailureKind::ThresholdNotReached => "threshold_not_reached",
        }
    }

    /// Parses a stored name back into a kind.
    pub fn parse(name: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure: its kind plus a human-readable explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The category, used for counting.
    pub kind: FailureKind,
    /// What exactly went wrong, for the user.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// The result of evaluating one program.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOutcome {
    /// Every finite metric the evaluator reported.
    pub metrics: Metrics,
    /// Every artifact the evaluator reported, plus the stderr tail on failure.
    pub artifacts: Artifacts,
    /// `Ok(objective)` for a scored program, `Err` for a failed one.
    pub result: Result<f64, Failure>,
    /// Wall-clock time the evaluation took, in milliseconds.
    pub elapsed_ms: u64,
}

impl EvalOutcome {
    /// A failed outcome with no metrics.
    pub fn failed(kind: FailureKind, detail: impl Into<String>) -> EvalOutcome {
        EvalOutcome::from(Failure {
            kind,
            detail: detail.into(),
        })
    }

    /// The objective when the program was scored.
    pub fn score(&self) -> Option<f64> {
        self.result.as_ref().ok().copied()
    }
}

impl From<Failure> for EvalOutcome {
    fn from(failure: Failure) -> EvalOutcome {
        EvalOutcome {
            metrics: Metrics::new(),
            artifacts: Artifacts::new(),
            result: Err(failure),
            elapsed_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_compares_and_maps_to_fitness() {
        assert!(Direction::Maximize.is_better(2.0, 1.0));
        assert!(Direction::Minimize.is_better(1.0, 2.0));
        assert!(!Direction::Minimize.is_better(1.0, 1.0));
        assert_eq!(Direction::Minimize.fitness(3.0), -3.0);
    }

    #[test]
    fn failure_kind_names_round_trip() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FailureKind::parse("nope"), None);
    }
}
