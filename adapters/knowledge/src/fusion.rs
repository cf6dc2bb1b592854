//! Reciprocal rank fusion: several rankings into one.

use std::collections::HashMap;
use std::hash::Hash;

/// The constant of reciprocal rank fusion (Cormack et al., 2009).
pub const RRF_K: f64 = 60.0;

/// Fuses `rankings` (each best first): an item's score is the sum over rankings of
/// `1 / (RRF_K + rank)`, ranks counted from 1. Returns the best `n`, best first;
/// equal scores keep the order of first appearance.
#[must_use]
pub fn reciprocal_rank_fusion<T: Copy + Eq + Hash>(rankings: &[Vec<T>], n: usize) -> Vec<(T, f64)> {
    let mut scores: HashMap<T, (f64, usize)> = HashMap::new();
    let mut order = 0;
    for ranking in rankings {
        for (rank, item) in ranking.iter().enumerate() {
            let entry = scores.entry(*item).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(T, f64, usize)> = scores.into_iter().map(|(t, (s, o))| (t, s, o)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().take(n).map(|(t, s, _)| (t, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_wins_and_n_is_respected() {
        let fused = reciprocal_rank_fusion(&[vec![1, 2, 3], vec![3, 2, 4]], 3);
        let ids: Vec<i32> = fused.iter().map(|(id, _)| *id).collect();
        // 3: 1/63 + 1/61 beats 2: 1/62 + 1/62, and both beat 1 (one list only).
        assert_eq!(ids, [3, 2, 1]);
        assert!((fused[1].1 - 2.0 / 62.0).abs() < 1e-12);
        assert!(reciprocal_rank_fusion::<i32>(&[vec![], vec![]], 5).is_empty());
        assert_eq!(reciprocal_rank_fusion(&[vec![7]], 0), []);
    }
}
