//! The evaluator protocol: turning a result file or stdout into metrics.
//!
//! A result is one JSON object, either `{"metrics": {...}, "artifacts": {...}}`
//! or flat (numbers are metrics, strings are artifacts). The file named by
//! `EVOLVE_RESULT` wins; otherwise the last stdout line holding a JSON object
//! is used. Bare `NaN`/`Infinity` tokens (as Python's `json` writes them) and
//! the strings `"NaN"`, `"Infinity"`, `"-Infinity"` in metrics are read as
//! non-finite numbers, so such a candidate fails instead of being lost.

use evolve_core::{Artifacts, EvalOutcome, Failure, FailureKind, Metrics};
use serde_json::{Map, Value};

/// A decoded evaluator report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Numeric results, non-finite ones included.
    pub metrics: Metrics,
    /// Textual results.
    pub artifacts: Artifacts,
    /// An error the evaluator (or harness) reported instead of metrics.
    pub error: Option<String>,
}

impl Report {
    /// Judges the report against the objective metric.
    pub fn into_outcome(self, objective: &str) -> EvalOutcome {
        let (finite, non_finite): (Metrics, Metrics) =
            self.metrics.into_iter().partition(|(_, v)| v.is_finite());
        let mut artifacts = self.artifacts;
        if !non_finite.is_empty() {
            let listed: Vec<String> = non_finite.iter().map(|(k, v)| format!("{k}={v}")).collect();
            artifacts.insert("non_finite_metrics".into(), listed.join(", "));
        }
        let result = match (finite.get(objective), non_finite.get(objective)) {
            (Some(&score), _) => Ok(score),
            (None, Some(value)) => Err(Failure {
                kind: FailureKind::ObjectiveNotFinite,
                detail: format!("objective `{objective}` is {value}"),
            }),
            (None, None) if artifacts.contains_key(objective) => Err(Failure {
                kind: FailureKind::ObjectiveMissing,
                detail: format!(
                    "objective `{objective}` was reported as text ({:?}), not as a number",
                    artifacts[objective]
                ),
            }),
            (None, None) => {
                let names: Vec<&str> = finite.keys().map(String::as_str).collect();
                Err(Failure {
                    kind: FailureKind::ObjectiveMissing,
                    detail: format!(
                        "objective `{objective}` not among the metrics reported: [{}]",
                        names.join(", ")
                    ),
                })
            }
        };
        EvalOutcome {
            metrics: finite,
            artifacts,
            result,
            elapsed_ms: 0,
        }
    }
}

/// Decodes the result file (if any) or, failing that, stdout.
pub fn parse_report(file: Option<&str>, stdout: &str) -> Result<Report, Failure> {
    if let Some(text) = file.filter(|t| !t.trim().is_empty()) {
        return match parse_object(text.trim()) {
            Some(object) => decode(object),
            None => Err(Failure {
                kind: FailureKind::BadResult,
                detail: format!("result file is not a JSON object: {}", preview(text)),
            }),
        };
    }
    let object = stdout
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(parse_object);
    match object {
        Some(object) => decode(object),
        None => Err(Failure {
            kind: FailureKind::NoResult,
            detail:
                "evaluator wrote no result file ($EVOLVE_RESULT) and no JSON object line on stdout"
                    .into(),
        }),
    }
}

