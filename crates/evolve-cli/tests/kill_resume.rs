//! SLOW end-to-end test (about 5–15 s): the real `evolve` binary is killed
//! with SIGKILL at several random moments and resumed each time; the store
//! must end consistent, with every iteration recorded exactly once.

mod shell_problem;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use shell_problem::{evolve, problem};

const ITERATIONS: u64 = 1200;
const KILLS: usize = 5;

/// xorshift: random kill moments without a dependency; the seed is printed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn slow_kill_and_resume_keeps_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    problem(
        dir.path(),
        "islands = 3\nmigration_interval = 7\nreset_interval = 20\narchive_size = 5\n\
         selection = \"weighted\"\n\n[[evolution.features]]\nmetric = \"x\"\nmin = -10\nmax = 10\nbins = 5\n",
    );
    let run_dir = dir.path().join("run");
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill moments seed: {state}");

    let mut kills = 0;
    let mut finished = false;
    while kills < KILLS {
        let mut command = evolve();
        if run_dir.join("evolve.db").exists() {
            command.arg("resume").arg(&run_dir);
        } else {
            command
                .arg("run")
                .arg(dir.path())
                .arg("--out")
                .arg(&run_dir)
                .arg("--iterations")
                .arg(ITERATIONS.to_string());
        }
        let mut child = command
            .args(["--jobs", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + next(&mut state) % 470));
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if let Ok(db) = Connection::open(run_dir.join("evolve.db")) {
            let done: rusqlite::Result<u64> = db.query_row(
                "SELECT count(DISTINCT iteration) FROM programs WHERE iteration > 0",
                [],
                |r| r.get(0),
            );
            eprintln!("kill {kills}: {done:?} iterations recorded");
        }
    }
    assert!(
        kills >= 3,
        "the run finished before it could be killed three times; make it longer"
    );
    if !finished {
        let output = evolve()
            .arg("resume")
            .arg(&run_dir)
            .args(["--jobs", "2", "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["iterations_done"], ITERATIONS);
    }

    let db = Connection::open(run_dir.join("evolve.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    // Every iteration 0..=N holds exactly one candidate.
    let mut statement = db
        .prepare(
            "SELECT iteration, count(*) FROM programs
             WHERE mutation NOT IN ('migration', 'reset') GROUP BY iteration",
        )
        .unwrap();
    let per_iteration: BTreeMap<u64, u64> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: BTreeMap<u64, u64> = (0..=ITERATIONS).map(|i| (i, 1)).collect();
    assert_eq!(per_iteration, expected);

    // Counts add up: every candidate is scored, failed or rejected, and
    // scored rows carry a finite score while the others carry none.
    let (total, scored, failed, rejected, bad_scores): (u64, u64, u64, u64, u64) = db
        .query_row(
            "SELECT count(*),
                    sum(status = 'scored'), sum(status = 'failed'), sum(status = 'rejected'),
                    sum((status = 'scored') != (score IS NOT NULL))
             FROM programs WHERE mutation NOT IN ('migration', 'reset')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(total, ITERATIONS + 1);
    assert_eq!(scored + failed + rejected, total);
    assert_eq!(bad_scores, 0);
    assert!(scored > ITERATIONS / 3, "scored {scored} of {total}");

    // Upkeep ran once per scheduled iteration, never twice, and its copies
    // all belong to a recorded upkeep.
    let upkeep: Vec<(u64, String)> = db
        .prepare("SELECT iteration, kind FROM upkeep ORDER BY iteration, kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let scheduled: Vec<(u64, String)> = (1..=ITERATIONS)
        .flat_map(|i| {
            let mut kinds = Vec::new();
            if i % 7 == 0 {
                kinds.push((i, "migration".to_string()));
            }
            if i % 20 == 0 {
                kinds.push((i, "reset".to_string()));
            }
            kinds
        })
        .collect();
    assert_eq!(upkeep, scheduled);
    let orphans: u64 = db
        .query_row(
            "SELECT count(*) FROM programs p WHERE p.mutation IN ('migration', 'reset')
             AND NOT EXISTS (SELECT 1 FROM upkeep u WHERE u.iteration = p.iteration AND u.kind = p.mutation)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);

    // A child's island is its parent's (the initial program, iteration 0,
    // is stored once but seeds every island).
    let strays: u64 = db
        .query_row(
            "SELECT count(*) FROM programs c JOIN programs p ON c.parent_id = p.id
             WHERE c.mutation NOT IN ('migration', 'reset') AND p.iteration > 0
               AND c.island != p.island",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(strays, 0);

    // A second resume of the finished run changes nothing.
    let before: u64 = db
        .query_row("SELECT count(*) FROM programs", [], |r| r.get(0))
        .unwrap();
    let status = evolve()
        .arg("resume")
        .arg(&run_dir)
        .args(["--jobs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let after: u64 = db
        .query_row("SELECT count(*) FROM programs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
}
