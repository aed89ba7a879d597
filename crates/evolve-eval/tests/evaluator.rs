//! The evaluator library with real processes but without the re-exec helper
//! (a test binary is not `evolve`): process groups, timeouts, the output cap,
//! the environment allowlist, cascade stages, and warm workers against spawn.

use std::path::Path;
use std::time::Duration;

use evolve_core::{FailureKind, ProblemSpec};
use evolve_eval::{Evaluator, Plan};

const INITIAL: &str = "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n";

fn problem(evaluator_keys: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, ProblemSpec) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("initial.py"), INITIAL).expect("initial");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("file");
        if name.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    let spec = format!(
        "name = \"t\"\ninitial_program = \"initial.py\"\n[evaluator]\nobjective = \"score\"\n\
         direction = \"maximize\"\nkill_grace_s = 0.3\n{evaluator_keys}\n"
    );
    std::fs::write(dir.path().join("problem.toml"), spec).expect("spec");
    let spec = ProblemSpec::load(dir.path()).expect("valid problem");
    (dir, spec)
}

fn evaluator(spec: &ProblemSpec) -> Evaluator {
    Evaluator::with_plan(spec, Plan::unconfined(&spec.evaluator.sandbox)).expect("evaluator")
}

fn evaluate(evaluator: &Evaluator) -> evolve_core::EvalOutcome {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(evaluator.evaluate(INITIAL))
}

