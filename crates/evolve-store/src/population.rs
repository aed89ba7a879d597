//! Islands of scored programs, each with an elite list and a MAP-Elites
//! grid, for choosing parents, inspirations, migrants and near-duplicates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use evolve_core::{
    Direction, FeatureSpec, MigrationTopology, ObjectiveSpec, ProblemSpec, Program, ProgramId,
    code_hash,
};
use rand::Rng;

use crate::map_elites::{Cell, Grid};
use crate::novelty::{NoveltyIndex, Signature};
use crate::pareto;
use crate::selection::{self, Contestant, SelectionParams};

/// Everything the population needs to know about a run.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationConfig {
    /// Number of islands.
    pub islands: usize,
    /// Programs each island keeps in its elite list.
    pub archive_size: usize,
    /// Direction of the evaluator's objective.
    pub direction: Direction,
    /// Parent selection.
    pub selection: SelectionParams,
    /// Probability of taking the island's best before applying the strategy.
    pub exploitation: f64,
    /// MAP-Elites dimensions.
    pub features: Vec<FeatureSpec>,
    /// Objectives for Pareto selection (empty: the evaluator's objective).
    pub objectives: Vec<ObjectiveSpec>,
    /// Estimated Jaccard similarity at which a candidate counts as a duplicate.
    pub novelty_threshold: Option<f64>,
}

impl PopulationConfig {
    /// The configuration a problem spec asks for.
    pub fn from_spec(spec: &ProblemSpec) -> PopulationConfig {
        let e = &spec.evolution;
        PopulationConfig {
            islands: e.islands.max(1),
            archive_size: e.archive_size.max(1),
            direction: spec.evaluator.direction,
            selection: SelectionParams {
                strategy: e.selection,
                tournament_size: e.tournament_size,
                power_law_exponent: e.power_law_exponent,
            },
            exploitation: e.exploitation,
            features: e.features.clone(),
            objectives: e.objectives.clone(),
            novelty_threshold: e.novelty_threshold,
        }
    }

    /// A single-objective configuration with default selection, for tests and tools.
    pub fn simple(islands: usize, archive_size: usize, direction: Direction) -> PopulationConfig {
        PopulationConfig {
            islands: islands.max(1),
            archive_size: archive_size.max(1),
            direction,
            selection: SelectionParams {
                strategy: Default::default(),
                tournament_size: 3,
                power_law_exponent: 1.0,
            },
            exploitation: 0.0,
            features: Vec::new(),
            objectives: Vec::new(),
            novelty_threshold: None,
        }
    }
}

/// A near-duplicate found on an island.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearDuplicate {
    /// The program it resembles.
    pub id: ProgramId,
    /// Estimated Jaccard similarity of their token shingles.
    pub similarity: f64,
}

/// One island: its elite list, its grid cells, and the union of both (the
/// members parents are drawn from).
#[derive(Debug, Clone, Default)]
struct Island {
    /// Best first, at most `archive_size`.
    elites: Vec<Arc<Program>>,
    elite_ids: HashSet<ProgramId>,
    /// The best program that ever entered each cell (since the last reset).
    cells: HashMap<Cell, Arc<Program>>,
    /// Selection pool: every elite and every cell occupant, once.
    members: Vec<Arc<Program>>,
    position: HashMap<ProgramId, usize>,
    member_cell: HashMap<ProgramId, Cell>,
    codes: HashSet<u64>,
    /// Selection fitness per member, parallel to `members`, for Pareto runs.
    pareto_fitness: Vec<f64>,
    novelty: NoveltyIndex,
    /// The program the island started from (for the best-of-n baseline).
    origin: Option<Arc<Program>>,
}

impl Island {
    fn best(&self) -> Option<&Arc<Program>> {
        self.elites.first()
    }

    fn add_member(&mut self, program: Arc<Program>, cell: Option<Cell>) {
        self.codes.insert(code_hash(&program.code));
        self.position.insert(program.id, self.members.len());
        if let Some(cell) = cell {
            self.member_cell.insert(program.id, cell);
        }
        self.members.push(program);
    }

