//! End-to-end throughput benchmark: runs the real `evolve` binary against the
//! stand-in model server on a trivial problem and reports where time goes.
//!
//! ```text
//! throughput --evolve target/release/evolve --standin target/release/evolve-standin \
//!     [--json target/throughput.json] [--sizes 1000,100000] [--quick]
//! ```
//!
//! Scenarios, each on a store pre-filled with every size of `--sizes`:
//! * `overhead`: 0 ms model latency, no-op evaluator: candidates per second
//!   and engine CPU per candidate (the evolve process alone, evaluators excluded);
//! * `latency`: 500 ms model latency, model concurrency 16, `--jobs 2`:
//!   throughput as a share of min(concurrency / latency, jobs / evaluation time
//!   / share of candidates evaluated).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use evolve_core::{ModelSpec, ProblemSpec, Provider};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

/// Model requests in flight in every scenario.
const MODEL_CONCURRENCY: usize = 16;
/// Evaluations in flight in every scenario.
const JOBS: usize = 2;

const PROBLEM_TOML: &str = r#"name = "throughput"
initial_program = "initial.py"

[evaluator]
command = ["./noop.sh"]
objective = "score"
direction = "minimize"
timeout_s = 10

[evolution]
islands = 4
"#;

const NOOP_EVALUATOR: &str = "#!/bin/sh\necho '{\"score\": 1, \"speed\": 0.5}'\n";

struct Scenario {
    name: &'static str,
    latency_ms: u64,
    iterations: u64,
}

