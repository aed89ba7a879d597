//! The subcommands: each turns arguments into calls on the library crates.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use evolve_core::{ModelSpec, ProblemSpec, Program, Provider};
use evolve_engine::{EngineError, Run, RunOptions};
use evolve_eval::Evaluator;
use evolve_llm::{LlmMutator, ReplayMutator, ensemble_name};
use evolve_mutate::Mutator;
use evolve_store::{DB_FILE, ModelCallTotals, Store};

use crate::BadInput;
use crate::output::{Progress, print_profile, print_summary};

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn load_problem(dir: &Path) -> Result<ProblemSpec> {
    let problem = if !dir.exists() {
        format!("{}: no such folder", dir.display())
    } else if dir.is_file() {
        format!(
            "{} is a file; give the problem folder that holds problem.toml",
            dir.display()
        )
    } else if !dir.join(evolve_core::spec::SPEC_FILE).is_file() {
        format!("{}: not a problem folder (no problem.toml)", dir.display())
    } else {
        return Ok(ProblemSpec::load(dir)?);
    };
    Err(BadInput(problem).into())
}

fn open_store(run_dir: &Path) -> Result<Store> {
    if run_dir.is_file() {
        return Err(BadInput(format!(
            "{} is a file; give the run directory that holds {DB_FILE}",
            run_dir.display()
        ))
        .into());
    }
    Store::open(&run_dir.join(DB_FILE))
        .map_err(|e| BadInput(format!("{}: not an evolve run ({e})", run_dir.display())).into())
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A fresh directory under `<problem>/runs/` named by time and seed.
fn default_run_dir(problem: &Path, seed: u64) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "")
        .replace('Z', "");
    let base = problem.join("runs").join(format!("{stamp}-seed{seed}"));
    let mut dir = base.clone();
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

/// Where the candidates of a new run come from.
pub enum Source {
    /// A problem folder, with optional `--model`/`--base-url` overrides.
    Problem {
        /// The problem folder.
        dir: PathBuf,
        /// `provider:model` values from the command line.
        models: Vec<String>,
        /// `--base-url` for those models.
        base_url: Option<String>,
        /// `--request-timeout` for those models.
        request_timeout: Option<f64>,
    },
    /// A recorded run to replay.
    Replay(PathBuf),
}

/// Turns `--model provider:model` values into `[[models]]` entries.
fn models_from_args(
    models: &[String],
    base_url: Option<&str>,
    timeout_s: Option<f64>,
) -> Result<Vec<ModelSpec>> {
    models
        .iter()
        .map(|arg| {
            let (provider, model) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
            let provider = Provider::from_name(provider).ok_or_else(|| {
                BadInput(format!(
                    "--model {arg}: unknown provider {provider:?}; use openai:<model>, anthropic:<model> or local"
                ))
            })?;
            if provider != Provider::Local && model.is_empty() {
                return Err(BadInput(format!("--model {arg}: name the model, as in {}:<model>", provider.as_str())).into());
            }
            let mut spec = ModelSpec::new(provider, model);
            spec.base_url = base_url.map(str::to_string);
            if let Some(timeout_s) = timeout_s {
                spec.timeout_s = timeout_s;
            }
            if let Some((key, message)) = spec.problem() {
                return Err(BadInput(format!("--model {arg}: {key} {message}")).into());
            }
            Ok(spec)
        })
        .collect()
}

/// The model mutator for `spec`, checked against its endpoints; `None` means
/// the offline mutator.
fn model_mutator(
    spec: &ProblemSpec,
    runtime: &tokio::runtime::Runtime,
    spent: Option<&ModelCallTotals>,
) -> Result<Option<Arc<dyn Mutator>>> {
    if spec.models.iter().all(|m| m.provider == Provider::Local) {
        return Ok(None);
    }
    if spec.models.iter().any(|m| m.provider == Provider::Local) {
        return Err(BadInput(
            "the `local` offline mutator cannot be mixed with language models".into(),
        )
        .into());
    }
    let mutator = LlmMutator::new(spec).map_err(|e| BadInput(e.to_string()))?;
    if let Some(spent) = spent {
        mutator.add_spent(spent.tokens, spent.cost_usd);
    }
    runtime
        .block_on(mutator.preflight())
        .map_err(|e| BadInput(e.to_string()))?;
    Ok(Some(Arc::new(mutator)))
}

