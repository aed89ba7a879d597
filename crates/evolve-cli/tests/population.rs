//! End-to-end tests of the population settings through the real binary:
//! determinism across resume, the Pareto front export, the novelty filter,
//! and clear errors for bad keys.

mod shell_problem;

use std::path::Path;

use rusqlite::Connection;
use shell_problem::{evolve, problem};

type Row = (i64, Option<i64>, i64, String, Option<f64>, i64, String);

fn history(run_dir: &Path) -> Vec<Row> {
    let db = Connection::open(run_dir.join("evolve.db")).unwrap();
    let mut statement = db
        .prepare(
            "SELECT iteration, parent_id, island, status, score, code_hash, mutation
             FROM programs ORDER BY iteration, mutation, island",
        )
        .unwrap();
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
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn run(problem_dir: &Path, run_dir: &Path, iterations: u64) -> serde_json::Value {
    let output = evolve()
        .arg("run")
        .arg(problem_dir)
        .arg("--out")
        .arg(run_dir)
        .args(["--jobs", "1", "--json", "--iterations"])
        .arg(iterations.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

const EVOLUTION: &str = "islands = 3\nmigration_interval = 5\nreset_interval = 12\nseed = 4\n\
    selection = \"tournament\"\nmigration_topology = \"all\"\n\n\
    [[evolution.features]]\nmetric = \"x\"\nmin = -5\nmax = 5\nbins = 4\n";

#[test]
fn one_job_runs_repeat_exactly_even_across_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    problem(dir.path(), EVOLUTION);
    let straight = dir.path().join("straight");
    run(dir.path(), &straight, 40);
    let again = dir.path().join("again");
    run(dir.path(), &again, 40);
    assert_eq!(history(&straight), history(&again));

    let split = dir.path().join("split");
    run(dir.path(), &split, 17);
    let output = evolve()
        .arg("resume")
        .arg(&split)
        .args(["--jobs", "1", "--iterations", "40"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let resumed = history(&split);
    assert_eq!(resumed, history(&straight));
    assert!(resumed.iter().any(|r| r.6 == "migration"));
    assert!(resumed.iter().any(|r| r.6 == "reset"));
}

#[test]
fn a_multi_objective_run_exports_its_pareto_front() {
    let dir = tempfile::tempdir().unwrap();
    problem(
        dir.path(),
        "islands = 2\n\n[[evolution.objectives]]\nmetric = \"score\"\ndirection = \"maximize\"\n\n\
         [[evolution.objectives]]\nmetric = \"y\"\ndirection = \"maximize\"\n",
    );
    let run_dir = dir.path().join("run");
    run(dir.path(), &run_dir, 30);
    let output = evolve()
        .arg("export")
        .arg(&run_dir)
        .arg("--front")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let front: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!front.is_empty());
    let point = |p: &serde_json::Value| {
        (
            p["metrics"]["score"].as_f64().unwrap(),
            p["metrics"]["y"].as_f64().unwrap(),
        )
    };
    for a in &front {
        for b in &front {
            let (pa, pb) = (point(a), point(b));
            let dominates = pa.0 >= pb.0 && pa.1 >= pb.1 && pa != pb;
            assert!(!dominates, "{pa:?} dominates {pb:?} inside the front");
        }
    }
    // The best score of the run is on the front.
    let best = evolve()
        .arg("best")
        .arg(&run_dir)
        .arg("--json")
        .output()
        .unwrap();
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    let best_score = best["score"].as_f64().or(best["best_score"].as_f64());
    assert!(front.iter().any(|p| p["score"].as_f64() == best_score));

    // A single-objective run has no front to offer.
    let plain = tempfile::tempdir().unwrap();
    problem(plain.path(), "");
    run(plain.path(), &plain.path().join("run"), 2);
    let output = evolve()
        .arg("export")
        .arg(plain.path().join("run"))
        .arg("--front")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("evolution.objectives"));
}

#[test]
fn the_novelty_filter_rejects_near_duplicates_before_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    problem(dir.path(), "islands = 1\nnovelty_threshold = 0.3\n");
    let summary = run(dir.path(), &dir.path().join("run"), 20);
    let near = summary["rejections"]["near_duplicate"]
        .as_u64()
        .unwrap_or(0);
    assert!(near > 0, "{summary}");
    let db = Connection::open(dir.path().join("run/evolve.db")).unwrap();
    let unevaluated: u64 = db
        .query_row(
            "SELECT count(*) FROM programs WHERE failure_kind = 'near_duplicate'
             AND status = 'rejected' AND eval_ms = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unevaluated, near);
}

#[test]
fn bad_population_keys_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    problem(dir.path(), "selection = \"greedy\"\n");
    let output = evolve().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("problem.toml:11:") && stderr.contains("evolution.selection"),
        "{stderr}"
    );
    problem(
        dir.path(),
        "[[evolution.features]]\nmetric = \"x\"\nmin = 2\nmax = 1\n",
    );
    let output = evolve().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("evolution.features[0].max"), "{stderr}");
}