struct Args {
    evolve: PathBuf,
    standin: PathBuf,
    json: PathBuf,
    sizes: Vec<u64>,
    quick: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        evolve: "target/release/evolve".into(),
        standin: "target/release/evolve-standin".into(),
        json: "target/throughput.json".into(),
        sizes: vec![1_000, 100_000],
        quick: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        if flag == "--quick" {
            args.quick = true;
            continue;
        }
        let value = given.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--evolve" => args.evolve = value.into(),
            "--standin" => args.standin = value.into(),
            "--json" => args.json = value.into(),
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .map(|n| n.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--sizes {value}: {e}"))?
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(args)
}

/// A running stand-in server, killed when dropped.
struct Standin {
    child: Child,
    base_url: String,
}

impl Standin {
    fn start(binary: &Path, latency_ms: u64) -> Result<Standin, Error> {
        let mut child = Command::new(binary)
            .args(["--port", "0", "--latency-ms", &latency_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("the stand-in has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let base_url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or(format!("unexpected stand-in output {line:?}"))?
            .to_string();
        Ok(Standin { child, base_url })
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_problem(dir: &Path) -> Result<(), Error> {
    std::fs::write(dir.join("problem.toml"), PROBLEM_TOML)?;
    std::fs::write(dir.join("initial.py"), evolve_benches::code(0))?;
    let evaluator = dir.join("noop.sh");
    std::fs::write(&evaluator, NOOP_EVALUATOR)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&evaluator, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Pre-fills a run directory with `size` programs of a run that uses the stand-in.
fn prefill(problem: &Path, run_dir: &Path, size: u64, base_url: &str) -> Result<(), Error> {
    let mut spec = ProblemSpec::load(problem)?;
    let mut model = ModelSpec::new(Provider::OpenAi, "standin");
    model.base_url = Some(base_url.to_string());
    model.max_concurrency = MODEL_CONCURRENCY;
    spec.models = vec![model];
    std::fs::create_dir_all(run_dir)?;
    evolve_benches::build_store_for(run_dir, size, spec)?;
    Ok(())
}

/// Runs `evolve resume` for `more` iterations; returns its JSON summary.
fn resume(evolve: &Path, run_dir: &Path, size: u64, more: u64) -> Result<Value, Error> {
    let output = Command::new(evolve)
        .arg("resume")
        .arg(run_dir)
        .args(["--iterations", &(size + more).to_string()])
        .args(["--jobs", &JOBS.to_string(), "--json"])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("evolve resume failed with {}", output.status).into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn number(profile: &Value, key: &str) -> f64 {
    profile.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("throughput: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let args = parse_args()?;
    let scale = if args.quick { 4 } else { 1 };
    let scenarios = [
        Scenario {
            name: "overhead",
            latency_ms: 0,
            iterations: 600 / scale,
        },
        Scenario {
            name: "latency",
            latency_ms: 500,
            iterations: 480 / scale,
        },
    ];
    let work = tempfile::tempdir()?;
    let problem = work.path().join("problem");
    std::fs::create_dir_all(&problem)?;
    write_problem(&problem)?;
    let mut results = Vec::new();
    for scenario in &scenarios {
        let standin = Standin::start(&args.standin, scenario.latency_ms)?;
        for &size in &args.sizes {
            let run_dir = work.path().join(format!("{}-{size}", scenario.name));
            prefill(&problem, &run_dir, size, &standin.base_url)?;
            eprintln!(
                "{}: {} ms model latency, {size} programs stored, {} iterations ...",
                scenario.name, scenario.latency_ms, scenario.iterations
            );
            let summary = resume(&args.evolve, &run_dir, size, scenario.iterations)?;
            let profile = summary.get("profile").cloned().unwrap_or(Value::Null);
            let throughput = number(&profile, "candidates_per_s");
            let eval_ms = number(&profile, "mean_evaluation_ms");
            let model_limit = if scenario.latency_ms == 0 {
                f64::INFINITY
            } else {
                MODEL_CONCURRENCY as f64 * 1000.0 / scenario.latency_ms as f64
            };
            // Only candidates that pass the duplicate screen take an
            // evaluator slot, so the evaluation bound is scaled up by the
            // share of candidates that were evaluated.
            let evaluated_share = number(&profile, "evaluations") / number(&profile, "candidates");
            let eval_limit = JOBS as f64 * 1000.0 / eval_ms / evaluated_share;
            let limit = model_limit.min(eval_limit);
            results.push(json!({
                "scenario": scenario.name,
                "model_latency_ms": scenario.latency_ms,
                "model_concurrency": MODEL_CONCURRENCY,
                "jobs": JOBS,
                "stored_programs": size,
                "candidates": profile.get("candidates"),
                "candidates_per_s": throughput,
                "engine_cpu_per_candidate_ms": number(&profile, "engine_cpu_per_candidate_ms"),
                "loop_cpu_per_candidate_ms": number(&profile, "loop_cpu_per_candidate_ms"),
                "store_ms_per_candidate": number(&profile, "store_s") * 1e3 / number(&profile, "candidates"),
                "mean_evaluation_ms": eval_ms,
                "evaluated_share": evaluated_share,
                "limit_per_s": limit,
                "share_of_limit": throughput / limit,
                "startup_s": number(&profile, "startup_s"),
                "peak_rss_mib": number(&profile, "peak_rss_kib") / 1024.0,
                "profile": profile,
            }));
        }
    }
    print_table(&results);
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&results)? + "\n")?;
    eprintln!("wrote {}", args.json.display());
    Ok(())
}

fn print_table(results: &[Value]) {
    println!(
        "| scenario | stored | candidates | cand/s | engine CPU ms/cand | loop thread CPU ms/cand | store ms/cand | eval ms | limit/s | share of limit | start-up s | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let f = |key: &str| r.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
        println!(
            "| {} ({} ms) | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} | {:.1} % | {:.2} | {:.1} |",
            r["scenario"].as_str().unwrap_or("?"),
            r["model_latency_ms"],
            r["stored_programs"],
            r["candidates"],
            f("candidates_per_s"),
            f("engine_cpu_per_candidate_ms"),
            f("loop_cpu_per_candidate_ms"),
            f("store_ms_per_candidate"),
            f("mean_evaluation_ms"),
            f("limit_per_s"),
            f("share_of_limit") * 100.0,
            f("startup_s"),
            f("peak_rss_mib"),
        );
    }
}
