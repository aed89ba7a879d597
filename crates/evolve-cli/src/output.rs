//! What the user sees: a progress bar while running, a summary at the end.

use std::io::Write;

use anyhow::Result;
use evolve_core::ProblemSpec;
use evolve_engine::{Event, RunProfile, Summary};
use indicatif::{ProgressBar, ProgressStyle};

/// Live progress: a bar on a terminal, improvement lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    objective: String,
}

impl Progress {
    /// A progress display; `terminal` chooses the bar over plain lines.
    pub fn new(terminal: bool, objective: &str) -> Progress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            objective: objective.to_string(),
        }
    }

    /// Updates the display for one engine event.
    pub fn on_event(&mut self, event: &Event) {
        match event {
            Event::Started { done, target, best } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(*target);
                    bar.set_position(*done);
                    bar.set_message(best_message(&self.objective, *best));
                } else if *done > 0 {
                    eprintln!("resuming at {done}/{target} iterations");
                }
            }
            Event::Iteration {
                iteration,
                score,
                improved,
                best,
                ..
            } => {
                if *improved {
                    let line = format!(
                        "iteration {iteration}: new best {} = {}",
                        self.objective,
                        score.unwrap_or(f64::NAN)
                    );
                    match &self.bar {
                        Some(bar) => bar.println(line),
                        None => eprintln!("{line}"),
                    }
                }
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    bar.set_message(best_message(&self.objective, *best));
                }
            }
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn best_message(objective: &str, best: Option<f64>) -> String {
    best.map(|b| format!("best {objective} {b:.6}"))
        .unwrap_or_default()
}

/// Prints the end-of-run summary (as text or JSON) on stdout.
pub fn print_summary(summary: &Summary, spec: &ProblemSpec, json: bool) -> Result<()> {
    let objective = spec.evaluator.objective.as_str();
    let direction = spec.evaluator.direction;
    let counts = &summary.counts;
    let best_score = summary.best.as_ref().map(|b| b.score);
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "run_dir": summary.run_dir,
            "objective": objective,
            "direction": direction,
            "best_score": best_score,
            "best_id": summary.best.as_ref().map(|b| b.id),
            "initial_score": summary.initial_score,
            "iterations_done": summary.iterations_done,
            "target_iterations": summary.target,
            "evaluated": counts.evaluated,
            "scored": counts.scored,
            "failed": counts.failed,
            "rejected": counts.rejected,
            "migrated": counts.migrated,
            "failures": counts.failures,
            "rejections": counts.rejections,
            "interrupted": summary.interrupted,
            "stop_reason": summary.stop_reason,
            "model_calls": {
                "calls": summary.model_calls.calls,
                "by_outcome": summary.model_calls.by_outcome,
                "tokens": summary.model_calls.tokens,
                "cost_usd": summary.model_calls.cost_usd,
            },
            "profile": profile_json(&summary.profile),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    if summary.interrupted {
        eprintln!(
            "interrupted; continue with: evolve resume {}",
            summary.run_dir.display()
        );
    }
    if let Some(reason) = &summary.stop_reason {
        eprintln!(
            "stopped early: {reason}; continue with: evolve resume {}",
            summary.run_dir.display()
        );
    }
    writeln!(out, "run dir:     {}", summary.run_dir.display())?;
    writeln!(
        out,
        "iterations:  {}/{}",
        summary.iterations_done, summary.target
    )?;
    writeln!(
        out,
        "candidates:  {} evaluated ({} scored, {} failed), {} rejected before evaluation",
        counts.evaluated, counts.scored, counts.failed, counts.rejected,
    )?;
    for (label, reasons) in [
        ("failed:", &counts.failures),
        ("rejected:", &counts.rejections),
    ] {
        if !reasons.is_empty() {
            let listed: Vec<String> = reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(out, "{label:<12} {}", listed.join(", "))?;
        }
    }
    let calls = &summary.model_calls;
    if calls.calls > 0 {
        let outcomes: Vec<String> = calls
            .by_outcome
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            out,
            "model calls: {} ({}); {} tokens, ${:.4}",
            calls.calls,
            outcomes.join(", "),
            calls.tokens,
            calls.cost_usd
        )?;
    }
    if let Some(initial) = summary.initial_score {
        writeln!(out, "initial:     {objective} = {initial}")?;
    }
    match (best_score, summary.initial_score) {
        (Some(best), Some(initial)) => {
            let gain = direction.fitness(best) - direction.fitness(initial);
            writeln!(
                out,
                "best:        {objective} = {best} ({} by {gain:.6})",
                if gain > 0.0 {
                    "improved"
                } else {
                    "not improved"
                }
            )?;
        }
        (Some(best), None) => writeln!(out, "best:        {objective} = {best}")?,
        _ => writeln!(out, "best:        none scored")?,
    }
    writeln!(
        out,
        "export with: evolve export {} -o best.{}",
        summary.run_dir.display(),
        spec.program_extension()
    )?;
    Ok(())
}

