//! Hostile candidates: each test builds a tiny problem folder whose evaluator
//! scores the initial program but misbehaves for every mutated candidate, runs
//! the real `evolve` binary on it, and checks that the run completes, that the
//! candidates failed for the right reason, that the parent's secret is nowhere
//! in the store, and that no process of the candidate is left alive.
//!
//! Tests needing a kernel feature this machine lacks print "skipped: <why>".

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rusqlite::Connection;

const SECRET: &str = "sk-test-hostile-3f9a1c7e5b";

/// The initial program; mutated candidates differ in the number.
const INITIAL: &str = "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n";

struct Problem {
    dir: tempfile::TempDir,
}

impl Problem {
    /// A problem whose evaluator runs `hostile` (Python, indented by four
    /// spaces inside `evaluate`) for every candidate but the initial one.
    fn python(hostile: &str, evaluator_keys: &str) -> Problem {
        let dir = tempfile::Builder::new()
            .prefix("evolve-hostile-")
            .tempdir()
            .expect("temp dir");
        let body: String = hostile
            .lines()
            .map(|line| format!("    {line}\n"))
            .collect();
        let evaluator = format!(
            "import os, sys, time, socket, subprocess\n\
             MARK = os.environ['EVOLVE_PROBLEM_DIR']\n\
             def sleeper(**options):\n    \
             return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', MARK], **options)\n\
             def evaluate(path):\n    if 'x = 1\\n' in open(path).read():\n        return {{'score': 1.0}}\n{body}"
        );
        std::fs::write(dir.path().join("evaluator.py"), evaluator).expect("write evaluator");
        std::fs::write(dir.path().join("initial.py"), INITIAL).expect("write initial");
        // A generous timeout unless the test is about timeouts: on a loaded
        // machine other limits must still be what stops a candidate.
        let timeout = if evaluator_keys.contains("timeout_s") {
            ""
        } else {
            "timeout_s = 30\n"
        };
        let spec = format!(
            "name = \"hostile\"\ninitial_program = \"initial.py\"\n\n[evaluator]\n\
             python = \"evaluator.py\"\nobjective = \"score\"\ndirection = \"maximize\"\n\
             {timeout}kill_grace_s = 0.5\n{evaluator_keys}\n\n[evolution]\nislands = 1\n"
        );
        std::fs::write(dir.path().join("problem.toml"), spec).expect("write spec");
        Problem { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run_dir(&self) -> PathBuf {
        self.path().join("run")
    }

    /// Runs `evolve run` with the secret in its environment; the run must complete.
    fn run(&self) {
        self.run_skipping("");
    }

    /// Like [`Problem::run`], treating the `skipped` sandbox layers as unavailable.
    fn run_skipping(&self, skipped: &str) {
        Command::cargo_bin("evolve")
            .expect("evolve binary")
            .args(["run", "--iterations", "2", "-j", "1", "--out"])
            .arg(self.run_dir())
            .arg(self.path())
            .env("OPENAI_API_KEY", SECRET)
            .env("EVOLVE_SANDBOX_SKIP", skipped)
            .timeout(Duration::from_secs(120))
            .assert()
            .success();
    }

    /// Failure kinds of the evaluated candidates (the initial program excluded).
    fn failures(&self) -> Vec<(String, String)> {
        let db = Connection::open(self.run_dir().join("evolve.db")).expect("open store");
        let mut query = db
            .prepare(
                "SELECT status, coalesce(failure_kind, ''), coalesce(failure_detail, '') \
                 FROM programs WHERE iteration > 0 AND status != 'rejected'",
            )
            .expect("query");
        let rows = query
            .query_map([], |row| {
                let status: String = row.get(0)?;
                let kind: String = row.get(1)?;
                let detail: String = row.get(2)?;
                Ok((format!("{status}/{kind}"), detail))
            })
            .expect("rows");
        rows.map(|r| r.expect("row")).collect()
    }

    fn assert_all_failed_with(&self, kind: &str) {
        let failures = self.failures();
        assert!(!failures.is_empty(), "no candidate was evaluated");
        for (what, detail) in &failures {
            assert_eq!(what, &format!("failed/{kind}"), "detail: {detail}");
        }
    }

    /// The secret is in no byte of the run directory (database, WAL, anything).
    fn assert_secret_absent(&self) {
        for entry in std::fs::read_dir(self.run_dir())
            .expect("run dir")
            .flatten()
        {
            let mut bytes = Vec::new();
            if let Ok(mut file) = std::fs::File::open(entry.path()) {
                let _ = file.read_to_end(&mut bytes);
            }
            let needle = SECRET.as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "secret found in {}",
                entry.path().display()
            );
        }
    }

    /// No live process mentions the problem folder on its command line
    /// (evaluators, workers, and the sleepers candidates start all do).
    fn assert_no_survivors(&self) {
        let marker = self.path().display().to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive = live_processes(&marker);
            if alive.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "candidate processes still alive: {alive:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_contained(&self, kind: &str) {
        self.run();
        self.assert_all_failed_with(kind);
        self.assert_secret_absent();
        self.assert_no_survivors();
    }
}

/// Live (non-zombie) processes whose command line holds `marker`.
fn live_processes(marker: &str) -> Vec<String> {
    let mut alive = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return alive;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains(marker) {
            alive.push(format!("{pid}: {cmdline}"));
        }
    }
    alive
}

