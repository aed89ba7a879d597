//! Islands of scored programs, for choosing parents and inspirations.

use std::collections::HashSet;
use std::sync::Arc;

use evolve_core::{Direction, Program, code_hash};
use rand::Rng;

/// The in-memory population: per island, an archive of its best distinct
/// programs ordered best first.
///
/// Invariants: only scored programs (finite objective) enter; a child joins
/// its parent's island; an island never holds the same code twice; an
/// island's best is never evicted, so neither is the global best.
#[derive(Debug, Clone)]
pub struct Population {
    islands: Vec<Vec<Arc<Program>>>,
    island_codes: Vec<HashSet<u64>>,
    evaluated: HashSet<u64>,
    direction: Direction,
    archive_size: usize,
    best: Option<Arc<Program>>,
}

impl Population {
    /// An empty population with `islands` islands of at most `archive_size` programs.
    pub fn new(islands: usize, archive_size: usize, direction: Direction) -> Population {
        Population {
            islands: vec![Vec::new(); islands.max(1)],
            island_codes: vec![HashSet::new(); islands.max(1)],
            evaluated: HashSet::new(),
            direction,
            archive_size: archive_size.max(1),
            best: None,
        }
    }

    /// Number of islands.
    pub fn island_count(&self) -> usize {
        self.islands.len()
    }

    /// Remembers that this code was evaluated (scored or failed).
    pub fn mark_evaluated(&mut self, hash: u64) {
        self.evaluated.insert(hash);
    }

    /// True when identical code was already evaluated in this run.
    pub fn was_evaluated(&self, hash: u64) -> bool {
        self.evaluated.contains(&hash)
    }

    fn better(&self, a: &Program, b: &Program) -> bool {
        self.direction.is_better(a.score, b.score)
    }

    /// Adds a scored program to its island, if it earns a place there.
    ///
    /// Non-finite scores and code already on the island are refused.
    pub fn insert(&mut self, program: Arc<Program>) -> bool {
        let hash = code_hash(&program.code);
        self.evaluated.insert(hash);
        let index = program.island as usize;
        if !program.score.is_finite()
            || index >= self.islands.len()
            || self.island_codes[index].contains(&hash)
        {
            return false;
        }
        if self
            .best
            .as_ref()
            .is_none_or(|best| self.better(&program, best))
        {
            self.best = Some(program.clone());
        }
        let direction = self.direction;
        let island = &mut self.islands[index];
        // Stable: among equal scores the earlier program stays ahead.
        let at = island.partition_point(|p| !direction.is_better(program.score, p.score));
        if at >= self.archive_size {
            return false;
        }
        island.insert(at, program);
        self.island_codes[index].insert(hash);
        if island.len() > self.archive_size {
            if let Some(evicted) = island.pop() {
                self.island_codes[index].remove(&code_hash(&evicted.code));
            }
        }
        true
    }

    /// The best program of the whole population.
    pub fn best(&self) -> Option<&Arc<Program>> {
        self.best.as_ref()
    }

    /// The best program of one island.
    pub fn island_best(&self, island: usize) -> Option<&Arc<Program>> {
        self.islands.get(island).and_then(|i| i.first())
    }

    /// The archive of one island, best first.
    pub fn island(&self, island: usize) -> &[Arc<Program>] {
        self.islands.get(island).map_or(&[], Vec::as_slice)
    }

    /// True when `code` already lives on `island`.
    pub fn island_has(&self, island: usize, code: &str) -> bool {
        self.island_codes
            .get(island)
            .is_some_and(|c| c.contains(&code_hash(code)))
    }

    /// A parent from `island`: its best with probability `exploitation`,
    /// otherwise a uniformly random member. Falls back to the global best
    /// when the island is still empty.
    pub fn select_parent(
        &self,
        island: usize,
        exploitation: f64,
        rng: &mut impl Rng,
    ) -> Option<Arc<Program>> {
        let members = self.island(island);
        if members.is_empty() {
            return self.best.clone();
        }
        if rng.random_bool(exploitation.clamp(0.0, 1.0)) {
            return members.first().cloned();
        }
        members.get(rng.random_range(0..members.len())).cloned()
    }

