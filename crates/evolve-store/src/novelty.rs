//! Near-duplicate detection before evaluation: MinHash signatures of token
//! shingles, indexed by locality-sensitive hashing per island.
//!
//! The estimated Jaccard similarity of two programs is the fraction of
//! signature slots on which they agree. LSH bands make the lookup touch only
//! programs sharing at least one band, never the whole island.

use std::collections::HashMap;

use evolve_core::ProgramId;
use rayon::prelude::*;

/// Hash functions per signature.
pub const SIGNATURE_LEN: usize = 64;
/// Slots per LSH band (`SIGNATURE_LEN / BAND_ROWS` bands): with 16 bands of 4,
/// pairs at similarity 0.9 share a band with probability ~1, at 0.3 ~0.12.
const BAND_ROWS: usize = 4;
/// Tokens per shingle.
const SHINGLE: usize = 3;

/// A MinHash signature of a program's token shingles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature([u64; SIGNATURE_LEN]);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Splits code into identifier/number words and single punctuation marks;
/// white space and comments' layout do not matter, names and values do.
fn tokens(code: &str) -> impl Iterator<Item = &str> {
    let mut rest = code;
    std::iter::from_fn(move || {
        rest = rest.trim_start();
        let first = rest.chars().next()?;
        let len = if first.is_alphanumeric() || first == '_' || first == '.' {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len())
        } else {
            first.len_utf8()
        };
        let (token, tail) = rest.split_at(len);
        rest = tail;
        Some(token)
    })
}

fn token_hash(token: &str) -> u64 {
    mix(evolve_core::code_hash(token))
}

impl Signature {
    /// The signature of `code`.
    pub fn of(code: &str) -> Signature {
        let hashes: Vec<u64> = tokens(code).map(token_hash).collect();
        let mut slots = [u64::MAX; SIGNATURE_LEN];
        // Shingle hashes are already well mixed, so each slot's hash function
        // can be a cheap multiply-add (an odd multiplier keeps it a bijection).
        let mut add = |shingle: u64| {
            for ((slot, a), b) in slots.iter_mut().zip(&SLOT_MULTIPLIERS).zip(&SLOT_SEEDS) {
                *slot = (*slot).min(shingle.wrapping_mul(*a).wrapping_add(*b));
            }
        };
        if hashes.len() < SHINGLE {
            add(hashes.iter().fold(0x51_7cc1_b727_220a, |a, h| mix(a ^ h)));
        } else {
            for window in hashes.windows(SHINGLE) {
                add(window.iter().fold(0x51_7cc1_b727_220a, |a, h| mix(a ^ h)));
            }
        }
        Signature(slots)
    }

    /// Signatures of many programs at once, on all cores.
    pub fn of_all(codes: &[&str]) -> Vec<Signature> {
        codes.par_iter().map(|c| Signature::of(c)).collect()
    }

    /// Estimated Jaccard similarity of the two programs' shingle sets.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let same = self.0.iter().zip(&other.0).filter(|(a, b)| a == b).count();
        same as f64 / SIGNATURE_LEN as f64
    }

    fn band_keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.chunks(BAND_ROWS).enumerate().map(|(band, rows)| {
            rows.iter()
                .fold(mix(band as u64 + 1), |acc, &slot| mix(acc ^ slot))
        })
    }
}

const SLOT_SEEDS: [u64; SIGNATURE_LEN] = constants(0x2545_f491_4f6c_dd1d, 0);
const SLOT_MULTIPLIERS: [u64; SIGNATURE_LEN] = constants(0x9fb2_1c65_1e98_df25, 1);

/// Fixed pseudo-random constants (splitmix64 from `start`), OR-ed with `low_bits`.
const fn constants(start: u64, low_bits: u64) -> [u64; SIGNATURE_LEN] {
    let mut seeds = [0u64; SIGNATURE_LEN];
    let mut state: u64 = start;
    let mut i = 0;
    while i < SIGNATURE_LEN {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        seeds[i] = (z ^ (z >> 31)) | low_bits;
        i += 1;
    }
    seeds
}

