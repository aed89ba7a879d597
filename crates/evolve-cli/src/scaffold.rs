//! `evolve new`: a small, working problem folder to start from.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::BadInput;

const PROBLEM_TOML: &str = r#"name = "my_problem"
initial_program = "initial.py"
description_file = "README.md"

[evaluator]
python = "evaluator.py"   # defines evaluate(program_path) -> dict of metrics
timeout_s = 30
objective = "score"       # the metric evolution optimises
direction = "maximize"    # or "minimize"

[evolution]
iterations = 100
islands = 2
seed = 0
"#;

const INITIAL_PY: &str = r#""""The starting program. Only the part between the EVOLVE-BLOCK markers changes."""


# EVOLVE-BLOCK-START
def solve():
    """Return a list of 5 numbers in [0, 10] whose sum of sines is as large as possible."""
    return [1.0, 2.0, 3.0, 4.0, 5.0]
# EVOLVE-BLOCK-END


def run():
    return solve()
"#;

const EVALUATOR_PY: &str = r#""""Scores a candidate program. Called as evaluate(program_path) by evolve."""

import importlib.util
import math


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = module.run()
    if len(values) != 5 or not all(0 <= v <= 10 for v in values):
        raise ValueError(f"expected 5 numbers in [0, 10], got {values!r}")
    return {"score": sum(math.sin(v) for v in values), "summary": f"values {values}"}
"#;

const README_MD: &str = "# My problem\n\nReturn 5 numbers in [0, 10] whose sum of sines is as large as possible.\nThe best possible score is 5 (every number at pi/2 + 2k*pi).\n";

/// Creates `dir` with a problem.toml, initial.py, evaluator.py and README.md.
pub fn create(dir: &Path) -> Result<ExitCode> {
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(BadInput(format!("{} already exists and is not empty", dir.display())).into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in [
        ("problem.toml", PROBLEM_TOML),
        ("initial.py", INITIAL_PY),
        ("evaluator.py", EVALUATOR_PY),
        ("README.md", README_MD),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created {}; try: evolve check {0} && evolve run {0}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
