//! Turning what one evaluator process did into an outcome, with the reason
//! for a failure told as precisely as the evidence allows, and merging the
//! outcomes of cascade stages.

use evolve_core::{Direction, EvalOutcome, Failure, FailureKind};

use crate::process::{Captured, Exit};
use crate::result::parse_report;
use crate::sandbox::helper_failure;

/// How much of stderr is kept as the `stderr` artifact of a failed candidate.
const STDERR_ARTIFACT_BYTES: usize = 4096;

const SIGXCPU: i32 = libc::SIGXCPU;
const SIGXFSZ: i32 = libc::SIGXFSZ;

/// What a stage is judged against.
pub(crate) struct StageRun<'a> {
    /// The 1-based stage number, when the evaluation is a cascade.
    pub number: Option<usize>,
    /// The stage's wall-clock limit, for the failure message.
    pub timeout_s: f64,
    /// The objective the stage must reach.
    pub threshold: Option<f64>,
    /// Whether the objective rises or falls.
    pub direction: Direction,
    /// The objective metric's name.
    pub objective: &'a str,
}

/// Judges one stage from its process and report.
pub(crate) fn stage_outcome(
    run: &StageRun,
    captured: &Captured,
    report: Option<&str>,
) -> EvalOutcome {
    let stdout = String::from_utf8_lossy(&captured.stdout);
    let parsed = parse_report(report, &stdout);
    let failed = |kind, detail: String| EvalOutcome::failed(kind, detail);
    let mut outcome = match (&captured.exit, parsed) {
        (Exit::TimedOut, _) => failed(
            FailureKind::Timeout,
            format!(
                "evaluation exceeded the {} s timeout; its process group was terminated",
                run.timeout_s
            ),
        ),
        (Exit::OutputExceeded, _) => failed(
            FailureKind::OutputTooLarge,
            "evaluator output exceeded `output_kb`; the rest was dropped and the process group killed"
                .into(),
        ),
        (Exit::Code(crate::sandbox::HELPER_FAILED), _)
            if helper_failure(&captured.stderr).is_some() =>
        {
            failed(
                FailureKind::SpawnFailed,
                format!(
                    "sandbox set-up failed: {}",
                    helper_failure(&captured.stderr).unwrap_or_default()
                ),
            )
        }
        (_, Ok(report)) if report.error.is_some() => {
            let error = report.error.clone().unwrap_or_default();
            let mut outcome = failed(classify_error(&error, FailureKind::EvaluatorError), error);
            outcome.artifacts = report.artifacts;
            outcome
        }
        (Exit::Code(0), Ok(report)) => report.into_outcome(run.objective),
        (Exit::Code(0), Err(failure)) => EvalOutcome::from(failure),
        (Exit::Code(code), _) => {
            let last = last_line(&captured.stderr);
            failed(
                classify_error(&last, FailureKind::ExitCode),
                format!("evaluator exited with status {code}{last}"),
            )
        }
        (Exit::Signal(signal), _) => {
            let (kind, why) = match *signal {
                SIGXCPU => (FailureKind::CpuLimit, " (SIGXCPU: CPU-seconds limit `cpu_s` reached)"),
                SIGXFSZ => (FailureKind::FileTooLarge, " (SIGXFSZ: file size limit `file_size_mb` reached)"),
                _ => (FailureKind::Signal, ""),
            };
            failed(
                kind,
                format!(
                    "evaluator was killed by signal {signal}{why}{}",
                    last_line(&captured.stderr)
                ),
            )
        }
    };
    if let (Ok(score), Some(threshold)) = (&outcome.result, run.threshold)
        && *score != threshold
        && !run.direction.is_better(*score, threshold)
    {
        outcome.result = Err(Failure {
            kind: FailureKind::ThresholdNotReached,
            detail: format!(
                "{} = {score} did not reach the threshold {threshold}",
                run.objective
            ),
        });
    }
    if let (Err(failure), Some(number)) = (&mut outcome.result, run.number) {
        failure.detail = format!("stage {number}: {}", failure.detail);
    }
    // The harness already reports a Python traceback; its stderr copy would repeat it.
    let has_traceback = outcome.artifacts.contains_key("traceback");
    if outcome.result.is_err() && !captured.stderr.is_empty() && !has_traceback {
        outcome.artifacts.insert(
            "stderr".into(),
            tail(&captured.stderr, STDERR_ARTIFACT_BYTES),
        );
    }
    outcome
}