    /// Drops `id` from the pool unless it is still an elite or holds a cell.
    fn release(&mut self, id: ProgramId) {
        let holds_cell = self
            .member_cell
            .get(&id)
            .is_some_and(|cell| self.cells.get(cell).is_some_and(|p| p.id == id));
        if self.elite_ids.contains(&id) || holds_cell {
            return;
        }
        let Some(at) = self.position.remove(&id) else {
            return;
        };
        let gone = self.members.swap_remove(at);
        if let Some(moved) = self.members.get(at) {
            self.position.insert(moved.id, at);
        }
        self.member_cell.remove(&id);
        self.codes.remove(&code_hash(&gone.code));
        self.novelty.remove(id);
    }
}

/// The in-memory population.
///
/// Invariants: only scored programs (finite objective) enter; a child joins
/// its parent's island; an island never holds the same code twice; a cell
/// holds the best program that ever entered it; an island's best and the
/// global best are never evicted. Memory and the cost of selection and
/// insertion are bounded by the archives, not by the programs stored.
#[derive(Debug, Clone)]
pub struct Population {
    config: PopulationConfig,
    grid: Grid,
    islands: Vec<Island>,
    evaluated: HashSet<u64>,
    children: HashMap<ProgramId, u32>,
    best: Option<Arc<Program>>,
}