/// The `evolve doctor` line for a layer, when the layer is available.
fn layer_available(name: &str) -> Result<(), String> {
    let output = Command::cargo_bin("evolve")
        .expect("evolve binary")
        .arg("doctor")
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or("");
    if line.contains(" yes ") {
        Ok(())
    } else {
        Err(format!("{name} unavailable: {}", line.trim()))
    }
}

#[test]
fn busy_loop_hits_the_cpu_limit() {
    Problem::python("while True:\n    pass", "cpu_s = 1").assert_contained("cpu_limit");
}

#[test]
fn sleeping_past_the_timeout_is_cut_off() {
    Problem::python("time.sleep(600)", "timeout_s = 2").assert_contained("timeout");
}

#[test]
fn sleeping_past_the_timeout_without_warm_workers() {
    Problem::python("time.sleep(600)", "timeout_s = 2\nwarm_workers = false")
        .assert_contained("timeout");
}

#[test]
fn background_grandchild_is_killed_when_the_leader_exits() {
    let hostile = "sleeper()\nraise RuntimeError('left a sleeper')";
    Problem::python(hostile, "").assert_contained("evaluator_error");
    Problem::python(hostile, "warm_workers = false").assert_contained("evaluator_error");
}

#[test]
fn background_grandchild_is_killed_on_timeout() {
    let hostile = "sleeper()\ntime.sleep(600)";
    Problem::python(hostile, "timeout_s = 2").assert_contained("timeout");
    Problem::python(hostile, "timeout_s = 2\nwarm_workers = false").assert_contained("timeout");
}

#[test]
fn grandchild_that_leaves_the_group_is_killed() {
    if let Err(why) = layer_available("pids cgroup") {
        println!("skipped: {why} (only a cgroup finds a process that called setsid)");
        return;
    }
    let hostile = "sleeper(start_new_session=True)\nraise RuntimeError('left a daemon')";
    Problem::python(hostile, "warm_workers = false").assert_contained("evaluator_error");
    Problem::python(hostile, "").assert_contained("evaluator_error");
}

#[test]
fn fork_bomb_is_contained() {
    if let Err(why) = layer_available("pids cgroup") {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            println!(
                "skipped: {why}; as root nothing else bounds a fork bomb (RLIMIT_NPROC does not apply)"
            );
            return;
        }
    }
    let hostile = "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass";
    Problem::python(hostile, "timeout_s = 2\nmax_processes = 64").assert_contained("timeout");
}

#[test]
fn allocating_8_gib_fails_on_memory() {
    Problem::python(
        "block = bytearray(8 << 30)\nreturn {'score': len(block)}",
        "",
    )
    .assert_contained("memory_limit");
}

#[test]
fn flooding_stdout_fails_on_output() {
    Problem::python(
        "sys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()\nreturn {'score': 2.0}",
        "",
    )
    .assert_contained("output_too_large");
    Problem::python(
        "sys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()\nreturn {'score': 2.0}",
        "warm_workers = false",
    )
    .assert_contained("output_too_large");
}

#[test]
fn writing_a_huge_file_fails_on_file_size() {
    let hostile = "with open('big.bin', 'wb') as f:\n    for _ in range(100):\n        f.write(b'\\0' * (1 << 20))\nreturn {'score': 2.0}";
    Problem::python(hostile, "file_size_mb = 8").assert_contained("file_too_large");
}

#[test]
fn the_parents_api_key_is_invisible() {
    let hostile = "return {'score': 2.0, 'leak': os.environ['OPENAI_API_KEY']}";
    let problem = Problem::python(hostile, "");
    problem.assert_contained("evaluator_error");
    for (_, detail) in problem.failures() {
        assert!(detail.contains("OPENAI_API_KEY"), "{detail}");
    }
    let spawned = Problem::python(hostile, "warm_workers = false");
    spawned.assert_contained("evaluator_error");
}

#[test]
fn connecting_to_a_local_listener_is_denied() {
    if let Err(why) = layer_available("network namespace") {
        println!("skipped: {why}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let hostile = format!(
        "s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'stolen')\nreturn {{'score': 2.0}}"
    );
    let problem = Problem::python(&hostile, "");
    problem.assert_contained("evaluator_error");
    for (_, detail) in problem.failures() {
        assert!(detail.contains("unreachable"), "{detail}");
    }
    Problem::python(&hostile, "warm_workers = false").assert_contained("evaluator_error");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("a candidate connected from {peer}"),
        Err(e) => panic!("accept failed: {e}"),
    }
}