/// The LSH index of one island's programs.
#[derive(Debug, Clone, Default)]
pub struct NoveltyIndex {
    signatures: HashMap<ProgramId, Signature>,
    buckets: HashMap<u64, Vec<ProgramId>>,
}

impl NoveltyIndex {
    /// Adds a program (replacing an earlier signature under the same id).
    pub fn insert(&mut self, id: ProgramId, signature: Signature) {
        self.remove(id);
        for key in signature.band_keys() {
            self.buckets.entry(key).or_default().push(id);
        }
        self.signatures.insert(id, signature);
    }

    /// Forgets a program.
    pub fn remove(&mut self, id: ProgramId) {
        let Some(signature) = self.signatures.remove(&id) else {
            return;
        };
        for key in signature.band_keys() {
            if let Some(ids) = self.buckets.get_mut(&key) {
                ids.retain(|&other| other != id);
                if ids.is_empty() {
                    self.buckets.remove(&key);
                }
            }
        }
    }

    /// Forgets every program.
    pub fn clear(&mut self) {
        self.signatures.clear();
        self.buckets.clear();
    }

    /// Programs indexed.
    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    /// The most similar indexed program sharing an LSH band with `signature`,
    /// with its estimated similarity.
    pub fn nearest(&self, signature: &Signature) -> Option<(ProgramId, f64)> {
        let mut best: Option<(ProgramId, f64)> = None;
        for key in signature.band_keys() {
            for &id in self.buckets.get(&key).into_iter().flatten() {
                let Some(other) = self.signatures.get(&id) else {
                    continue;
                };
                let s = signature.similarity(other);
                if best.is_none_or(|(best_id, b)| s > b || (s == b && id < best_id)) {
                    best = Some((id, s));
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(body: &str) -> String {
        let mut code = String::from("import math\n\ndef solve(points):\n");
        for i in 0..40 {
            code.push_str(&format!(
                "    total_{i} = points[{i}] * math.sin({i}) + {i}\n"
            ));
        }
        code.push_str(body);
        code
    }

    #[test]
    fn identical_code_is_fully_similar_and_layout_does_not_matter() {
        let a = Signature::of("x = f(a, b)\nreturn x\n");
        let b = Signature::of("x   =  f(a,b)\n\n   return x");
        assert_eq!(a.similarity(&b), 1.0);
    }

    #[test]
    fn small_edit_is_near_and_rewrite_is_far() {
        let base = Signature::of(&program("    return total_1\n"));
        let tweak = Signature::of(&program("    return total_2\n"));
        let other = Signature::of(
            "def solve(points):\n    return sorted(points, key=lambda p: p[0])[:3]\n",
        );
        let near = base.similarity(&tweak);
        let far = base.similarity(&other);
        assert!(near > 0.8, "{near}");
        assert!(far < 0.2, "{far}");
    }

    #[test]
    fn index_finds_near_duplicates_and_forgets_removed_ones() {
        let mut index = NoveltyIndex::default();
        index.insert(1, Signature::of(&program("    return total_1\n")));
        index.insert(
            2,
            Signature::of("def g(y):\n    while y > 0:\n        y -= 3\n    return y\n"),
        );
        let probe = Signature::of(&program("    return total_1 + 0\n"));
        let (id, similarity) = index.nearest(&probe).expect("a neighbour");
        assert_eq!(id, 1);
        assert!(similarity > 0.8);
        index.remove(1);
        assert!(index.nearest(&probe).is_none_or(|(id, _)| id == 2));
        assert_eq!(index.len(), 1);
        index.clear();
        assert!(index.is_empty());
    }

    #[test]
    fn bulk_signatures_match_single_ones() {
        let codes = ["a = 1", "b = 2 + c", "def f(): pass"];
        let all = Signature::of_all(&codes);
        for (code, sig) in codes.iter().zip(&all) {
            assert_eq!(&Signature::of(code), sig);
        }
    }
}
