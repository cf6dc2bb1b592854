//! Retrieval quality: recall@k and mean reciprocal rank over labelled questions.

use std::path::Path;

use colloquy_core::{KnowledgeBase, KnowledgeError};
use serde::Deserialize;

/// A question and the passage that answers it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Question {
    /// What a visitor asks.
    pub question: String,
    /// The document holding the answer (a suffix of its id, e.g. `pricing.md`).
    pub document: String,
    /// Text that only the answering passage of that document contains.
    pub answer: String,
}

impl Question {
    /// Whether a passage is the one that answers.
    #[must_use]
    pub fn is_answered_by(&self, p: &colloquy_core::Passage) -> bool {
        p.document.ends_with(&self.document) && p.text.contains(&self.answer)
    }
}

/// Reads a JSON array of [`Question`]s.
///
/// # Errors
/// The file cannot be read or parsed (the message says why).
pub fn load_questions(path: &Path) -> Result<Vec<Question>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Quality figures of one search configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Questions asked.
    pub questions: usize,
    /// Share of questions whose answering passage is in the top 5.
    pub recall_at_5: f64,
    /// Mean of 1/rank of the answering passage within the top 10 (0 when absent).
    pub mrr: f64,
    /// The questions whose answer was not in the top 5.
    pub misses: Vec<String>,
}

/// Asks every question (top 10) and scores the answers' ranks.
///
/// # Errors
/// A failed search.
pub async fn evaluate(
    kb: &dyn KnowledgeBase,
    questions: &[Question],
) -> Result<Metrics, KnowledgeError> {
    let mut found = 0usize;
    let mut reciprocal = 0f64;
    let mut misses = Vec::new();
    for q in questions {
        let hits = kb.search(&q.question, 10).await?;
        match hits.iter().position(|p| q.is_answered_by(p)) {
            Some(rank) => {
                reciprocal += 1.0 / (rank as f64 + 1.0);
                if rank < 5 {
                    found += 1;
                } else {
                    misses.push(q.question.clone());
                }
            }
            None => misses.push(q.question.clone()),
        }
    }
    let n = questions.len().max(1) as f64;
    Ok(Metrics {
        questions: questions.len(),
        recall_at_5: found as f64 / n,
        mrr: reciprocal / n,
        misses,
    })
}
