//! The `evolve` command-line tool.

mod commands;
mod output;
mod scaffold;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Evolve programs against an evaluator, like AlphaEvolve, on your machine.
#[derive(Debug, Parser)]
#[command(name = "evolve", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a new run on a problem folder.
    Run {
        /// The problem folder (holding problem.toml); not needed with --replay.
        #[arg(required_unless_present = "replay")]
        problem: Option<PathBuf>,
        /// Iterations to run (default: the problem's `evolution.iterations`).
        #[arg(long)]
        iterations: Option<u64>,
        /// The run seed (default: the problem's `evolution.seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// The run directory (default: a new folder under <problem>/runs/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Evaluations in flight at once (default: number of CPU cores); model requests are bounded by each model's `max_concurrency`.
        #[arg(long, short = 'j', value_parser = at_least_one)]
        jobs: Option<usize>,
        /// Print the final summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Print where the time went (models, evaluation, store, engine CPU, peak memory) at the end.
        #[arg(long)]
        profile: bool,
        /// A language model as `provider:model` (e.g. `openai:gpt-4o-mini`,
        /// `anthropic:claude-sonnet-4-5`, `local` for the offline mutator);
        /// repeat for an equal-weight ensemble. Replaces `[[models]]`.
        #[arg(long = "model", value_name = "PROVIDER:MODEL")]
        models: Vec<String>,
        /// Base URL of the model API for --model (e.g. http://127.0.0.1:11434/v1).
        #[arg(long, requires = "models")]
        base_url: Option<String>,
        /// Deadline of one model request in seconds, for --model (default 180).
        #[arg(long, requires = "models", value_name = "SECONDS")]
        request_timeout: Option<f64>,
        /// Re-run a recorded run exactly, serving its stored model replies.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["models", "problem"])]
        replay: Option<PathBuf>,
    },
    /// Continue an interrupted or finished run.
    Resume {
        /// The run directory.
        run_dir: PathBuf,
        /// New total iteration target for the run (default: its original target).
        #[arg(long)]
        iterations: Option<u64>,
        /// Evaluations in flight at once (default: number of CPU cores); model requests are bounded by each model's `max_concurrency`.
        #[arg(long, short = 'j', value_parser = at_least_one)]
        jobs: Option<usize>,
        /// Print the final summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Print where the time went (models, evaluation, store, engine CPU, peak memory) at the end.
        #[arg(long)]
        profile: bool,
    },
    /// Show the best program of a run, its score and metrics.
    Best {
        /// The run directory.
        run_dir: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the best program of a run.
    Export {
        /// The run directory.
        run_dir: PathBuf,
        /// Output file (default: stdout).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Write the Pareto front over `evolution.objectives` as JSON instead.
        #[arg(long)]
        front: bool,
    },
    /// Validate a problem folder and evaluate its initial program once.
    Check {
        /// The problem folder.
        problem: PathBuf,
    },
    /// Create a new, working problem folder to start from.
    New {
        /// The folder to create.
        dir: PathBuf,
    },
    /// Show which sandbox layers this machine supports for evaluators.
    Doctor,
    /// Internal: set up the sandbox in this process, then exec the evaluator.
    #[command(name = "__sandbox", hide = true)]
    Sandbox {
        /// Sandbox options, `--`, then the command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// An error caused by the user's input (exit status 2) rather than by the run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The helper must stay single-threaded and quiet until it execs.
    if let Command::Sandbox { args } = cli.command {
        let status = evolve_eval::helper_main(args);
        return ExitCode::from(u8::try_from(status).unwrap_or(1));
    }
    if let Ok(exe) = std::env::current_exe() {
        evolve_eval::set_launcher(exe);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    let result = match cli.command {
        Command::Run {
            problem,
            iterations,
            seed,
            out,
            jobs,
            json,
            profile,
            models,
            base_url,
            request_timeout,
            replay,
        } => {
            let source = match (problem, replay) {
                (_, Some(recorded)) => Ok(commands::Source::Replay(recorded)),
                (Some(problem), None) => Ok(commands::Source::Problem {
                    dir: problem,
                    models,
                    base_url,
                    request_timeout,
                }),
                (None, None) => {
                    Err(BadInput("give a problem folder, or --replay <run-dir>".into()).into())
                }
            };
            source.and_then(|source| {
                commands::run(source, iterations, seed, out, jobs, json, profile)
            })
        }
        Command::Resume {
            run_dir,
            iterations,
            jobs,
            json,
            profile,
        } => commands::resume(&run_dir, iterations, jobs, json, profile),
        Command::Best { run_dir, json } => commands::best(&run_dir, json),
        Command::Export {
            run_dir,
            output,
            front: true,
        } => commands::export_front(&run_dir, output.as_deref()),
        Command::Export {
            run_dir, output, ..
        } => commands::export(&run_dir, output.as_deref()),
        Command::Check { problem } => commands::check(&problem),
        Command::New { dir } => scaffold::create(&dir),
        Command::Doctor => commands::doctor(),
        Command::Sandbox { .. } => Ok(ExitCode::FAILURE),
    };
    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // stderr may be a closed pipe too; that must not turn into a panic.
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            let bad_input = error.chain().any(|cause| {
                cause.is::<BadInput>()
                    || cause.is::<evolve_core::SpecError>()
                    || matches!(
                        cause.downcast_ref::<evolve_engine::EngineError>(),
                        Some(evolve_engine::EngineError::TargetTooLow { .. })
                    )
            });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// Parses a count that must be at least 1 (`--jobs`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// True when the error is a write to a reader that went away (`evolve best | head`),
/// which is how pipelines end, not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
