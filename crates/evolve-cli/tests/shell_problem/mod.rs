//! A small, fast problem folder for end-to-end tests: a two-number program
//! scored by a shell script (no Python start-up per evaluation).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Writes the problem into `dir`, with `evolution` appended to its `[evolution]` table.
pub fn problem(dir: &Path, evolution: &str) {
    std::fs::write(
        dir.join("problem.toml"),
        format!(
            "name = \"quadratic\"\ninitial_program = \"initial.py\"\n\n[evaluator]\n\
             command = [\"./eval.sh\"]\ntimeout_s = 10\nobjective = \"score\"\n\
             direction = \"maximize\"\n\n[evolution]\n{evolution}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("initial.py"),
        "# EVOLVE-BLOCK-START\nx = 1.0\ny = 2.0\n# EVOLVE-BLOCK-END\n",
    )
    .unwrap();
    let script = dir.join("eval.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nawk -F'=' '/^x =/{x=$2} /^y =/{y=$2} END{printf \"{\\\"score\\\": %.9f, \\\"x\\\": %.9f, \\\"y\\\": %.9f}\\n\", -(x-3)^2-(y+1)^2, x, y}' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `evolve` binary under test.
pub fn evolve() -> Command {
    Command::new(env!("CARGO_BIN_EXE_evolve"))
}