#[test]
fn allow_network_lets_the_connection_through() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    let evaluator = format!(
        "socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\nreturn {{'score': 2.0}}"
    );
    let problem = Problem::python(&evaluator, "allow_network = true");
    problem.run();
    let failures = problem.failures();
    assert!(!failures.is_empty());
    for (what, detail) in failures {
        assert_eq!(what, "scored/", "{detail}");
    }
}

#[test]
fn strict_mode_refuses_a_missing_layer_or_runs() {
    // With every layer present strict mode runs; without, it must refuse.
    let problem = Problem::python(
        "return {'score': 2.0}",
        "sandbox = \"strict\"\nrestrict_writes = true",
    );
    let all = [
        "network namespace",
        "pid namespace",
        "landlock",
        "pids cgroup",
        "resource limits",
    ]
    .iter()
    .all(|layer| layer_available(layer).is_ok());
    let mut command = Command::cargo_bin("evolve").expect("evolve binary");
    command
        .args(["run", "--iterations", "1", "-j", "1", "--out"])
        .arg(problem.run_dir())
        .arg(problem.path());
    if all {
        command.assert().success();
    } else {
        command
            .assert()
            .failure()
            .stderr(predicates::str::contains("sandbox = \"strict\""));
    }
}

#[test]
fn landlock_confines_writes_to_the_evaluation_directory() {
    if let Err(why) = layer_available("landlock") {
        println!("skipped: {why}");
        return;
    }
    let hostile = "open(os.path.join(os.environ['EVOLVE_PROBLEM_DIR'], 'escaped.txt'), 'w').write('x')\nreturn {'score': 2.0}";
    let problem = Problem::python(hostile, "restrict_writes = true");
    problem.assert_contained("evaluator_error");
    assert!(!problem.path().join("escaped.txt").exists());
    let allowed = "open('inside.txt', 'w').write('x')\nreturn {'score': 2.0}";
    let problem = Problem::python(allowed, "restrict_writes = true");
    problem.run();
    for (what, detail) in problem.failures() {
        assert_eq!(what, "scored/", "{detail}");
    }
}

#[test]
fn a_dying_warm_worker_is_replaced_and_the_run_goes_on() {
    // The first worker to import the evaluator dies half a second later,
    // in the middle of evaluating a candidate; later imports do not.
    let problem = Problem::python("time.sleep(1)\nreturn {'score': 2.0}", "");
    let evaluator = problem.path().join("evaluator.py");
    let source = std::fs::read_to_string(&evaluator).expect("evaluator");
    let doomed = "import threading\n\
                  FLAG = os.path.join(MARK, 'worker-died')\n\
                  if '--worker' in sys.argv and not os.path.exists(FLAG):\n    \
                  open(FLAG, 'w').close()\n    \
                  threading.Timer(0.5, lambda: os._exit(3)).start()\n";
    std::fs::write(&evaluator, format!("{source}{doomed}")).expect("evaluator");
    problem.run();
    assert!(problem.path().join("worker-died").exists(), "no worker ran");
    let failures = problem.failures();
    assert!(!failures.is_empty(), "no candidate was evaluated");
    for (what, detail) in failures {
        assert_eq!(what, "scored/", "{detail}");
    }
    problem.assert_no_survivors();
}

#[test]
fn the_candidate_cannot_signal_host_processes() {
    if let Err(why) = layer_available("pid namespace") {
        println!("skipped: {why}");
        return;
    }
    let mut victim = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("start a victim process");
    let hostile = format!("os.kill({}, 9)\nreturn {{'score': 2.0}}", victim.id());
    let problem = Problem::python(&hostile, "");
    problem.assert_contained("evaluator_error");
    Problem::python(&hostile, "warm_workers = false").assert_contained("evaluator_error");
    let still_running = victim.try_wait().expect("victim status").is_none();
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(still_running, "a candidate killed a host process");
    for (_, detail) in problem.failures() {
        assert!(detail.contains("ProcessLookupError"), "{detail}");
    }
}

#[test]
fn without_a_network_namespace_landlock_denies_tcp() {
    if let Err(why) = layer_available("landlock (tcp)") {
        println!("skipped: {why}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let hostile = format!(
        "socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'stolen')\nreturn {{'score': 2.0}}"
    );
    for keys in ["", "warm_workers = false"] {
        let problem = Problem::python(&hostile, keys);
        problem.run_skipping("netns");
        problem.assert_all_failed_with("evaluator_error");
        for (_, detail) in problem.failures() {
            assert!(detail.contains("Permission denied"), "{detail}");
        }
        problem.assert_no_survivors();
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("a candidate connected from {peer}"),
        Err(e) => panic!("accept failed: {e}"),
    }
}

#[test]
fn strict_mode_names_the_missing_layer() {
    let problem = Problem::python("return {'score': 2.0}", "sandbox = \"strict\"");
    Command::cargo_bin("evolve")
        .expect("evolve binary")
        .args(["run", "--iterations", "1", "-j", "1", "--out"])
        .arg(problem.run_dir())
        .arg(problem.path())
        .env("EVOLVE_SANDBOX_SKIP", "cgroup")
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "pids cgroup (skipped by EVOLVE_SANDBOX_SKIP)",
        ));
}
