//! Property tests of the population's invariants under random operation
//! sequences: children stay on their parent's island, cells keep the best
//! program that ever entered them, the global best is never evicted, failed
//! and non-finite programs are never parents nor best, and migration never
//! puts the same code twice on an island.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use evolve_core::{
    Direction, FeatureSpec, MigrationTopology, Program, SelectionStrategy, code_hash,
};
use evolve_store::{Population, PopulationConfig};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const ISLANDS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A child of a parent selected on `island`, scored `score`, with feature `size`.
    Child {
        island: usize,
        score: f64,
        size: f64,
    },
    /// A failed candidate: it is only marked evaluated, never inserted.
    Failed { island: usize },
    /// One round of migration.
    Migrate(MigrationTopology),
    /// The code of a member comes back under a new id with another score
    /// (a noisy evaluator): the island must refuse it.
    Resubmit {
        island: usize,
        pick: usize,
        score: f64,
    },
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -100.0..100.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => (0..5i32).prop_map(f64::from),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..ISLANDS, score(), -1.0..11.0f64)
            .prop_map(|(island, score, size)| Op::Child { island, score, size }),
        2 => (0..ISLANDS).prop_map(|island| Op::Failed { island }),
        2 => prop_oneof![
            Just(MigrationTopology::Ring),
            Just(MigrationTopology::All),
            Just(MigrationTopology::Random),
        ]
        .prop_map(Op::Migrate),
        2 => (0..ISLANDS, any::<usize>(), -100.0..100.0f64)
            .prop_map(|(island, pick, score)| Op::Resubmit { island, pick, score }),
    ]
}

fn strategy() -> impl Strategy<Value = SelectionStrategy> {
    prop_oneof![
        Just(SelectionStrategy::Uniform),
        Just(SelectionStrategy::FitnessProportional),
        Just(SelectionStrategy::PowerLaw),
        Just(SelectionStrategy::Weighted),
        Just(SelectionStrategy::Tournament),
        Just(SelectionStrategy::BestOfN),
        Just(SelectionStrategy::HillClimb),
    ]
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Maximize), Just(Direction::Minimize)]
}

fn program(id: i64, parent: Option<i64>, island: u32, score: f64, size: f64) -> Program {
    Program {
        id,
        parent,
        island,
        generation: 0,
        code: format!("def solve():\n    return {id}\n"),
        score,
        metrics: [("size".to_string(), size)].into(),
        artifacts: Default::default(),
    }
}

/// What the test remembers independently of the population.
#[derive(Default)]
struct Oracle {
    /// Best score that entered each (island, cell).
    cells: HashMap<(u32, u64), f64>,
    /// Ids of programs whose score was not finite or that failed.
    never_parents: HashSet<i64>,
    /// Best finite score ever inserted.
    best: Option<f64>,
}