fn seconds(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64()
}

/// The timing summary as JSON (durations in seconds).
fn profile_json(profile: &RunProfile) -> serde_json::Value {
    serde_json::json!({
        "startup_s": seconds(profile.startup),
        "startup_cpu_s": seconds(profile.startup_cpu),
        "wall_s": seconds(profile.wall),
        "engine_cpu_s": seconds(profile.engine_cpu),
        "loop_cpu_s": seconds(profile.loop_cpu),
        "loop_cpu_per_candidate_ms": (profile.candidates > 0)
            .then(|| seconds(profile.loop_cpu) * 1e3 / profile.candidates as f64),
        "model_wait_s": seconds(profile.model_wait),
        "evaluating_s": seconds(profile.evaluating),
        "store_s": seconds(profile.store),
        "candidates": profile.candidates,
        "evaluations": profile.evaluations,
        "engine_cpu_per_candidate_ms": profile.cpu_per_candidate().map(|d| d.as_secs_f64() * 1e3),
        "candidates_per_s": profile.candidates_per_second(),
        "mean_evaluation_ms": profile.mean_evaluation().map(|d| d.as_secs_f64() * 1e3),
        "peak_rss_kib": profile.peak_rss_kib,
    })
}

/// Prints where the time of the invocation went, on stderr.
pub fn print_profile(profile: &RunProfile) {
    let each = |total: std::time::Duration, n: u64| {
        if n == 0 {
            String::new()
        } else {
            format!(
                "  ({:.3} ms each over {n})",
                seconds(total) * 1e3 / n as f64
            )
        }
    };
    let rows = [
        (
            "start-up (open store, rebuild population)",
            profile.startup,
            format!("  (CPU {:.3} s)", seconds(profile.startup_cpu)),
        ),
        (
            "loop wall-clock",
            profile.wall,
            format!(
                "  ({} candidates, {:.1}/s)",
                profile.candidates,
                profile.candidates_per_second().unwrap_or(0.0)
            ),
        ),
        (
            "waiting for models (summed)",
            profile.model_wait,
            each(profile.model_wait, profile.candidates),
        ),
        (
            "evaluating (summed)",
            profile.evaluating,
            each(profile.evaluating, profile.evaluations),
        ),
        (
            "in the store",
            profile.store,
            each(profile.store, profile.candidates),
        ),
        (
            "engine CPU (this process, no evaluators)",
            profile.engine_cpu,
            each(profile.engine_cpu, profile.candidates),
        ),
        (
            "  of which the loop thread",
            profile.loop_cpu,
            each(profile.loop_cpu, profile.candidates),
        ),
    ];
    eprintln!("profile:");
    for (name, total, note) in rows {
        eprintln!("  {name:<42} {:>9.3} s{note}", seconds(total));
    }
    if let Some(kib) = profile.peak_rss_kib {
        eprintln!(
            "  {:<42} {:>9.1} MiB",
            "peak resident memory",
            kib as f64 / 1024.0
        );
    }
}