    /// Up to `count` distinct programs of `island` other than `parent`: the
    /// island's best first (when it is not the parent), then random members.
    pub fn inspirations(
        &self,
        island: usize,
        parent: &Program,
        count: usize,
        rng: &mut impl Rng,
    ) -> Vec<Arc<Program>> {
        let mut others: Vec<&Arc<Program>> = self
            .island(island)
            .iter()
            .filter(|p| p.id != parent.id)
            .collect();
        let mut chosen = Vec::with_capacity(count);
        if count > 0 && !others.is_empty() {
            chosen.push(others.remove(0).clone());
        }
        while chosen.len() < count && !others.is_empty() {
            let pick = rng.random_range(0..others.len());
            chosen.push(others.swap_remove(pick).clone());
        }
        chosen
    }

    /// Migration plan on a ring: each island's best goes to the next island,
    /// unless identical code already lives there.
    pub fn ring_migrants(&self) -> Vec<(Arc<Program>, u32)> {
        let n = self.islands.len();
        if n < 2 {
            return Vec::new();
        }
        (0..n)
            .filter_map(|from| {
                let to = (from + 1) % n;
                let best = self.island_best(from)?;
                (!self.island_has(to, &best.code)).then(|| (best.clone(), to as u32))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn program(id: i64, island: u32, score: f64) -> Arc<Program> {
        Arc::new(Program {
            id,
            parent: None,
            island,
            generation: 0,
            code: format!("code {id}"),
            score,
            metrics: Default::default(),
            artifacts: Default::default(),
        })
    }

    #[test]
    fn archive_keeps_the_best_and_never_evicts_them() {
        let mut pop = Population::new(2, 3, Direction::Maximize);
        for (id, score) in [(1, 5.0), (2, 1.0), (3, 9.0), (4, 3.0), (5, 0.5), (6, 7.0)] {
            pop.insert(program(id, 0, score));
        }
        let scores: Vec<f64> = pop.island(0).iter().map(|p| p.score).collect();
        assert_eq!(scores, [9.0, 7.0, 5.0]);
        assert_eq!(pop.best().unwrap().id, 3);
        assert!(pop.island(1).is_empty());
    }

    #[test]
    fn minimize_orders_ascending_and_refuses_non_finite() {
        let mut pop = Population::new(1, 10, Direction::Minimize);
        assert!(pop.insert(program(1, 0, 2.0)));
        assert!(!pop.insert(program(2, 0, f64::NAN)));
        assert!(!pop.insert(program(3, 0, f64::NEG_INFINITY)));
        assert!(pop.insert(program(4, 0, -1.0)));
        assert_eq!(pop.best().unwrap().id, 4);
        assert_eq!(pop.island(0).len(), 2);
    }

    #[test]
    fn duplicate_code_is_refused_per_island() {
        let mut pop = Population::new(2, 10, Direction::Maximize);
        assert!(pop.insert(program(1, 0, 1.0)));
        let copy = Arc::new(Program {
            id: 2,
            ..(*program(1, 0, 2.0)).clone()
        });
        assert!(!pop.insert(copy.clone()));
        assert!(pop.insert(Arc::new(Program {
            island: 1,
            ..(*copy).clone()
        })));
    }

    #[test]
    fn selection_stays_on_the_island_and_inspirations_exclude_the_parent() {
        let mut pop = Population::new(2, 10, Direction::Maximize);
        for id in 0..6 {
            pop.insert(program(id, (id % 2) as u32, id as f64));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let parent = pop.select_parent(1, 0.3, &mut rng).unwrap();
            assert_eq!(parent.island, 1);
            let inspirations = pop.inspirations(1, &parent, 2, &mut rng);
            assert!(
                inspirations
                    .iter()
                    .all(|p| p.id != parent.id && p.island == 1)
            );
            assert_eq!(inspirations.len(), 2);
        }
    }

    #[test]
    fn ring_migration_skips_code_already_there() {
        let mut pop = Population::new(3, 10, Direction::Maximize);
        pop.insert(program(1, 0, 1.0));
        pop.insert(program(2, 1, 2.0));
        pop.insert(Arc::new(Program {
            island: 2,
            ..(*program(1, 0, 1.0)).clone()
        }));
        let plan: Vec<(i64, u32)> = pop
            .ring_migrants()
            .iter()
            .map(|(p, to)| (p.id, *to))
            .collect();
        assert_eq!(plan, [(1, 1), (2, 2)]);
    }
}