fn check(pop: &Population, oracle: &Oracle) -> Result<(), TestCaseError> {
    for island in 0..ISLANDS {
        let mut codes = HashSet::new();
        for member in pop.members(island) {
            prop_assert_eq!(member.island as usize, island, "member on a foreign island");
            prop_assert!(member.score.is_finite());
            prop_assert!(
                codes.insert(code_hash(&member.code)),
                "code twice on island {}",
                island
            );
        }
        for (cell, holder) in pop.cells(island) {
            let expected = oracle.cells.get(&(island as u32, cell));
            prop_assert_eq!(Some(&holder.score), expected, "cell {} of {}", cell, island);
        }
    }
    match (pop.best(), oracle.best) {
        (Some(best), Some(score)) => {
            prop_assert_eq!(best.score, score);
            prop_assert!(!oracle.never_parents.contains(&best.id));
            let island = best.island as usize;
            let island_best = pop.island_best(island).map(|p| p.score);
            prop_assert_eq!(
                island_best,
                Some(score),
                "global best evicted from its island"
            );
        }
        (None, None) => {}
        (got, want) => prop_assert!(false, "best {:?} vs {:?}", got.map(|p| p.score), want),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn population_invariants_hold(
        direction in direction(),
        strategy in strategy(),
        archive in 2usize..6,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut config = PopulationConfig::simple(ISLANDS, archive, direction);
        config.selection.strategy = strategy;
        config.features = vec![FeatureSpec { metric: "size".into(), min: 0.0, max: 10.0, bins: 4 }];
        let mut pop = Population::new(config);
        let mut oracle = Oracle::default();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut next_id = 1i64;
        let grid_cell = |pop: &Population, p: &Program| pop.cell_of(p);

        let initial = program(next_id, None, 0, 0.0, 5.0);
        next_id += 1;
        for island in 0..ISLANDS as u32 {
            let copy = Program { island, ..initial.clone() };
            if let Some(cell) = grid_cell(&pop, &copy) {
                oracle.cells.insert((island, cell), 0.0);
            }
        }
        oracle.best = Some(0.0);
        pop.seed(initial);

        for op in ops {
            match op {
                Op::Child { island, score, size } => {
                    let parent = pop.select_parent(island, &mut rng).expect("a parent");
                    prop_assert!(parent.score.is_finite());
                    prop_assert!(!oracle.never_parents.contains(&parent.id));
                    prop_assert_eq!(parent.island as usize, island, "parent from another island");
                    for p in pop.inspirations(island, &parent, 3, &mut rng) {
                        prop_assert!(p.id != parent.id && p.island as usize == island);
                    }
                    let child = program(next_id, Some(parent.id), parent.island, score, size);
                    next_id += 1;
                    if !score.is_finite() {
                        oracle.never_parents.insert(child.id);
                    }
                    let cell = grid_cell(&pop, &child);
                    let entered = pop.insert(Arc::new(child.clone()));
                    prop_assert!(!entered || score.is_finite());
                    if entered {
                        prop_assert!(pop.members(parent.island as usize).iter().any(|p| p.id == child.id)
                            || pop.island(parent.island as usize).iter().any(|p| p.id == child.id));
                        for other in 0..ISLANDS {
                            if other != parent.island as usize {
                                prop_assert!(pop.members(other).iter().all(|p| p.id != child.id));
                            }
                        }
                    }
                    if score.is_finite() {
                        if let Some(cell) = cell {
                            let slot = oracle.cells.entry((child.island, cell)).or_insert(score);
                            if direction.is_better(score, *slot) {
                                *slot = score;
                            }
                        }
                        if oracle.best.is_none_or(|b| direction.is_better(score, b)) {
                            oracle.best = Some(score);
                        }
                    }
                }
                Op::Failed { island } => {
                    let parent = pop.select_parent(island, &mut rng).expect("a parent");
                    let failed = program(next_id, Some(parent.id), parent.island, f64::NAN, 1.0);
                    next_id += 1;
                    oracle.never_parents.insert(failed.id);
                    pop.mark_evaluated(code_hash(&failed.code));
                    pop.note_child(parent.id);
                }
                Op::Migrate(topology) => {
                    let plan = pop.migrants(topology, 2, &mut rng);
                    for (program, to) in plan {
                        prop_assert!(!pop.island_has(to as usize, &program.code), "migrant already there");
                        let copy = Program { id: next_id, island: to, parent: Some(program.id), ..(*program).clone() };
                        next_id += 1;
                        if let Some(cell) = grid_cell(&pop, &copy) {
                            let slot = oracle.cells.entry((to, cell)).or_insert(copy.score);
                            if direction.is_better(copy.score, *slot) {
                                *slot = copy.score;
                            }
                        }
                        pop.insert(Arc::new(copy));
                    }
                }
                Op::Resubmit { island, pick, score } => {
                    let members = pop.members(island);
                    let original = members[pick % members.len()].clone();
                    let copy = Program { id: next_id, score, ..(*original).clone() };
                    next_id += 1;
                    prop_assert!(!pop.insert(Arc::new(copy)), "same code entered island {} twice", island);
                }
            }
            check(&pop, &oracle)?;
        }
    }
}