fn preview(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn parse_object(text: &str) -> Option<Map<String, Value>> {
    let value = serde_json::from_str::<Value>(text)
        .ok()
        .or_else(|| serde_json::from_str(&quote_non_finite(text)).ok())?;
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Rewrites bare `NaN`, `Infinity` and `-Infinity` tokens outside strings as strings.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push('"');
            out.push_str(token);
            out.push('"');
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn bad_result(detail: &str) -> Failure {
    Failure {
        kind: FailureKind::BadResult,
        detail: detail.into(),
    }
}

fn decode(mut object: Map<String, Value>) -> Result<Report, Failure> {
    let mut report = Report::default();
    if let Some(error) = object.remove("error").filter(|e| !e.is_null()) {
        report.error = Some(text(error));
        if let Some(trace) = object.remove("traceback") {
            report.artifacts.insert("traceback".into(), text(trace));
        }
        return Ok(report);
    }
    let (metrics, artifacts) = match object.remove("metrics") {
        Some(Value::Object(metrics)) => (metrics, object.remove("artifacts")),
        Some(_) => return Err(bad_result("`metrics` must be an object")),
        None => (object, None),
    };
    for (name, value) in metrics {
        match number(&value) {
            Some(n) => {
                report.metrics.insert(name, n);
            }
            None => {
                report.artifacts.insert(name, text(value));
            }
        }
    }
    match artifacts {
        Some(Value::Object(artifacts)) => report
            .artifacts
            .extend(artifacts.into_iter().map(|(k, v)| (k, text(v)))),
        None | Some(Value::Null) => {}
        Some(_) => return Err(bad_result("`artifacts` must be an object")),
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(file: Option<&str>, stdout: &str) -> EvalOutcome {
        match parse_report(file, stdout) {
            Ok(report) => report.into_outcome("score"),
            Err(failure) => EvalOutcome::from(failure),
        }
    }

    #[test]
    fn nested_and_flat_shapes() {
        let nested = outcome(
            Some(r#"{"metrics": {"score": 2, "t": 1.5}, "artifacts": {"note": "hi"}}"#),
            "",
        );
        assert_eq!(nested.score(), Some(2.0));
        assert_eq!(nested.artifacts["note"], "hi");
        let flat = outcome(Some(r#"{"score": 3.5, "log": "text", "ok": true}"#), "");
        assert_eq!(flat.score(), Some(3.5));
        assert_eq!(flat.metrics["ok"], 1.0);
        assert_eq!(flat.artifacts["log"], "text");
    }

    #[test]
    fn stdout_fallback_takes_the_last_json_line() {
        let stdout = "progress...\n{\"score\": 1}\nmore noise\n{\"score\": 7}\ntrailing text\n";
        assert_eq!(outcome(None, stdout).score(), Some(7.0));
        assert_eq!(outcome(Some("  "), stdout).score(), Some(7.0));
    }

    #[test]
    fn non_finite_objectives_fail() {
        for text in [
            r#"{"score": NaN}"#,
            r#"{"metrics": {"score": "Infinity"}}"#,
            r#"{"score": -Infinity}"#,
            r#"{"score": "NaN"}"#,
        ] {
            let result = outcome(Some(text), "").result;
            assert_eq!(
                result.unwrap_err().kind,
                FailureKind::ObjectiveNotFinite,
                "{text}"
            );
        }
    }

    #[test]
    fn missing_objective_lists_what_was_reported() {
        let failure = outcome(Some(r#"{"other": 1}"#), "").result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::ObjectiveMissing);
        assert!(failure.detail.contains("[other]"), "{}", failure.detail);
    }

    #[test]
    fn non_numeric_objective_is_missing() {
        let failure = outcome(Some(r#"{"score": "high"}"#), "")
            .result
            .unwrap_err();
        assert_eq!(failure.kind, FailureKind::ObjectiveMissing);
        assert!(
            failure.detail.contains("as text (\"high\")"),
            "{}",
            failure.detail
        );
    }

    #[test]
    fn garbage_and_absence_are_distinct_failures() {
        assert_eq!(
            outcome(Some("not json"), "").result.unwrap_err().kind,
            FailureKind::BadResult
        );
        assert_eq!(
            outcome(None, "no json here").result.unwrap_err().kind,
            FailureKind::NoResult
        );
        assert_eq!(
            outcome(Some("[1, 2]"), "").result.unwrap_err().kind,
            FailureKind::BadResult
        );
    }

    #[test]
    fn nan_inside_strings_is_left_alone() {
        let ok = outcome(
            Some(r#"{"score": 1, "note": "NaN appears here", "x": NaN}"#),
            "",
        );
        assert_eq!(ok.score(), Some(1.0));
        assert_eq!(ok.artifacts["note"], "NaN appears here");
        assert!(ok.artifacts["non_finite_metrics"].contains("x=NaN"));
    }
}
