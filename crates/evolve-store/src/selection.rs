//! Parent selection over one island's archive.
//!
//! Every function here sees only the archive (bounded by the archive size
//! and the MAP-Elites grid), never the whole population, so its cost does not
//! grow with the number of programs stored.

use evolve_core::SelectionStrategy;
use rand::Rng;

/// Steepness of the sigmoid in weighted selection. Scores are normalised by
/// the archive's spread, so the best member weighs about 1 and the worst at
/// least e^-10: strong pressure upward, yet no member is ever excluded.
const SIGMOID_STEEPNESS: f64 = 10.0;

/// Parameters of the score-based strategies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectionParams {
    /// Which strategy.
    pub strategy: SelectionStrategy,
    /// Members per tournament.
    pub tournament_size: usize,
    /// Exponent of the power law over ranks.
    pub power_law_exponent: f64,
}

/// One archive member as selection sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contestant {
    /// Larger is better (direction applied, or minus the Pareto rank).
    pub fitness: f64,
    /// Children already derived from it.
    pub children: u32,
}

/// Index of the chosen contestant, or none when there are none.
///
/// The baselines (`best-of-n`, `hill-climb`) do not use scores this way: they
/// are handled by the population, and fall back to the best here.
pub fn choose(
    params: &SelectionParams,
    contestants: &[Contestant],
    rng: &mut impl Rng,
) -> Option<usize> {
    if contestants.is_empty() {
        return None;
    }
    let n = contestants.len();
    match params.strategy {
        SelectionStrategy::Uniform => Some(rng.random_range(0..n)),
        SelectionStrategy::FitnessProportional => {
            let worst = contestants
                .iter()
                .map(|c| c.fitness)
                .fold(f64::INFINITY, f64::min);
            let best = contestants
                .iter()
                .map(|c| c.fitness)
                .fold(f64::NEG_INFINITY, f64::max);
            // A floor keeps the worst member possible and avoids all-zero weights.
            let floor = ((best - worst) * 0.01).max(1e-12);
            roulette(contestants.iter().map(|c| c.fitness - worst + floor), rng)
        }
        SelectionStrategy::PowerLaw => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| {
                contestants[b]
                    .fitness
                    .total_cmp(&contestants[a].fitness)
                    .then(a.cmp(&b))
            });
            let weights = (1..=n).map(|rank| (rank as f64).powf(-params.power_law_exponent));
            roulette(weights, rng).map(|i| order[i])
        }
        SelectionStrategy::Weighted => {
            let mut fitness: Vec<f64> = contestants.iter().map(|c| c.fitness).collect();
            let (low, high) = fitness
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &f| {
                    (lo.min(f), hi.max(f))
                });
            let median = *fitness.select_nth_unstable_by(n / 2, f64::total_cmp).1;
            let spread = (high - low).max(1e-12);
            roulette(
                contestants.iter().map(|c| {
                    let z = SIGMOID_STEEPNESS * (c.fitness - median) / spread;
                    let sigmoid = 1.0 / (1.0 + (-z).exp());
                    sigmoid / (1.0 + f64::from(c.children))
                }),
                rng,
            )
        }
        SelectionStrategy::Tournament => {
            let mut winner = rng.random_range(0..n);
            for _ in 1..params.tournament_size.max(1) {
                let other = rng.random_range(0..n);
                if contestants[other].fitness > contestants[winner].fitness {
                    winner = other;
                }
            }
            Some(winner)
        }
        SelectionStrategy::BestOfN | SelectionStrategy::HillClimb => (0..n).max_by(|&a, &b| {
            contestants[a]
                .fitness
                .total_cmp(&contestants[b].fitness)
                .then(b.cmp(&a))
        }),
    }
}

/// Draws an index with probability proportional to its weight.
fn roulette(weights: impl Iterator<Item = f64>, rng: &mut impl Rng) -> Option<usize> {
    let weights: Vec<f64> = weights
        .map(|w| if w.is_finite() && w > 0.0 { w } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    if weights.is_empty() {
        return None;
    }
    if total <= 0.0 {
        return Some(rng.random_range(0..weights.len()));
    }
    let mut target = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return Some(i);
        }
        target -= w;
    }
    weights.iter().rposition(|w| *w > 0.0)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn params(strategy: SelectionStrategy) -> SelectionParams {
        SelectionParams {
            strategy,
            tournament_size: 3,
            power_law_exponent: 1.0,
        }
    }

    fn tally(strategy: SelectionStrategy, contestants: &[Contestant]) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = vec![0; contestants.len()];
        for _ in 0..20_000 {
            counts[choose(&params(strategy), contestants, &mut rng).unwrap()] += 1;
        }
        counts
    }

    fn field(fitness: &[f64]) -> Vec<Contestant> {
        fitness
            .iter()
            .map(|&fitness| Contestant {
                fitness,
                children: 0,
            })
            .collect()
    }

    #[test]
    fn score_based_strategies_prefer_better_members_but_reach_all() {
        let members = field(&[1.0, 5.0, 3.0, 2.0]);
        for strategy in [
            SelectionStrategy::FitnessProportional,
            SelectionStrategy::PowerLaw,
            SelectionStrategy::Weighted,
            SelectionStrategy::Tournament,
        ] {
            let counts = tally(strategy, &members);
            assert!(
                counts[1] > counts[2] && counts[2] > counts[0],
                "{strategy:?}: {counts:?}"
            );
            assert!(counts.iter().all(|&c| c > 0), "{strategy:?}: {counts:?}");
        }
        let uniform = tally(SelectionStrategy::Uniform, &members);
        assert!(
            uniform.iter().all(|&c| (4_500..5_500).contains(&c)),
            "{uniform:?}"
        );
    }

    #[test]
    fn weighted_selection_spreads_away_from_prolific_parents() {
        let mut members = field(&[5.0, 5.0]);
        members[0].children = 9;
        let counts = tally(SelectionStrategy::Weighted, &members);
        assert!(counts[1] > 8 * counts[0], "{counts:?}");
    }

    #[test]
    fn baselines_fall_back_to_the_best_and_empty_gives_none() {
        let members = field(&[1.0, 5.0, 5.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            choose(&params(SelectionStrategy::HillClimb), &members, &mut rng),
            Some(1)
        );
        assert_eq!(
            choose(&params(SelectionStrategy::Weighted), &[], &mut rng),
            None
        );
    }
}