/// `evolve run`
pub fn run(
    source: Source,
    iterations: Option<u64>,
    seed: Option<u64>,
    out: Option<PathBuf>,
    jobs: Option<usize>,
    json: bool,
    profile: bool,
) -> Result<ExitCode> {
    let runtime = runtime()?;
    let (mut spec, default_target, mutator): (ProblemSpec, Option<u64>, Option<Arc<dyn Mutator>>) =
        match source {
            Source::Problem {
                dir,
                models,
                base_url,
                request_timeout,
            } => {
                let mut spec = load_problem(&dir)?;
                if !models.is_empty() {
                    spec.models = models_from_args(&models, base_url.as_deref(), request_timeout)?;
                }
                let mutator = model_mutator(&spec, &runtime, None)?;
                (spec, None, mutator)
            }
            Source::Replay(recorded) => {
                let store = open_store(&recorded)?;
                let meta = store.run_meta()?;
                let name = ensemble_name(&meta.spec.models);
                let replay = ReplayMutator::new(name, store.model_calls()?);
                (
                    meta.spec,
                    Some(meta.target_iterations),
                    Some(Arc::new(replay)),
                )
            }
        };
    if let Some(seed) = seed {
        spec.evolution.seed = seed;
    }
    if jobs.is_some() {
        spec.evolution.jobs = jobs;
    }
    let target = iterations
        .or(default_target)
        .unwrap_or(spec.evolution.iterations);
    let run_dir = out.unwrap_or_else(|| default_run_dir(&spec.dir, spec.evolution.seed));
    if run_dir.join(DB_FILE).exists() {
        return Err(BadInput(format!(
            "{} already holds a run; use `evolve resume {}`",
            run_dir.display(),
            run_dir.display()
        ))
        .into());
    }
    let fresh_dir = !run_dir.exists();
    let mut run = Run::create(spec, &run_dir, target)?;
    if let Some(mutator) = mutator {
        run.set_mutator(mutator);
    }
    let result = drive(run, &runtime, jobs, json, profile);
    let initial_failed = result.as_ref().err().is_some_and(|e| {
        matches!(
            e.downcast_ref::<EngineError>(),
            Some(EngineError::InitialFailed(_))
        )
    });
    if initial_failed && fresh_dir {
        // A run without a scoring initial program can never continue: keep no dead folder.
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    result
}

/// `evolve resume`
pub fn resume(
    run_dir: &Path,
    iterations: Option<u64>,
    jobs: Option<usize>,
    json: bool,
    profile: bool,
) -> Result<ExitCode> {
    open_store(run_dir)?;
    let runtime = runtime()?;
    let mut run = Run::open(run_dir, iterations)?;
    let spent = run.store().model_call_totals()?;
    if let Some(mutator) = model_mutator(run.spec(), &runtime, Some(&spent))? {
        run.set_mutator(mutator);
    }
    drive(run, &runtime, jobs, json, profile)
}

fn drive(
    mut run: Run,
    runtime: &tokio::runtime::Runtime,
    jobs: Option<usize>,
    json: bool,
    profile: bool,
) -> Result<ExitCode> {
    let options = RunOptions {
        jobs: jobs
            .or(run.spec().evolution.jobs)
            .unwrap_or_else(default_jobs),
    };
    let mut progress = Progress::new(
        std::io::stderr().is_terminal(),
        &run.spec().evaluator.objective,
    );
    let summary = runtime.block_on(async {
        let stop = stop_requested();
        run.execute(&options, |event| progress.on_event(event), stop)
            .await
    })?;
    progress.finish();
    print_summary(&summary, run.spec(), json)?;
    if profile && !json {
        print_profile(&summary.profile);
    }
    Ok(if summary.interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: both stop a run cleanly.
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).ok();
    tokio::select! {
        result = tokio::signal::ctrl_c() => if result.is_err() { std::future::pending::<()>().await },
        Some(()) = async { match terminate.as_mut() { Some(s) => s.recv().await, None => None } } => {}
    }
}

/// The run's spec and its best program, or an error when nothing scored.
fn best_of_run(run_dir: &Path) -> Result<(ProblemSpec, Program)> {
    let store = open_store(run_dir)?;
    let spec = store.run_meta()?.spec;
    match store.best(spec.evaluator.direction)? {
        Some(best) => Ok((spec, best)),
        None => anyhow::bail!(
            "{}: no program of this run has scored yet",
            run_dir.display()
        ),
    }
}

/// `evolve best`
pub fn best(run_dir: &Path, json: bool) -> Result<ExitCode> {
    let (spec, best) = best_of_run(run_dir)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "objective": spec.evaluator.objective,
            "direction": spec.evaluator.direction,
            "score": best.score,
            "id": best.id,
            "island": best.island,
            "generation": best.generation,
            "metrics": best.metrics,
            "artifacts": best.artifacts,
            "program": best.code,
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            stdout,
            "best {}: {} (program #{}, generation {})",
            spec.evaluator.objective, best.score, best.id, best.generation
        )?;
        writeln!(stdout, "metrics:")?;
        for (name, value) in &best.metrics {
            writeln!(stdout, "  {name}: {value}")?;
        }
        write_artifacts(&mut stdout, &best.artifacts)?;
        writeln!(stdout, "--- program ---\n{}", best.code)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `evolve export`
pub fn export(run_dir: &Path, output: Option<&Path>) -> Result<ExitCode> {
    let (spec, best) = best_of_run(run_dir)?;
    match output {
        Some(path) => {
            std::fs::write(path, &best.code)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote the best program ({} = {}) to {}",
                spec.evaluator.objective,
                best.score,
                path.display()
            );
        }
        None => std::io::stdout().lock().write_all(best.code.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `evolve export --front`
pub fn export_front(run_dir: &Path, output: Option<&Path>) -> Result<ExitCode> {
    let store = open_store(run_dir)?;
    let objectives = store.run_meta()?.spec.evolution.objectives;
    if objectives.is_empty() {
        return Err(BadInput(format!(
            "{}: this run declares no `evolution.objectives`, so it has no Pareto front; use `evolve export`",
            run_dir.display()
        ))
        .into());
    }
    let front: Vec<serde_json::Value> = store
        .pareto_front(&objectives)?
        .into_iter()
        .map(|p| serde_json::json!({"id": p.id, "score": p.score, "metrics": p.metrics, "code": p.code}))
        .collect();
    let text = serde_json::to_string_pretty(&front)?;
    match output {
        Some(path) => {
            std::fs::write(path, text + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote the Pareto front ({} programs) to {}",
                front.len(),
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `evolve check`
pub fn check(problem: &Path) -> Result<ExitCode> {
    let spec = load_problem(problem)?;
    println!(
        "problem {:?}: {} ({} {})",
        spec.name,
        spec.dir.display(),
        spec.evaluator.direction.as_str(),
        spec.evaluator.objective
    );
    let code = std::fs::read_to_string(&spec.initial_program)
        .with_context(|| format!("cannot read {}", spec.initial_program.display()))?;
    let evaluator = Evaluator::new(&spec)?;
    let outcome = runtime()?.block_on(evaluator.evaluate(&code));
    println!(
        "evaluated {} in {} ms",
        spec.initial_program.display(),
        outcome.elapsed_ms
    );
    for (name, value) in &outcome.metrics {
        println!("  {name}: {value}");
    }
    let named = spec
        .evolution
        .features
        .iter()
        .map(|f| ("[[evolution.features]]", &f.metric));
    let named = named.chain(
        spec.evolution
            .objectives
            .iter()
            .map(|o| ("[[evolution.objectives]]", &o.metric)),
    );
    for (table, metric) in named {
        let built_in = matches!(metric.as_str(), "code_length" | "code_lines");
        if !built_in && outcome.result.is_ok() && !outcome.metrics.contains_key(metric) {
            println!(
                "warning: {table} names metric `{metric}`, which the initial program's evaluation did not report"
            );
        }
    }
    match &outcome.result {
        Ok(score) => {
            write_artifacts(&mut std::io::stdout().lock(), &outcome.artifacts)?;
            println!("ok: {} = {score}", spec.evaluator.objective);
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("FAILED ({}): {}", failure.kind, failure.detail);
            write_artifacts(&mut std::io::stdout().lock(), &outcome.artifacts)?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints each artifact (evaluator feedback, stderr tail) under its name.
fn write_artifacts(
    out: &mut impl Write,
    artifacts: &evolve_core::Artifacts,
) -> std::io::Result<()> {
    for (name, value) in artifacts {
        writeln!(out, "--- {name} ---\n{}", value.trim_end())?;
    }
    Ok(())
}

/// `evolve doctor`: each sandbox layer and whether this machine supports it.
pub fn doctor() -> Result<ExitCode> {
    let layers = evolve_eval::Layers::probe();
    println!("sandbox layers for evaluators on this machine:");
    for (name, support) in layers.table() {
        println!("  {name:<20} {support}");
    }
    println!(
        "missing layers are skipped with one warning; `sandbox = \"strict\"` in [evaluator] refuses to run without them"
    );
    Ok(ExitCode::SUCCESS)
}
