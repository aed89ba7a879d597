//! The MAP-Elites grid: which cell a program falls in.
//!
//! Ranges and bin counts are declared in problem.toml and never rescaled, so
//! a program's cell is fixed for the life of the run. Values outside a range
//! fall into its edge bin.

use evolve_core::{FeatureSpec, Program};

/// A cell of the grid, as a mixed-radix index over the dimensions.
pub type Cell = u64;

/// The feature dimensions of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    dims: Vec<FeatureSpec>,
}

/// Built-in feature: the program's length in bytes.
pub const CODE_LENGTH: &str = "code_length";
/// Built-in feature: the program's number of lines.
pub const CODE_LINES: &str = "code_lines";

impl Grid {
    /// A grid over `dims`; no dimensions means a single cell.
    pub fn new(dims: Vec<FeatureSpec>) -> Grid {
        Grid { dims }
    }

    /// True when no dimension is declared.
    pub fn is_trivial(&self) -> bool {
        self.dims.is_empty()
    }

    /// The value of dimension `dim` for `program`, if it has one.
    fn value(&self, dim: &FeatureSpec, program: &Program) -> Option<f64> {
        match dim.metric.as_str() {
            // An evaluator metric of the same name wins over the built-in.
            name if program.metrics.contains_key(name) => program.metrics.get(name).copied(),
            CODE_LENGTH => Some(program.code.len() as f64),
            CODE_LINES => Some(program.code.lines().count() as f64),
            _ => None,
        }
    }

    /// The bin of `value` along `dim`.
    fn bin(dim: &FeatureSpec, value: f64) -> u64 {
        let bins = u64::from(dim.bins.max(1));
        let unit = (value - dim.min) / (dim.max - dim.min);
        if unit.is_nan() || unit <= 0.0 {
            return 0;
        }
        ((unit * bins as f64) as u64).min(bins - 1)
    }

    /// The cell of `program`, or none when a feature is missing or not finite.
    pub fn cell(&self, program: &Program) -> Option<Cell> {
        let mut cell = 0u64;
        for dim in &self.dims {
            let value = self.value(dim, program).filter(|v| v.is_finite())?;
            cell = cell * u64::from(dim.bins) + Grid::bin(dim, value);
        }
        Some(cell)
    }

    /// The per-dimension bins of a cell.
    fn coordinates(&self, mut cell: Cell) -> Vec<u64> {
        let mut coords = vec![0; self.dims.len()];
        for (i, dim) in self.dims.iter().enumerate().rev() {
            let bins = u64::from(dim.bins);
            coords[i] = cell % bins;
            cell /= bins;
        }
        coords
    }

    /// Cells one bin away from `cell` along a single dimension.
    pub fn neighbours(&self, cell: Cell) -> Vec<Cell> {
        let coords = self.coordinates(cell);
        let mut out = Vec::with_capacity(2 * self.dims.len());
        let mut stride = 1u64;
        for (i, dim) in self.dims.iter().enumerate().rev() {
            if coords[i] > 0 {
                out.push(cell - stride);
            }
            if coords[i] + 1 < u64::from(dim.bins) {
                out.push(cell + stride);
            }
            stride *= u64::from(dim.bins);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(metric: &str, min: f64, max: f64, bins: u32) -> FeatureSpec {
        FeatureSpec {
            metric: metric.into(),
            min,
            max,
            bins,
        }
    }

    fn program(code: &str, metrics: &[(&str, f64)]) -> Program {
        Program {
            id: 1,
            parent: None,
            island: 0,
            generation: 0,
            code: code.into(),
            score: 0.0,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            artifacts: Default::default(),
        }
    }

    #[test]
    fn cells_are_fixed_by_declared_ranges_and_clamp_at_the_edges() {
        let grid = Grid::new(vec![
            dim("speed", 0.0, 10.0, 5),
            dim(CODE_LINES, 0.0, 4.0, 4),
        ]);
        let cell = |speed: f64, code: &str| grid.cell(&program(code, &[("speed", speed)]));
        assert_eq!(cell(0.0, "a"), Some(1));
        assert_eq!(cell(3.9, "a\nb"), Some(4 + 2));
        assert_eq!(cell(-50.0, ""), Some(0));
        assert_eq!(cell(1e9, "a\nb\nc\nd\ne\nf"), Some(4 * 4 + 3));
        assert_eq!(cell(f64::NAN, "a"), None);
        assert_eq!(grid.cell(&program("a", &[])), None);
        assert_eq!(Grid::default().cell(&program("a", &[])), Some(0));
    }

    #[test]
    fn neighbours_differ_by_one_bin_in_one_dimension() {
        let grid = Grid::new(vec![dim("a", 0.0, 1.0, 3), dim("b", 0.0, 1.0, 3)]);
        let mut n = grid.neighbours(4);
        n.sort();
        assert_eq!(n, [1, 3, 5, 7]);
        let mut corner = grid.neighbours(0);
        corner.sort();
        assert_eq!(corner, [1, 3]);
    }
}
