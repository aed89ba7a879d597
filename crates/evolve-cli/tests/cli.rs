//! End-to-end tests of the `evolve` binary on small problem folders.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn unknown_key_names_file_line_and_key_and_exits_2() {
    let spec = format!("{}speed = 3\n", command_spec("score", "maximize", 5.0));
    let problem = Problem::new(&[
        ("problem.toml", &spec),
        ("initial.py", "x = 1\n"),
        ("score.py", ""),
    ]);
    evolve()
        .arg("check")
        .arg(problem.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "problem.toml:10:1: key `evaluator.speed`",
        ));
}

#[test]
fn wrong_type_and_missing_file_are_named() {
    let spec = format!(
        "{}\n[evolution]\nislands = \"four\"\n",
        command_spec("score", "maximize", 5.0)
    );
    let problem = Problem::new(&[("problem.toml", &spec), ("initial.py", "x = 1\n")]);
    evolve()
        .args(["run".as_ref(), problem.path().as_os_str()])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("problem.toml:12:11:")
                .and(predicate::str::contains("key `evolution.islands`")),
        );

    let spec = command_spec("score", "maximize", 5.0).replace("initial.py", "missing.py");
    let problem = Problem::new(&[("problem.toml", &spec)]);
    evolve()
        .arg("check")
        .arg(problem.path())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("key `initial_program`")
                .and(predicate::str::contains("missing.py")),
        );
}

#[test]
fn a_folder_without_problem_toml_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    evolve()
        .arg("run")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no problem.toml"));
}

/// Runs `evolve check` on a command evaluator whose score.py is `script`.
fn check_with_script(script: &str, timeout_s: f64) -> assert_cmd::assert::Assert {
    let problem = Problem::new(&[
        (
            "problem.toml",
            &command_spec("score", "maximize", timeout_s),
        ),
        ("initial.py", "x = 1\n"),
        ("score.py", script),
    ]);
    evolve().arg("check").arg(problem.path()).assert()
}

#[test]
fn evaluator_protocol_result_file() {
    let script = "import json, os, sys\nassert sys.argv[1].endswith('.py')\njson.dump({'metrics': {'score': 4.5}, 'artifacts': {'note': 'ok'}}, open(os.environ['EVOLVE_RESULT'], 'w'))\nprint('{\"score\": 1}')\n";
    check_with_script(script, 10.0)
        .code(0)
        .stdout(predicate::str::contains("ok: score = 4.5"));
}

#[test]
fn evaluator_protocol_stdout_fallback() {
    check_with_script(
        "print('hello')\nprint('{\"score\": 2.5, \"log\": \"text\"}')\nprint('bye')\n",
        10.0,
    )
    .code(0)
    .stdout(predicate::str::contains("ok: score = 2.5"));
}

#[test]
fn evaluator_protocol_failures_are_named() {
    check_with_script("print('{\"score\": NaN}')\n", 10.0)
        .code(1)
        .stdout(predicate::str::contains("FAILED (objective_not_finite)"));
    check_with_script("print('{\"other\": 1}')\n", 10.0)
        .code(1)
        .stdout(
            predicate::str::contains("FAILED (objective_missing)")
                .and(predicate::str::contains("[other]")),
        );
    check_with_script(
        "import sys\nprint('{\"score\": 1}')\nsys.stderr.write('broken badly\\n')\nsys.exit(3)\n",
        10.0,
    )
    .code(1)
    .stdout(predicate::str::contains(
        "FAILED (exit_code): evaluator exited with status 3: broken badly",
    ));
    check_with_script("import time\ntime.sleep(30)\n", 0.5)
        .code(1)
        .stdout(predicate::str::contains("FAILED (timeout)"));
    check_with_script("print('no json here')\n", 10.0)
        .code(1)
        .stdout(predicate::str::contains("FAILED (no_result)"));
}

#[test]
fn python_harness_reports_evaluator_exceptions() {
    let problem = Problem::new(&[
        ("problem.toml", &quad_spec(5, 1)),
        ("initial.py", QUAD_INITIAL),
        (
            "evaluator.py",
            "def evaluate(path):\n    raise ValueError('circles 3 and 7 overlap')\n",
        ),
    ]);
    evolve()
        .arg("check")
        .arg(problem.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "FAILED (evaluator_error): ValueError: circles 3 and 7 overlap",
        ));
}

