//! Population settings of `[evolution]`: parent selection, migration,
//! island reset, novelty, MAP-Elites feature dimensions and objectives.
//!
//! Kept apart from `spec.rs` so the population's knobs live in one place.

use serde::{Deserialize, Serialize};

use crate::outcome::Direction;

/// How a parent is drawn from its island.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionStrategy {
    /// Every member equally likely.
    Uniform,
    /// Likelihood proportional to fitness shifted above the island's worst.
    FitnessProportional,
    /// Likelihood `rank^-exponent`, best rank 1.
    PowerLaw,
    /// Sigmoid of the normalised score times `1 / (1 + children)`.
    #[default]
    Weighted,
    /// The best of `tournament_size` uniformly drawn members.
    Tournament,
    /// Baseline: always the initial program (repeated sampling from the start).
    BestOfN,
    /// Baseline: always the island's current best.
    HillClimb,
}

impl SelectionStrategy {
    /// The name used in problem.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionStrategy::Uniform => "uniform",
            SelectionStrategy::FitnessProportional => "fitness-proportional",
            SelectionStrategy::PowerLaw => "power-law",
            SelectionStrategy::Weighted => "weighted",
            SelectionStrategy::Tournament => "tournament",
            SelectionStrategy::BestOfN => "best-of-n",
            SelectionStrategy::HillClimb => "hill-climb",
        }
    }
}

/// Which islands receive an island's elites at migration time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationTopology {
    /// Island `i` sends to island `i + 1`, the last to the first.
    #[default]
    Ring,
    /// Every island sends to every other island.
    All,
    /// Each island sends to one other island drawn at random.
    Random,
}

/// One MAP-Elites dimension: a metric (or built-in) cut into fixed bins.
///
/// The range is declared, not learned, so a program's cell never moves as
/// the population grows; values outside the range go to the edge bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// An evaluator metric, or a built-in: `code_length` (bytes), `code_lines`.
    pub metric: String,
    /// Lower end of the range.
    pub min: f64,
    /// Upper end of the range.
    pub max: f64,
    /// Number of equal-width bins over the range.
    #[serde(default = "default_bins")]
    pub bins: u32,
}

fn default_bins() -> u32 {
    10
}

/// One objective of a multi-objective run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    /// The metric.
    pub metric: String,
    /// Whether it should rise or fall.
    pub direction: Direction,
}

/// Checks the population keys; gives the dotted key and the complaint.
pub(crate) fn validate(
    features: &[FeatureSpec],
    objectives: &[ObjectiveSpec],
    novelty_threshold: Option<f64>,
    tournament_size: usize,
    power_law_exponent: f64,
) -> Result<(), (String, String)> {
    for (i, feature) in features.iter().enumerate() {
        let key = |k: &str| format!("evolution.features[{i}].{k}");
        if feature.metric.trim().is_empty() {
            return Err((key("metric"), "must name a metric".into()));
        }
        if !(feature.min.is_finite() && feature.max.is_finite() && feature.min < feature.max) {
            return Err((
                key("max"),
                format!(
                    "the range must be finite with min < max, got {}..{}",
                    feature.min, feature.max
                ),
            ));
        }
        if !(1..=1000).contains(&feature.bins) {
            return Err((key("bins"), "must lie between 1 and 1000".into()));
        }
    }
    let cells: u64 = features.iter().map(|f| u64::from(f.bins)).product();
    if cells > 100_000 {
        return Err((
            "evolution.features".into(),
            format!("{cells} cells per island is too many (at most 100000)"),
        ));
    }
    for (i, objective) in objectives.iter().enumerate() {
        if objective.metric.trim().is_empty() {
            return Err((
                format!("evolution.objectives[{i}].metric"),
                "must name a metric".into(),
            ));
        }
    }
    if objectives.len() == 1 {
        return Err((
            "evolution.objectives".into(),
            "give at least two objectives (one is the evaluator's objective)".into(),
        ));
    }
    if let Some(t) = novelty_threshold.filter(|t| !(*t > 0.0 && *t <= 1.0)) {
        return Err((
            "evolution.novelty_threshold".into(),
            format!("must lie in (0, 1], got {t}"),
        ));
    }
    if tournament_size < 1 {
        return Err((
            "evolution.tournament_size".into(),
            "must be at least 1".into(),
        ));
    }
    if !(power_law_exponent.is_finite() && power_law_exponent >= 0.0) {
        return Err((
            "evolution.power_law_exponent".into(),
            "must be a finite number >= 0".into(),
        ));
    }
    Ok(())
}
