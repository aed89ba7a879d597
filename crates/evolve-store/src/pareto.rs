//! Pareto ranks for multi-objective runs.
//!
//! Each point is a vector of fitnesses where larger is better in every
//! coordinate (directions already applied). Rank 0 is the non-dominated front.

/// True when `a` is at least as good as `b` everywhere and better somewhere.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return false;
        }
        if x > y {
            strictly = true;
        }
    }
    strictly
}

/// The Pareto rank of every point: 0 for the front, 1 for the front of the
/// rest, and so on. Quadratic in the number of points, which is the size of
/// an island's archive, never the whole population.
pub fn ranks(points: &[Vec<f64>]) -> Vec<u32> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dominates(&points[i], &points[j]) {
                dominates_list[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(&points[j], &points[i]) {
                dominates_list[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut rank = vec![0u32; n];
    let mut front: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut level = 0;
    while !front.is_empty() {
        let mut next = Vec::new();
        for &i in &front {
            rank[i] = level;
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        front = next;
        level += 1;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fronts_are_peeled_in_order() {
        let points = vec![
            vec![1.0, 5.0],
            vec![5.0, 1.0],
            vec![3.0, 3.0],
            vec![2.0, 2.0],
            vec![0.0, 0.0],
            vec![3.0, 3.0],
        ];
        assert_eq!(ranks(&points), [0, 0, 0, 1, 2, 0]);
        assert!(dominates(&[2.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[2.0, 2.0], &[2.0, 2.0]));
    }
}