#[test]
fn an_invalid_circle_packing_is_failed() {
    let root = repo_root().join("problems/circle_packing");
    let evaluator = std::fs::read_to_string(root.join("evaluator.py")).unwrap();
    let spec = std::fs::read_to_string(root.join("problem.toml")).unwrap();
    let overlapping = "# EVOLVE-BLOCK-START\ndef run_packing():\n    centers = [(0.5, 0.5)] * 26\n    radii = [0.1] * 26\n    return centers, radii, sum(radii)\n# EVOLVE-BLOCK-END\n";
    let problem = Problem::new(&[
        ("problem.toml", &spec),
        ("initial.py", overlapping),
        ("evaluator.py", &evaluator),
        ("README.md", "x"),
    ]);
    evolve()
        .arg("check")
        .arg(problem.path())
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("FAILED (evaluator_error)")
                .and(predicate::str::contains("overlap")),
        );
    evolve()
        .arg("check")
        .arg(&root)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok: sum_radii ="));
}

#[test]
fn run_improves_keeps_the_frame_and_exports_the_best() {
    let problem = quad_problem(40, 0.0);
    let run_dir = problem.run_dir("a");
    evolve_run(problem.path(), &run_dir, &["--jobs", "2"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("iterations:  40/40")
                .and(predicate::str::contains("improved by")),
        );

    let rows = history(&run_dir);
    let iterations: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        iterations,
        (0..=40).collect(),
        "every iteration is recorded"
    );
    let frame = |code: &str| {
        let start = code.find("# EVOLVE-BLOCK-START").unwrap();
        let end = code.find("# EVOLVE-BLOCK-END").unwrap();
        (code[..start].to_string(), code[end..].to_string())
    };
    for row in &rows {
        assert_eq!(
            frame(&row.5),
            frame(QUAD_INITIAL),
            "frame changed in {}",
            row.5
        );
    }

    let best = evolve()
        .args(["best".as_ref(), run_dir.as_os_str(), "--json".as_ref()])
        .assert()
        .code(0);
    let best: serde_json::Value = serde_json::from_slice(&best.get_output().stdout).unwrap();
    let best_score = best["score"].as_f64().unwrap();
    let initial_score = -(0.5f64 - 3.0).powi(2) - (0.25f64 + 1.0).powi(2);
    assert!(
        best_score > initial_score,
        "{best_score} <= {initial_score}"
    );

    // The exported program, scored again by the problem's own evaluator, gives exactly the recorded best.
    let exported = problem.path().join("exported.py");
    evolve()
        .args([
            "export".as_ref(),
            run_dir.as_os_str(),
            "-o".as_ref(),
            exported.as_os_str(),
        ])
        .assert()
        .code(0);
    let again = Problem::new(&[
        ("problem.toml", &quad_spec(1, 1)),
        ("initial.py", &std::fs::read_to_string(&exported).unwrap()),
        ("evaluator.py", &quad_evaluator(0.0)),
    ]);
    evolve()
        .arg("check")
        .arg(again.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "ok: score = {best_score}\n"
        )));
}

#[test]
fn same_seed_with_one_job_gives_identical_histories() {
    let problem = quad_problem(25, 0.0);
    let (a, b) = (problem.run_dir("a"), problem.run_dir("b"));
    for dir in [&a, &b] {
        evolve_run(problem.path(), &dir, &["--jobs", "1", "--seed", "11"])
            .assert()
            .code(0);
    }
    let (ha, hb) = (history(&a), history(&b));
    assert!(ha.len() > 25);
    assert_eq!(ha, hb);
    let c = problem.run_dir("c");
    evolve_run(problem.path(), &c, &["--jobs", "1", "--seed", "12"])
        .assert()
        .code(0);
    assert_ne!(
        history(&c),
        ha,
        "a different seed should give a different history"
    );
}

#[test]
fn interrupted_run_resumes_to_the_same_history() {
    interrupt_and_resume(libc::SIGINT);
}

#[test]
fn sigterm_stops_as_cleanly_as_ctrl_c() {
    interrupt_and_resume(libc::SIGTERM);
}

