//! Shared fixtures for the benchmarks in `benches/`: synthetic programs, a
//! population configuration like a real run's, and bulk-built stores.

use std::path::Path;

use evolve_core::{
    Direction, EvaluatorKind, EvaluatorSpec, EvolutionSpec, FeatureSpec, ProblemSpec, Program,
};
use evolve_store::{DB_FILE, PopulationConfig, Record, RunMeta, Status, Store, StoreError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Islands in the benchmark population.
pub const ISLANDS: u32 = 4;

/// A run's population settings: 4 islands of 40 elites, a 10×10 MAP-Elites
/// grid, weighted selection, novelty filter on.
pub fn config() -> PopulationConfig {
    let mut config = PopulationConfig::simple(ISLANDS as usize, 40, Direction::Minimize);
    config.features = vec![
        FeatureSpec {
            metric: "code_length".into(),
            min: 190.0,
            max: 270.0,
            bins: 10,
        },
        FeatureSpec {
            metric: "speed".into(),
            min: 0.0,
            max: 1.0,
            bins: 10,
        },
    ];
    config.novelty_threshold = Some(0.95);
    config
}

/// A program text of 200 to 260 bytes, distinct for every `i`.
pub fn code(i: u64) -> String {
    let mut text = String::from("import math\n\n# EVOLVE-BLOCK-START\ndef solve(points):\n");
    let (a, b, c) = (i % 97, (i / 97) % 89, i / 8633);
    text.push_str(&format!(
        "    scale = {a}.25\n    shift = {b}.5 * math.sin({c})\n    best = min(points, key=lambda p: p * scale + shift)\n"
    ));
    for k in 0..((i / 7) % 4) {
        text.push_str(&format!("    best = best + {k}\n"));
    }
    text.push_str("    return best\n# EVOLVE-BLOCK-END\n");
    text
}

/// Synthetic scored program `i`, its parent among the earlier ones.
pub fn program(i: u64, rng: &mut impl Rng) -> Program {
    Program {
        id: i as i64 + 1,
        parent: (i > 0).then(|| rng.random_range(0..i) as i64 + 1),
        island: (i % u64::from(ISLANDS)) as u32,
        generation: 1,
        code: code(i),
        score: rng.random_range(-2.0..2.0),
        metrics: [("speed".to_string(), rng.random::<f64>())].into(),
        artifacts: Default::default(),
    }
}

/// The store row of a synthetic program.
pub fn record(program: &Program, iteration: u64) -> Record {
    Record {
        iteration,
        parent: program.parent,
        island: program.island,
        generation: program.generation,
        status: Status::Scored,
        score: Some(program.score),
        code: program.code.clone(),
        metrics: program.metrics.clone(),
        artifacts: Default::default(),
        failure_kind: None,
        failure_detail: None,
        mutation: "numeric".into(),
        source: "bench".into(),
        eval_ms: 10,
        propose_ms: 1,
    }
}

fn spec() -> ProblemSpec {
    ProblemSpec {
        name: "bench".into(),
        dir: "/tmp".into(),
        initial_program: "/tmp/initial.py".into(),
        description: String::new(),
        evaluator: EvaluatorSpec::new(
            EvaluatorKind::Command {
                argv: vec!["true".into()],
            },
            "score",
            Direction::Minimize,
        ),
        evolution: EvolutionSpec::default(),
        models: Vec::new(),
        llm: Default::default(),
    }
}

/// A run database in `dir` holding `n` scored programs, written in bulk
/// transactions of 50 000 rows.
pub fn build_store(dir: &Path, n: u64) -> Result<Store, StoreError> {
    build_store_for(dir, n, spec())
}

/// Like [`build_store`], for a run of `spec` (so `evolve resume` can continue it).
pub fn build_store_for(dir: &Path, n: u64, spec: ProblemSpec) -> Result<Store, StoreError> {
    let store = Store::create(
        &dir.join(DB_FILE),
        &RunMeta {
            spec,
            target_iterations: n,
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut start = 0;
    while start < n {
        let end = (start + 50_000).min(n);
        let rows: Vec<Record> = (start..end)
            .map(|i| record(&program(i, &mut rng), i))
            .collect();
        store.insert_many(&rows)?;
        start = end;
    }
    Ok(store)
}

/// Peak resident memory of this process so far (VmHWM), in KiB.
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use evolve_store::Population;

    use super::*;

    #[test]
    fn the_fixture_fills_elites_and_grid_cells() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut pop = Population::new(config());
        for i in 0..5_000 {
            pop.insert(Arc::new(program(i, &mut rng)));
        }
        let cells: usize = (0..ISLANDS as usize).map(|i| pop.cells(i).count()).sum();
        let members: usize = (0..ISLANDS as usize).map(|i| pop.members(i).len()).sum();
        assert!(cells > 4 * 30, "{cells}");
        assert!(members > cells && members > 4 * 40, "{members}");
    }
}
