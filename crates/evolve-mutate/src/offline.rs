//! The built-in mutator: text-level changes to evolvable regions, no model.

use async_trait::async_trait;
use evolve_core::SourceFile;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::lexer::{code_mask, comment_prefixes, numeric_literals};
use crate::{MutateError, MutationRequest, Mutator, Proposal};

/// Operator pairs swapped by the operator mutation, both ways.
const OPERATOR_SWAPS: &[(&str, &str)] = &[
    (" <= ", " < "),
    (" >= ", " > "),
    (" + ", " - "),
    (" * ", " / "),
    ("min(", "max("),
];

/// Attempts per request before giving up on finding a change.
const ATTEMPTS: usize = 16;

/// Perturbs numeric literals, swaps operators, and crosses over lines with an
/// inspiration, only inside EVOLVE-BLOCK regions.
#[derive(Debug, Clone)]
pub struct OfflineMutator {
    comments: &'static [&'static str],
}

impl OfflineMutator {
    /// A mutator for programs whose file extension is `extension` (e.g. `py`).
    pub fn for_extension(extension: &str) -> OfflineMutator {
        OfflineMutator {
            comments: comment_prefixes(extension),
        }
    }

    /// Proposes a changed program deterministically from `seed`.
    pub fn mutate(&self, request: &MutationRequest) -> Result<Proposal, MutateError> {
        let parent = SourceFile::parse(&request.parent.code)
            .map_err(|e| MutateError::Unusable(e.to_string()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
        let partners: Vec<SourceFile> = request
            .inspirations
            .iter()
            .filter_map(|p| SourceFile::parse(&p.code).ok())
            .filter(|p| {
                p.regions().len() == parent.regions().len() && p.regions() != parent.regions()
            })
            .collect();
        for _ in 0..ATTEMPTS {
            let mut regions = parent.regions().to_vec();
            let roll: f64 = rng.random();
            let kind = if roll < 0.2 && !partners.is_empty() {
                let partner = &partners[rng.random_range(0..partners.len())];
                let index = rng.random_range(0..regions.len());
                regions[index] = crossover(&regions[index], &partner.regions()[index], &mut rng);
                "crossover"
            } else if roll < 0.3 {
                let index = rng.random_range(0..regions.len());
                match self.swap_operator(&regions[index], &mut rng) {
                    Some(text) => regions[index] = text,
                    None => continue,
                }
                "operator"
            } else {
                let count =
                    1 + usize::from(rng.random_bool(0.4)) + usize::from(rng.random_bool(0.2));
                let mut changed = false;
                for _ in 0..count {
                    let index = rng.random_range(0..regions.len());
                    if let Some(text) = self.perturb_number(&regions[index], &mut rng) {
                        regions[index] = text;
                        changed = true;
                    }
                }
                if !changed {
                    continue;
                }
                "numeric"
            };
            if regions != parent.regions() {
                let code = parent
                    .with_regions(&regions)
                    .map_err(|e| MutateError::Unusable(e.to_string()))?;
                return Ok(Proposal {
                    code,
                    kind: kind.into(),
                    source: "offline".into(),
                });
            }
        }
        Err(MutateError::NoChange(format!(
            "{ATTEMPTS} attempts left the evolvable regions unchanged"
        )))
    }

    fn perturb_number(&self, region: &str, rng: &mut ChaCha8Rng) -> Option<String> {
        let mask = code_mask(region, self.comments);
        let literals = numeric_literals(region, &mask);
        if literals.is_empty() {
            return None;
        }
        let span = literals[rng.random_range(0..literals.len())].clone();
        let new = perturb_literal(&region[span.clone()], rng)?;
        let mut out = String::with_capacity(region.len() + 8);
        out.push_str(&region[..span.start]);
        out.push_str(&new);
        out.push_str(&region[span.end..]);
        Some(out)
    }

    fn swap_operator(&self, region: &str, rng: &mut ChaCha8Rng) -> Option<String> {
        let mask = code_mask(region, self.comments);
        let mut sites = Vec::new();
        for &(a, b) in OPERATOR_SWAPS {
            for (from, to) in [(a, b), (b, a)] {
                for (at, _) in region.match_indices(from) {
                    let overlaps_longer = from.len() == 3
                        && region[at..].starts_with(&format!("{}=", from.trim_end()));
                    if mask[at..at + from.len()].iter().all(|&m| m) && !overlaps_longer {
                        sites.push((at, from, to));
                    }
                }
            }
        }
        if sites.is_empty() {
            return None;
        }
        let (at, from, to) = sites[rng.random_range(0..sites.len())];
        Some(format!(
            "{}{}{}",
            &region[..at],
            to,
            &region[at + from.len()..]
        ))
    }
}

/// A nearby value for a literal: ints stay ints, floats keep a decimal point,
/// the step is relative to the value's magnitude, and the sign never flips
/// (a leading minus sign would change meaning next to another operator).
fn perturb_literal(text: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    let is_float = text.contains(['.', 'e', 'E']);
    let value: f64 = text.parse().ok()?;
    // Log-uniform step size: mostly fine tuning, sometimes bold jumps.
    let sigma = 10f64.powf(rng.random_range(-3.0..-0.5));
    let noise = gaussian(rng) * sigma;
    if !is_float {
        let value = value as i64;
        let step = ((value.abs() as f64 * noise).round() as i64).max(1)
            * if rng.random_bool(0.5) { 1 } else { -1 };
        let new = (value + step).max(0);
        return (new != value).then(|| new.to_string());
    }
    let new = if value == 0.0 {
        noise.abs()
    } else {
        (value * noise.exp()).abs()
    };
    if !new.is_finite() {
        return None;
    }
    let wanted = (-(sigma * new.max(1e-12)).log10()).ceil() as i32 + 2;
    let original = text.split_once('.').map_or(0, |(_, frac)| {
        frac.chars().take_while(char::is_ascii_digit).count() as i32
    });
    let decimals = wanted.max(original).clamp(1, 15) as usize;
    let formatted = if text.contains(['e', 'E']) {
        format!("{new:.prec$e}", prec = decimals.min(10))
    } else {
        format!("{new:.decimals$}")
    };
    (formatted != text).then_some(formatted)
}

/// A standard normal sample (Box–Muller), to avoid pulling in rand_distr.
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Mixes lines of `partner` into `own`: per line when both have the same
/// shape, otherwise one aligned chunk.
fn crossover(own: &str, partner: &str, rng: &mut ChaCha8Rng) -> String {
    let a: Vec<&str> = own.split_inclusive('\n').collect();
    let b: Vec<&str> = partner.split_inclusive('\n').collect();
    if a.len() == b.len() {
        return a
            .iter()
            .zip(&b)
            .map(|(x, y)| if rng.random_bool(0.5) { *y } else { *x })
            .collect();
    }
    let shared = a.len().min(b.len());
    if shared == 0 {
        return partner.to_string();
    }
    let start = rng.random_range(0..shared);
    let end = rng.random_range(start + 1..=shared);
    let mut out: String = a[..start].concat();
    out.push_str(&b[start..end].concat());
    out.push_str(&a[end.min(a.len())..].concat());
    out
}

#[async_trait]
impl Mutator for OfflineMutator {
    fn name(&self) -> &str {
        "offline"
    }

    async fn propose(&self, request: &MutationRequest) -> Result<Proposal, MutateError> {
        self.mutate(request)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use evolve_core::Program;

    use super::*;

    const CODE: &str = "import math\nN = 26\n# EVOLVE-BLOCK-START\ndef f(x):\n    scale = 0.75  # tuned 0.5\n    if x <= 3:\n        return x * scale + 2\n    return min(x, 10)\n# EVOLVE-BLOCK-END\nprint(f(1), 'done 1.0')\n";

    fn program(code: &str) -> Arc<Program> {
        Arc::new(Program {
            id: 1,
            parent: None,
            island: 0,
            generation: 0,
            code: code.into(),
            score: 0.0,
            metrics: Default::default(),
            artifacts: Default::default(),
        })
    }

    fn request(seed: u64, inspirations: Vec<Arc<Program>>) -> MutationRequest {
        MutationRequest {
            parent: program(CODE),
            inspirations,
            seed,
            iteration: 1,
        }
    }

    #[test]
    fn changes_only_the_region_and_is_deterministic() {
        let mutator = OfflineMutator::for_extension("py");
        let frame = SourceFile::parse(CODE).unwrap();
        for seed in 0..200 {
            let a = mutator.mutate(&request(seed, vec![])).unwrap();
            let b = mutator.mutate(&request(seed, vec![])).unwrap();
            assert_eq!(a, b, "seed {seed} is not deterministic");
            assert_ne!(a.code, CODE);
            let parsed = SourceFile::parse(&a.code).unwrap();
            assert!(
                parsed.same_frame(&frame),
                "seed {seed} changed the frame:\n{}",
                a.code
            );
            assert!(
                a.code.contains("# tuned 0.5"),
                "comment changed:\n{}",
                a.code
            );
        }
    }

    #[test]
    fn ints_stay_ints_and_floats_stay_floats() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let int = perturb_literal("10", &mut rng);
            if let Some(int) = int {
                assert!(int.parse::<i64>().is_ok_and(|v| v >= 0), "{int}");
            }
            let float = perturb_literal("0.75", &mut rng).unwrap();
            assert!(
                float.contains('.') && float.parse::<f64>().unwrap() > 0.0,
                "{float}"
            );
        }
    }

    #[test]
    fn crossover_borrows_lines_from_the_inspiration() {
        let mutator = OfflineMutator::for_extension("py");
        let other = CODE
            .replace("scale = 0.75", "scale = 0.9")
            .replace("+ 2", "+ 5");
        let kinds: Vec<String> = (0..100)
            .map(|seed| {
                mutator
                    .mutate(&request(seed, vec![program(&other)]))
                    .unwrap()
            })
            .filter(|p| p.kind == "crossover")
            .map(|p| p.code)
            .collect();
        assert!(!kinds.is_empty());
        assert!(
            kinds
                .iter()
                .all(|c| c.contains("scale = 0.9") || c.contains("+ 5"))
        );
    }

    #[test]
    fn a_region_without_numbers_or_operators_reports_no_change() {
        let mutator = OfflineMutator::for_extension("py");
        let req = MutationRequest {
            parent: program("# EVOLVE-BLOCK-START\npass\n# EVOLVE-BLOCK-END\n"),
            inspirations: vec![],
            seed: 1,
            iteration: 1,
        };
        assert!(matches!(
            mutator.mutate(&req),
            Err(MutateError::NoChange(_))
        ));
    }
}