/// Stops a `--jobs 1` run with `signal` part-way, resumes it, and compares
/// the history with an uninterrupted run's.
fn interrupt_and_resume(signal: i32) {
    let problem = quad_problem(12, 0.15);
    let reference = problem.run_dir("reference");
    evolve_run(problem.path(), &reference, &["--jobs", "1"])
        .assert()
        .code(0);

    let interrupted = problem.run_dir("interrupted");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("evolve"))
        .args([
            "run".as_ref(),
            problem.path().as_os_str(),
            "--out".as_ref(),
            interrupted.as_os_str(),
            "--jobs".as_ref(),
            "1".as_ref(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a few candidates are committed, then interrupt as Ctrl-C would.
    let db = interrupted.join("evolve.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if db.exists() && rows_so_far(&interrupted).is_some_and(|n| n >= 5) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: plain signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("interrupted; continue with: evolve resume")
    );
    let partial = history(&interrupted);
    assert!(
        partial.len() < history(&reference).len(),
        "interrupted too late to test anything"
    );

    evolve()
        .args([
            // No --jobs: resume keeps the run's own `--jobs 1`.
            "resume".as_ref(),
            interrupted.as_os_str(),
        ])
        .assert()
        .code(0);
    assert_eq!(history(&interrupted), history(&reference));
}

#[test]
fn new_scaffolds_a_folder_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mine");
    evolve().arg("new").arg(&target).assert().code(0);
    evolve()
        .arg("check")
        .arg(&target)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok: score ="));
    evolve()
        .arg("new")
        .arg(&target)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not empty"));
}

#[test]
fn best_and_export_refuse_a_folder_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    evolve()
        .arg("best")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an evolve run"));
    evolve().arg("export").arg(dir.path()).assert().code(2);
}

#[test]
fn zero_iterations_and_a_lowered_target_are_handled() {
    let problem = quad_problem(5, 0.0);
    let run_dir = problem.run_dir("zero");
    evolve_run(problem.path(), &run_dir, &["--iterations", "0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("iterations:  0/0"));
    evolve()
        .args([
            "resume".as_ref(),
            run_dir.as_os_str(),
            "--iterations".as_ref(),
            "4".as_ref(),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("iterations:  4/4"));
    evolve()
        .args([
            "resume".as_ref(),
            run_dir.as_os_str(),
            "--iterations".as_ref(),
            "2".as_ref(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already recorded iteration 4"));
    evolve()
        .args([
            "run".as_ref(),
            problem.path().as_os_str(),
            "--jobs".as_ref(),
            "0".as_ref(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at least 1"));
}

#[test]
fn a_run_in_progress_cannot_be_driven_twice() {
    let problem = quad_problem(30, 0.2);
    let run_dir = problem.run_dir("busy");
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("evolve"))
        .args([
            "run".as_ref(),
            problem.path().as_os_str(),
            "--out".as_ref(),
            run_dir.as_os_str(),
            "--jobs".as_ref(),
            "1".as_ref(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while rows_so_far(&run_dir).is_none_or(|n| n < 1) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = evolve().arg("resume").arg(&run_dir).assert().code(1);
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&second.get_output().stderr).to_string();
    assert!(
        stderr.contains("in use by another evolve process"),
        "{stderr}"
    );
}

#[test]
fn a_run_whose_initial_program_fails_leaves_no_folder() {
    let problem = Problem::new(&[
        ("problem.toml", &quad_spec(5, 1)),
        ("initial.py", QUAD_INITIAL),
        (
            "evaluator.py",
            "def evaluate(path):\n    raise ValueError('broken evaluator')\n",
        ),
    ]);
    let run_dir = problem.run_dir("dead");
    evolve_run(problem.path(), &run_dir, &[])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("broken evaluator"));
    assert!(
        !run_dir.exists(),
        "a run that cannot continue must not be kept"
    );
}

#[test]
fn check_warns_about_metrics_the_evaluator_never_reports() {
    let spec = format!(
        "{}\n[[evolution.objectives]]\nmetric = \"score\"\ndirection = \"maximize\"\n\n[[evolution.objectives]]\nmetric = \"scroe\"\ndirection = \"maximize\"\n",
        quad_spec(5, 1)
    );
    let problem = Problem::new(&[
        ("problem.toml", &spec),
        ("initial.py", QUAD_INITIAL),
        ("evaluator.py", &quad_evaluator(0.0)),
    ]);
    evolve()
        .arg("check")
        .arg(problem.path())
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("names metric `scroe`")
                .and(predicate::str::contains("names metric `score`").not()),
        );
}