impl Population {
    /// An empty population.
    pub fn new(config: PopulationConfig) -> Population {
        Population {
            grid: Grid::new(config.features.clone()),
            islands: vec![Island::default(); config.islands.max(1)],
            evaluated: HashSet::new(),
            children: HashMap::new(),
            best: None,
            config,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PopulationConfig {
        &self.config
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

    /// Counts one more evaluated child of `parent` (weighted selection favours the less used).
    pub fn note_child(&mut self, parent: ProgramId) {
        *self.children.entry(parent).or_default() += 1;
    }

    /// Sets the child count of `parent` (when rebuilding from the store).
    pub fn set_children(&mut self, parent: ProgramId, children: u32) {
        self.children.insert(parent, children);
    }

    /// Evaluated children of `id` so far.
    pub fn children_of(&self, id: ProgramId) -> u32 {
        self.children.get(&id).copied().unwrap_or(0)
    }

    fn better(&self, a: &Program, b: &Program) -> bool {
        self.config.direction.is_better(a.score, b.score)
    }

    /// Adds a scored program to its island, if it earns a place there (among
    /// the island's elites, or as the best of its cell). Gives whether it did.
    ///
    /// Non-finite scores, unknown islands and code already on the island are refused.
    pub fn insert(&mut self, program: Arc<Program>) -> bool {
        let signature = self
            .config
            .novelty_threshold
            .map(|_| Signature::of(&program.code));
        self.insert_with(program, signature)
    }

    fn insert_with(&mut self, program: Arc<Program>, signature: Option<Signature>) -> bool {
        let hash = code_hash(&program.code);
        self.evaluated.insert(hash);
        let index = program.island as usize;
        if !program.score.is_finite()
            || index >= self.islands.len()
            || self.islands[index].codes.contains(&hash)
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
        let direction = self.config.direction;
        let archive_size = self.config.archive_size;
        let cell = self.grid.cell(&program);
        let island = &mut self.islands[index];
        let mut released = Vec::new();

        // Stable: among equal scores the earlier program stays ahead.
        let at = island
            .elites
            .partition_point(|p| !direction.is_better(program.score, p.score));
        let elite = at < archive_size;
        if elite {
            island.elites.insert(at, program.clone());
            island.elite_ids.insert(program.id);
            let overflow = (island.elites.len() > archive_size)
                .then(|| island.elites.pop())
                .flatten();
            if let Some(evicted) = overflow {
                island.elite_ids.remove(&evicted.id);
                released.push(evicted.id);
            }
        }
        let mut holds_cell = false;
        if let Some(cell) = cell {
            let occupant = island.cells.get(&cell);
            if occupant.is_none_or(|o| direction.is_better(program.score, o.score)) {
                if let Some(old) = island.cells.insert(cell, program.clone()) {
                    released.push(old.id);
                }
                holds_cell = true;
            }
        }
        if !(elite || holds_cell) {
            return false;
        }
        if island.origin.is_none() {
            island.origin = Some(program.clone());
        }
        let id = program.id;
        island.add_member(program, cell.filter(|_| holds_cell));
        if let Some(signature) = signature {
            island.novelty.insert(id, signature);
        }
        for gone in released {
            island.release(gone);
        }
        self.refresh_pareto(index);
        true
    }

    /// Recomputes Pareto ranks of an island's members (multi-objective runs only).
    fn refresh_pareto(&mut self, index: usize) {
        if self.config.objectives.is_empty() {
            return;
        }
        let objectives = &self.config.objectives;
        let island = &mut self.islands[index];
        let points: Vec<Vec<f64>> = island
            .members
            .iter()
            .map(|p| objective_point(objectives, p))
            .collect();
        island.pareto_fitness = pareto::ranks(&points)
            .into_iter()
            .map(|rank| -f64::from(rank))
            .collect();
    }

    /// Empties an island (FunSearch's reset), keeping the global best record.
    pub fn reset_island(&mut self, island: usize) {
        if let Some(slot) = self.islands.get_mut(island) {
            let origin = slot.origin.take();
            *slot = Island {
                origin,
                ..Island::default()
            };
        }
    }

    /// The best program of the whole population.
    pub fn best(&self) -> Option<&Arc<Program>> {
        self.best.as_ref()
    }

    /// The best program of one island.
    pub fn island_best(&self, island: usize) -> Option<&Arc<Program>> {
        self.islands.get(island).and_then(Island::best)
    }

    /// The elite list of one island, best first.
    pub fn island(&self, island: usize) -> &[Arc<Program>] {
        self.islands
            .get(island)
            .map_or(&[], |i| i.elites.as_slice())
    }

    /// Every member of one island (elites and cell holders), in no particular order.
    pub fn members(&self, island: usize) -> &[Arc<Program>] {
        self.islands
            .get(island)
            .map_or(&[], |i| i.members.as_slice())
    }

    /// The occupant of each cell of one island.
    pub fn cells(&self, island: usize) -> impl Iterator<Item = (Cell, &Arc<Program>)> {
        self.islands
            .get(island)
            .into_iter()
            .flat_map(|i| i.cells.iter().map(|(c, p)| (*c, p)))
    }

    /// The grid cell a program falls in, if it has every feature.
    pub fn cell_of(&self, program: &Program) -> Option<Cell> {
        self.grid.cell(program)
    }

    /// True when `code` already lives on `island`.
    pub fn island_has(&self, island: usize, code: &str) -> bool {
        self.islands
            .get(island)
            .is_some_and(|i| i.codes.contains(&code_hash(code)))
    }

    /// The most similar program on `island` when it is at least as similar as
    /// the novelty threshold (none when the filter is off).
    pub fn near_duplicate(&self, island: usize, code: &str) -> Option<NearDuplicate> {
        let threshold = self.config.novelty_threshold?;
        let island = self.islands.get(island)?;
        let (id, similarity) = island.novelty.nearest(&Signature::of(code))?;
        (similarity >= threshold).then_some(NearDuplicate { id, similarity })
    }

    /// Computes novelty signatures of every member in bulk (after a rebuild).
    fn index_novelty(&mut self) {
        if self.config.novelty_threshold.is_none() {
            return;
        }
        for island in &mut self.islands {
            let codes: Vec<&str> = island.members.iter().map(|p| p.code.as_str()).collect();
            let signatures = Signature::of_all(&codes);
            let ids: Vec<ProgramId> = island.members.iter().map(|p| p.id).collect();
            island.novelty.clear();
            for (id, signature) in ids.into_iter().zip(signatures) {
                island.novelty.insert(id, signature);
            }
        }
    }

    /// A parent from `island` by the configured strategy. Falls back to the
    /// global best when the island is empty.
    pub fn select_parent(&self, island: usize, rng: &mut impl Rng) -> Option<Arc<Program>> {
        let Some(slot) = self.islands.get(island).filter(|i| !i.members.is_empty()) else {
            return self.best.clone();
        };
        use evolve_core::SelectionStrategy::{BestOfN, HillClimb};
        match self.config.selection.strategy {
            BestOfN => return slot.origin.clone().or_else(|| slot.best().cloned()),
            HillClimb => return slot.best().cloned(),
            _ => {}
        }
        if self.config.exploitation > 0.0 && rng.random_bool(self.config.exploitation.min(1.0)) {
            return slot.best().cloned();
        }
        let contestants: Vec<Contestant> = slot
            .members
            .iter()
            .enumerate()
            .map(|(i, p)| Contestant {
                fitness: slot
                    .pareto_fitness
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| self.config.direction.fitness(p.score)),
                children: self.children_of(p.id),
            })
            .collect();
        selection::choose(&self.config.selection, &contestants, rng)
            .and_then(|i| slot.members.get(i).cloned())
    }

    /// Up to `count` distinct programs of `island` other than `parent`: the
    /// island's best, then an occupant of a cell next to the parent's, then
    /// elites, then any members.
    pub fn inspirations(
        &self,
        island: usize,
        parent: &Program,
        count: usize,
        rng: &mut impl Rng,
    ) -> Vec<Arc<Program>> {
        let Some(slot) = self.islands.get(island) else {
            return Vec::new();
        };
        let parent_hash = code_hash(&parent.code);
        let mut chosen: Vec<Arc<Program>> = Vec::with_capacity(count);
        let take = |p: &Arc<Program>, chosen: &mut Vec<Arc<Program>>| {
            if chosen.len() < count
                && p.id != parent.id
                && code_hash(&p.code) != parent_hash
                && chosen.iter().all(|c| c.id != p.id)
            {
                chosen.push(p.clone());
            }
        };
        if let Some(best) = slot.best() {
            take(best, &mut chosen);
        }
        if let Some(cell) = self.grid.cell(parent).filter(|_| !self.grid.is_trivial()) {
            let neighbours: Vec<&Arc<Program>> = self
                .grid
                .neighbours(cell)
                .into_iter()
                .filter_map(|c| slot.cells.get(&c))
                .collect();
            if !neighbours.is_empty() {
                take(
                    neighbours[rng.random_range(0..neighbours.len())],
                    &mut chosen,
                );
            }
        }
        for pool in [&slot.elites, &slot.members] {
            let mut tries = 0;
            while chosen.len() < count && !pool.is_empty() && tries < 4 * count + 4 {
                take(&pool[rng.random_range(0..pool.len())], &mut chosen);
                tries += 1;
            }
        }
        // Small islands: a deterministic sweep finds whatever the draws missed.
        for p in slot.elites.iter().chain(&slot.members) {
            take(p, &mut chosen);
        }
        chosen
    }

    /// Migration plan: each island's `count` best go to the islands the
    /// topology names, unless identical code already lives there.
    pub fn migrants(
        &self,
        topology: MigrationTopology,
        count: usize,
        rng: &mut impl Rng,
    ) -> Vec<(Arc<Program>, u32)> {
        let n = self.islands.len();
        if n < 2 {
            return Vec::new();
        }
        let mut plan: Vec<(Arc<Program>, u32)> = Vec::new();
        for from in 0..n {
            let targets: Vec<usize> = match topology {
                MigrationTopology::Ring => vec![(from + 1) % n],
                MigrationTopology::All => (0..n).filter(|&to| to != from).collect(),
                MigrationTopology::Random => {
                    let pick = rng.random_range(0..n - 1);
                    vec![if pick >= from { pick + 1 } else { pick }]
                }
            };
            for program in self.islands[from].elites.iter().take(count) {
                for &to in &targets {
                    let hash = code_hash(&program.code);
                    let planned = plan
                        .iter()
                        .any(|(p, t)| *t as usize == to && code_hash(&p.code) == hash);
                    if !planned && !self.islands[to].codes.contains(&hash) {
                        plan.push((program.clone(), to as u32));
                    }
                }
            }
        }
        plan
    }

    /// Reset plan: the weaker half of the islands (by their best), each to be
    /// emptied and re-seeded with the best of a randomly chosen stronger island.
    pub fn reset_plan(&self, rng: &mut impl Rng) -> Vec<(u32, Arc<Program>)> {
        let n = self.islands.len();
        if n < 2 {
            return Vec::new();
        }
        let direction = self.config.direction;
        let mut order: Vec<usize> = (0..n).collect();
        // Weakest first; empty islands are weakest; ties keep the lower index stronger.
        order.sort_by(|&a, &b| {
            let fa = self.islands[a].best().map(|p| direction.fitness(p.score));
            let fb = self.islands[b].best().map(|p| direction.fitness(p.score));
            match (fa, fb) {
                (Some(x), Some(y)) => x.total_cmp(&y).then(b.cmp(&a)),
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (None, None) => b.cmp(&a),
            }
        });
        let (weak, strong) = order.split_at(n / 2);
        let donors: Vec<&Arc<Program>> = strong
            .iter()
            .filter_map(|&i| self.islands[i].best())
            .collect();
        if donors.is_empty() {
            return Vec::new();
        }
        weak.iter()
            .map(|&i| {
                let donor = donors[rng.random_range(0..donors.len())];
                (i as u32, donor.clone())
            })
            .collect()
    }

    /// Places the initial program on every island: each island starts from it.
    pub fn seed(&mut self, program: Program) {
        for island in 0..self.islands.len() {
            self.insert(Arc::new(Program {
                island: island as u32,
                ..program.clone()
            }));
        }
    }

    /// [`Population::seed`] during a rebuild (signatures are computed at the end).
    pub(crate) fn seed_unindexed(&mut self, program: Program) {
        for island in 0..self.islands.len() {
            self.insert_with(
                Arc::new(Program {
                    island: island as u32,
                    ..program.clone()
                }),
                None,
            );
        }
    }

    /// Finishes a rebuild: novelty signatures in bulk.
    pub(crate) fn finish_rebuild(&mut self) {
        self.index_novelty();
    }

    /// Adds a program during a rebuild (signatures are computed at the end).
    pub(crate) fn insert_unindexed(&mut self, program: Arc<Program>) -> bool {
        self.insert_with(program, None)
    }
}

/// A program's objective vector, larger better everywhere; a missing or
/// non-finite metric counts as the worst possible value.
fn objective_point(objectives: &[ObjectiveSpec], program: &Program) -> Vec<f64> {
    objectives
        .iter()
        .map(|o| {
            program
                .metrics
                .get(&o.metric)
                .copied()
                .filter(|v| v.is_finite())
                .map_or(f64::NEG_INFINITY, |v| o.direction.fitness(v))
        })
        .collect()
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

    fn simple(islands: usize, archive: usize, direction: Direction) -> Population {
        Population::new(PopulationConfig::simple(islands, archive, direction))
    }

    #[test]
    fn archive_keeps_the_best_and_never_evicts_them() {
        let mut pop = simple(2, 3, Direction::Maximize);
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
        let mut pop = simple(1, 10, Direction::Minimize);
        assert!(pop.insert(program(1, 0, 2.0)));
        assert!(!pop.insert(program(2, 0, f64::NAN)));
        assert!(!pop.insert(program(3, 0, f64::NEG_INFINITY)));
        assert!(pop.insert(program(4, 0, -1.0)));
        assert_eq!(pop.best().unwrap().id, 4);
        assert_eq!(pop.island(0).len(), 2);
    }

    #[test]
    fn duplicate_code_is_refused_per_island() {
        let mut pop = simple(2, 10, Direction::Maximize);
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
        let mut pop = simple(2, 10, Direction::Maximize);
        for id in 0..6 {
            pop.insert(program(id, (id % 2) as u32, id as f64));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let parent = pop.select_parent(1, &mut rng).unwrap();
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
        let mut pop = simple(3, 10, Direction::Maximize);
        pop.insert(program(1, 0, 1.0));
        pop.insert(program(2, 1, 2.0));
        pop.insert(Arc::new(Program {
            island: 2,
            ..(*program(1, 0, 1.0)).clone()
        }));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let plan: Vec<(i64, u32)> = pop
            .migrants(MigrationTopology::Ring, 1, &mut rng)
            .iter()
            .map(|(p, to)| (p.id, *to))
            .collect();
        assert_eq!(plan, [(1, 1), (2, 2)]);
        let all = pop.migrants(MigrationTopology::All, 1, &mut rng);
        // 1→1, 2→0, 2→2; island 2 holds code 1 already, and its copy of 1 is planned for 1 once.
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn cells_keep_their_best_even_outside_the_elites() {
        let mut config = PopulationConfig::simple(1, 2, Direction::Maximize);
        config.features = vec![FeatureSpec {
            metric: "size".into(),
            min: 0.0,
            max: 3.0,
            bins: 3,
        }];
        let mut pop = Population::new(config);
        let with = |id: i64, score: f64, size: f64| {
            Arc::new(Program {
                metrics: [("size".to_string(), size)].into(),
                ..(*program(id, 0, score)).clone()
            })
        };
        assert!(pop.insert(with(1, 1.0, 0.5)));
        assert!(pop.insert(with(2, 9.0, 2.5)));
        assert!(pop.insert(with(3, 8.0, 2.6)));
        // Program 1 left the elites but still holds cell 0.
        assert_eq!(pop.island(0).len(), 2);
        assert_eq!(pop.members(0).len(), 3);
        assert!(!pop.insert(with(4, 0.5, 0.1)), "worse than cell 0's holder");
        assert!(pop.insert(with(5, 2.0, 0.2)));
        let cell0: Vec<i64> = pop
            .cells(0)
            .filter(|(c, _)| *c == 0)
            .map(|(_, p)| p.id)
            .collect();
        assert_eq!(cell0, [5]);
        assert!(!pop.members(0).iter().any(|p| p.id == 1));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let parent = pop.members(0).iter().find(|p| p.id == 5).unwrap().clone();
        let inspirations = pop.inspirations(0, &parent, 3, &mut rng);
        assert_eq!(inspirations.len(), 2);
    }

    #[test]
    fn reset_reseeds_the_weaker_half_from_the_stronger() {
        let mut pop = simple(4, 5, Direction::Minimize);
        for (island, score) in [(0u32, 4.0), (1, 1.0), (2, 3.0), (3, 2.0)] {
            pop.insert(program(i64::from(island) + 1, island, score));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut plan = pop.reset_plan(&mut rng);
        plan.sort_by_key(|(island, _)| *island);
        let reset: Vec<u32> = plan.iter().map(|(i, _)| *i).collect();
        assert_eq!(reset, [0, 2]);
        assert!(plan.iter().all(|(_, donor)| donor.id == 2 || donor.id == 4));
        pop.reset_island(0);
        assert!(pop.members(0).is_empty());
        assert_eq!(pop.best().unwrap().id, 2);
    }

    #[test]
    fn baselines_pick_the_origin_or_the_best() {
        let mut config = PopulationConfig::simple(1, 5, Direction::Maximize);
        config.selection.strategy = evolve_core::SelectionStrategy::BestOfN;
        let mut pop = Population::new(config.clone());
        for id in 1..5 {
            pop.insert(program(id, 0, id as f64));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(pop.select_parent(0, &mut rng).unwrap().id, 1);
        config.selection.strategy = evolve_core::SelectionStrategy::HillClimb;
        let mut pop = Population::new(config);
        for id in 1..5 {
            pop.insert(program(id, 0, id as f64));
        }
        assert_eq!(pop.select_parent(0, &mut rng).unwrap().id, 4);
    }

    #[test]
    fn near_duplicates_are_found_only_when_the_filter_is_on() {
        let code = |tail: &str| {
            let mut c = String::from("def f(x):\n");
            for i in 0..30 {
                c.push_str(&format!("    y{i} = x * {i} + {i}\n"));
            }
            c + tail
        };
        let mut config = PopulationConfig::simple(2, 5, Direction::Maximize);
        let mut off = Population::new(config.clone());
        config.novelty_threshold = Some(0.8);
        let mut on = Population::new(config);
        for pop in [&mut on, &mut off] {
            pop.insert(Arc::new(Program {
                code: code("    return y1\n"),
                ..(*program(1, 0, 1.0)).clone()
            }));
        }
        let hit = on.near_duplicate(0, &code("    return y2\n")).unwrap();
        assert_eq!(hit.id, 1);
        assert!(on.near_duplicate(1, &code("    return y2\n")).is_none());
        assert!(
            on.near_duplicate(0, "print('something else entirely')")
                .is_none()
        );
        assert!(off.near_duplicate(0, &code("    return y1\n")).is_none());
    }

    #[test]
    fn pareto_selection_never_picks_a_dominated_member_over_the_front_in_hill_climb_order() {
        let mut config = PopulationConfig::simple(1, 10, Direction::Maximize);
        config.selection.strategy = evolve_core::SelectionStrategy::Tournament;
        config.selection.tournament_size = 50;
        config.objectives = vec![
            ObjectiveSpec {
                metric: "a".into(),
                direction: Direction::Maximize,
            },
            ObjectiveSpec {
                metric: "b".into(),
                direction: Direction::Minimize,
            },
        ];
        let mut pop = Population::new(config);
        for (id, a, b) in [(1, 1.0, 1.0), (2, 0.5, 2.0), (3, 0.9, 1.5)] {
            pop.insert(Arc::new(Program {
                metrics: [("a".to_string(), a), ("b".to_string(), b)].into(),
                ..(*program(id, 0, a)).clone()
            }));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            assert_eq!(pop.select_parent(0, &mut rng).unwrap().id, 1);
        }
    }
}
