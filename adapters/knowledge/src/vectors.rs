//! The vectors of one embedding model, in memory, for brute-force cosine search.

use colloquy_core::KnowledgeError;
use rusqlite::Connection;

/// Every stored vector of one model, as one flat array (vectors are unit length, so
/// the dot product is the cosine).
pub(crate) struct VectorIndex {
    /// The `kb_meta` generation it was loaded at.
    pub(crate) generation: i64,
    pub(crate) model: String,
    dims: usize,
    rowids: Vec<i64>,
    data: Vec<f32>,
}

/// A vector as a BLOB: little-endian `f32`s.
pub(crate) fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(blob: &[u8]) -> impl Iterator<Item = f32> + '_ {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl VectorIndex {
    /// Loads the vectors of `model`; vectors of another length than the first are
    /// skipped with a warning.
    pub(crate) fn load(
        conn: &Connection,
        model: &str,
        generation: i64,
    ) -> Result<Self, KnowledgeError> {
        let mut stmt = conn
            .prepare("SELECT passage, vector FROM kb_vectors WHERE model = ?1 ORDER BY passage")
            .map_err(KnowledgeError::backend)?;
        let mut rows = stmt.query([model]).map_err(KnowledgeError::backend)?;
        let mut index = Self {
            generation,
            model: model.to_owned(),
            dims: 0,
            rowids: Vec::new(),
            data: Vec::new(),
        };
        let mut skipped = 0usize;
        while let Some(row) = rows.next().map_err(KnowledgeError::backend)? {
            let rowid: i64 = row.get(0).map_err(KnowledgeError::backend)?;
            let blob = row.get_ref(1).map_err(KnowledgeError::backend)?;
            let blob = blob.as_blob().map_err(KnowledgeError::backend)?;
            let dims = blob.len() / 4;
            if index.dims == 0 {
                index.dims = dims;
            }
            if dims == 0 || dims != index.dims {
                skipped += 1;
                continue;
            }
            index.rowids.push(rowid);
            index.data.extend(from_blob(blob));
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                model,
                "vectors of another length skipped; re-ingest to fix"
            );
        }
        Ok(index)
    }

    /// The `n` passages most similar to `query` (unit length), best first.
    pub(crate) fn top(&self, query: &[f32], n: usize) -> Vec<(i64, f32)> {
        if self.dims == 0 || query.len() != self.dims || n == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(i64, f32)> = self
            .data
            .chunks_exact(self.dims)
            .zip(&self.rowids)
            .map(|(v, id)| (*id, dot(v, query)))
            .collect();
        let by_score = |a: &(i64, f32), b: &(i64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > n {
            scored.select_nth_unstable_by(n - 1, by_score);
            scored.truncate(n);
        }
        scored.sort_by(by_score);
        scored
    }
}

/// The dot product, in eight independent lanes so the compiler can use SIMD (a
/// plain `sum()` of `f32`s must add in order, one at a time).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut a8 = a.chunks_exact(8);
    let mut b8 = b.chunks_exact(8);
    for (x, y) in a8.by_ref().zip(b8.by_ref()) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_top_ranks_by_cosine() {
        let v = [0.25f32, -1.5, 3.0];
        assert_eq!(from_blob(&to_blob(&v)).collect::<Vec<_>>(), v);
        let index = VectorIndex {
            generation: 0,
            model: "m".into(),
            dims: 2,
            rowids: vec![10, 11, 12],
            data: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
        };
        let top = index.top(&[0.0, 1.0], 2);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [11, 12]);
        assert!(index.top(&[1.0], 2).is_empty(), "wrong length");
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let plain: f32 = a.iter().map(|x| x * x).sum();
        assert!((dot(&a, &a) - plain).abs() < 1e-3);
    }
}