fn kind(outcome: &evolve_core::EvalOutcome) -> Option<FailureKind> {
    outcome.result.as_ref().err().map(|f| f.kind)
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

#[test]
fn timeout_terminates_the_whole_group() {
    let script =
        "#!/bin/sh\nsleep 300 &\necho $! > \"$EVOLVE_PROBLEM_DIR/grandchild\"\nsleep 300\n";
    let (dir, spec) = problem(
        "command = [\"./eval.sh\"]\ntimeout_s = 0.5",
        &[("eval.sh", script)],
    );
    let outcome = evaluate(&evaluator(&spec));
    assert_eq!(kind(&outcome), Some(FailureKind::Timeout));
    let grandchild = pid_in(&dir.path().join("grandchild"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(grandchild), "grandchild {grandchild} survived");
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let script = "#!/bin/sh\ntrap '' TERM\necho $$ > \"$EVOLVE_PROBLEM_DIR/leader\"\nwhile true; do sleep 0.05; done\n";
    let (dir, spec) = problem(
        "command = [\"./eval.sh\"]\ntimeout_s = 0.5",
        &[("eval.sh", script)],
    );
    let outcome = evaluate(&evaluator(&spec));
    assert_eq!(kind(&outcome), Some(FailureKind::Timeout));
    assert!(!alive(pid_in(&dir.path().join("leader"))));
}

#[test]
fn grandchildren_die_with_a_leader_that_exits_on_its_own() {
    let script = "#!/bin/sh\nsleep 300 &\necho $! > \"$EVOLVE_PROBLEM_DIR/grandchild\"\necho '{\"score\": 1}'\n";
    let (dir, spec) = problem("command = [\"./eval.sh\"]", &[("eval.sh", script)]);
    let outcome = evaluate(&evaluator(&spec));
    assert_eq!(outcome.score(), Some(1.0));
    let grandchild = pid_in(&dir.path().join("grandchild"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(grandchild), "grandchild {grandchild} survived");
}

#[test]
fn output_past_the_cap_fails_the_candidate() {
    let script = "#!/bin/sh\nhead -c 5000000 /dev/zero\necho '{\"score\": 1}'\n";
    let (_dir, spec) = problem(
        "command = [\"./eval.sh\"]\noutput_kb = 64",
        &[("eval.sh", script)],
    );
    let outcome = evaluate(&evaluator(&spec));
    assert_eq!(kind(&outcome), Some(FailureKind::OutputTooLarge));
}

#[test]
fn the_environment_is_an_allowlist() {
    let script = "#!/bin/sh\nenv | cut -d= -f1 | tr '\\n' ' ' > \"$EVOLVE_PROBLEM_DIR/names\"\necho '{\"score\": 1}'\n";
    let (dir, spec) = problem("command = [\"./eval.sh\"]", &[("eval.sh", script)]);
    assert_eq!(evaluate(&evaluator(&spec)).score(), Some(1.0));
    let names = std::fs::read_to_string(dir.path().join("names")).expect("names");
    let allowed = [
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "HOME",
        "TMPDIR",
        "PWD",
        "SHLVL",
        "_",
        "PYTHONDONTWRITEBYTECODE",
    ];
    for name in names.split_whitespace() {
        assert!(
            allowed.contains(&name) || name.starts_with("EVOLVE_"),
            "{name} leaked into the evaluator's environment"
        );
    }
    for required in ["EVOLVE_RESULT", "EVOLVE_CANDIDATE", "EVOLVE_STAGE", "HOME"] {
        assert!(
            names.split_whitespace().any(|n| n == required),
            "{required} missing"
        );
    }
}

const CASCADE: &str = "\
def evaluate_stage1(path):
    return {'score': 0.5, 'quick': 1.0}

def evaluate_stage2(path):
    return {'score': 0.9, 'full': 2.0}

def evaluate_stage3(path):
    raise AssertionError('stage 3 must not run')
";

#[test]
fn cascade_stops_at_an_unreached_threshold_and_keeps_metrics() {
    for warm in ["true", "false"] {
        let keys = format!(
            "python = \"evaluator.py\"\nwarm_workers = {warm}\n\
             [[evaluator.stages]]\nthreshold = 0.4\n\
             [[evaluator.stages]]\nthreshold = 0.95\n\
             [[evaluator.stages]]\n"
        );
        let (_dir, spec) = problem(&keys, &[("evaluator.py", CASCADE)]);
        let outcome = evaluate(&evaluator(&spec));
        let failure = outcome.result.as_ref().expect_err("threshold not reached");
        assert_eq!(
            failure.kind,
            FailureKind::ThresholdNotReached,
            "warm={warm}"
        );
        assert!(failure.detail.starts_with("stage 2:"), "{}", failure.detail);
        assert_eq!(outcome.metrics["quick"], 1.0);
        assert_eq!(outcome.metrics["full"], 2.0);
        assert_eq!(outcome.metrics["stage1.score"], 0.5);
        assert_eq!(outcome.metrics["score"], 0.9);
    }
}

#[test]
fn cascade_scores_with_the_last_stage() {
    let keys = "python = \"evaluator.py\"\n\
                [[evaluator.stages]]\nthreshold = 0.4\n\
                [[evaluator.stages]]\nthreshold = 0.9\n";
    let (_dir, spec) = problem(keys, &[("evaluator.py", CASCADE)]);
    assert_eq!(evaluate(&evaluator(&spec)).score(), Some(0.9));
}

#[test]
fn warm_and_spawned_evaluations_agree() {
    let source = "import os\nCOUNT = [0]\n\
                  def evaluate(path):\n    COUNT[0] += 1\n    \
                  return {'score': float(COUNT[0]), 'cwd_is_private': os.getcwd() != os.environ['EVOLVE_PROBLEM_DIR'], 'pid': os.getpid()}\n";
    let (_dir, spec) = problem("python = \"evaluator.py\"", &[("evaluator.py", source)]);
    let warm = evaluator(&spec);
    let mut spawned = evaluator(&spec);
    spawned.disable_warm_workers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut pids = Vec::new();
    for _ in 0..3 {
        for evaluator in [&warm, &spawned] {
            let outcome = runtime.block_on(evaluator.evaluate(INITIAL));
            // A fresh child per candidate: state never carries over.
            assert_eq!(outcome.score(), Some(1.0), "{outcome:?}");
            assert_eq!(outcome.metrics["cwd_is_private"], 1.0);
            pids.push(outcome.metrics["pid"] as i64);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6, "each evaluation ran in its own process");
}

#[test]
fn an_evaluator_that_cannot_import_falls_back_to_spawning() {
    let (_dir, spec) = problem(
        "python = \"evaluator.py\"",
        &[("evaluator.py", "raise ImportError('numpy is missing')\n")],
    );
    let outcome = evaluate(&evaluator(&spec));
    let failure = outcome.result.as_ref().expect_err("import fails");
    assert_eq!(failure.kind, FailureKind::EvaluatorError);
    assert!(
        failure.detail.contains("numpy is missing"),
        "{}",
        failure.detail
    );
}