/// The failure kind an error message points at (Python exception names and
/// the C library's texts for ENOMEM and EFBIG), else `otherwise`.
fn classify_error(error: &str, otherwise: FailureKind) -> FailureKind {
    if error.contains("MemoryError") || error.contains("Cannot allocate memory") {
        FailureKind::MemoryLimit
    } else if error.contains("File too large") {
        FailureKind::FileTooLarge
    } else {
        otherwise
    }
}

/// Adds a stage's outcome to those of earlier stages: metrics of all stages
/// are kept (an earlier value a later stage overwrites stays as
/// `stage<N>.<name>`), and the latest stage decides success.
pub(crate) fn merge_stage(
    earlier: Option<EvalOutcome>,
    mut latest: EvalOutcome,
    number: Option<usize>,
) -> EvalOutcome {
    let Some(mut merged) = earlier else {
        return latest;
    };
    let previous = number.map_or(0, |n| n.saturating_sub(1));
    for (name, value) in std::mem::take(&mut latest.metrics) {
        if let Some(old) = merged.metrics.insert(name.clone(), value) {
            merged
                .metrics
                .insert(format!("stage{previous}.{name}"), old);
        }
    }
    for (name, value) in std::mem::take(&mut latest.artifacts) {
        if let Some(old) = merged.artifacts.insert(name.clone(), value) {
            merged
                .artifacts
                .insert(format!("stage{previous}.{name}"), old);
        }
    }
    merged.result = latest.result;
    merged
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(threshold: Option<f64>, direction: Direction) -> StageRun<'static> {
        StageRun {
            number: Some(1),
            timeout_s: 1.0,
            threshold,
            direction,
            objective: "score",
        }
    }

    fn exited(code: i32, stdout: &str, stderr: &str) -> Captured {
        Captured {
            exit: Exit::Code(code),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn thresholds_follow_the_direction() {
        let ok = exited(0, "{\"score\": 5}\n", "");
        let kind = |r: &StageRun| stage_outcome(r, &ok, None).result.map_err(|f| f.kind);
        assert_eq!(kind(&run(Some(4.0), Direction::Maximize)), Ok(5.0));
        assert_eq!(kind(&run(Some(5.0), Direction::Maximize)), Ok(5.0));
        assert_eq!(
            kind(&run(Some(6.0), Direction::Maximize)),
            Err(FailureKind::ThresholdNotReached)
        );
        assert_eq!(kind(&run(Some(6.0), Direction::Minimize)), Ok(5.0));
        assert_eq!(
            kind(&run(Some(4.0), Direction::Minimize)),
            Err(FailureKind::ThresholdNotReached)
        );
    }

    #[test]
    fn limits_are_told_apart() {
        let r = run(None, Direction::Maximize);
        let kind = |c: Captured, report: Option<&str>| {
            stage_outcome(&r, &c, report).result.unwrap_err().kind
        };
        let signalled = |signal| Captured {
            exit: Exit::Signal(signal),
            stdout: vec![],
            stderr: vec![],
        };
        assert_eq!(kind(signalled(libc::SIGXCPU), None), FailureKind::CpuLimit);
        assert_eq!(kind(signalled(libc::SIGSEGV), None), FailureKind::Signal);
        assert_eq!(
            kind(exited(1, "", ""), Some(r#"{"error": "MemoryError: "}"#)),
            FailureKind::MemoryLimit
        );
        assert_eq!(
            kind(
                exited(1, "", ""),
                Some(r#"{"error": "OSError: [Errno 27] File too large"}"#)
            ),
            FailureKind::FileTooLarge
        );
        assert_eq!(
            kind(exited(125, "", "evolve-sandbox: unshare: EPERM\n"), None),
            FailureKind::SpawnFailed
        );
    }

    #[test]
    fn merged_stages_keep_every_metric() {
        let first = stage_outcome(
            &run(Some(1.0), Direction::Maximize),
            &exited(0, "{\"score\": 2, \"quick\": 1}\n", ""),
            None,
        );
        let mut second_run = run(None, Direction::Maximize);
        second_run.number = Some(2);
        let second = stage_outcome(
            &second_run,
            &exited(0, "{\"score\": 3, \"full\": 7}\n", ""),
            None,
        );
        let merged = merge_stage(Some(first), second, Some(2));
        assert_eq!(merged.score(), Some(3.0));
        assert_eq!(merged.metrics["quick"], 1.0);
        assert_eq!(merged.metrics["full"], 7.0);
        assert_eq!(merged.metrics["stage1.score"], 2.0);
    }
}
