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

/// A labelled turn of a [`Conversation`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Turn {
    /// What the visitor says.
    pub user: String,
    /// `switch` (a question of its own, on another topic), `follow-up` (refers to
    /// the previous turn), absent on the first turn.
    #[serde(default)]
    pub kind: Option<String>,
    /// The document holding the answer (a suffix of its id).
    pub document: String,
    /// Text that only the answering passage of that document contains.
    pub answer: String,
}

impl Turn {
    /// The same label as a [`Question`], to match passages.
    #[must_use]
    pub fn question(&self) -> Question {
        Question {
            question: self.user.clone(),
            document: self.document.clone(),
            answer: self.answer.clone(),
        }
    }
}

/// A multi-turn conversation whose every turn is labelled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Conversation {
    /// Its user turns, in order.
    pub turns: Vec<Turn>,
}

/// Reads a JSON array of [`Conversation`]s.
///
/// # Errors
/// The file cannot be read or parsed (the message says why).
pub fn load_conversations(path: &Path) -> Result<Vec<Conversation>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Top-1 hit rate and MRR of a set of turns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TurnMetrics {
    /// Turns scored.
    pub turns: usize,
    /// Share of turns whose answering passage ranks first.
    pub top1: f64,
    /// Mean of 1/rank of the answering passage within the top 10 (0 when absent).
    pub mrr: f64,
}

/// [`TurnMetrics`] of every turn after the first, of the switches and of the
/// follow-ups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationMetrics {
    /// Every scored turn.
    pub all: TurnMetrics,
    /// Turns labelled `switch`.
    pub switches: TurnMetrics,
    /// Turns labelled `follow-up`.
    pub follow_ups: TurnMetrics,
    /// The turns whose answer did not rank first, as `conversation:turn user text`.
    pub misses: Vec<String>,
}

#[derive(Default)]
struct Sums {
    turns: usize,
    top1: usize,
    reciprocal: f64,
}

impl Sums {
    fn add(&mut self, rank: Option<usize>) {
        self.turns += 1;
        if let Some(rank) = rank {
            self.reciprocal += 1.0 / (rank as f64 + 1.0);
            if rank == 0 {
                self.top1 += 1;
            }
        }
    }

    fn metrics(&self) -> TurnMetrics {
        let n = self.turns.max(1) as f64;
        TurnMetrics {
            turns: self.turns,
            top1: self.top1 as f64 / n,
            mrr: self.reciprocal / n,
        }
    }
}

/// Plays every conversation and scores each turn after the first (the first has no
/// previous turn, so every retrieval rule searches the same). `search` is the rule
/// under test: it gets the user messages so far (the new one last) and returns the
/// top 10 passages for the new one.
///
/// # Errors
/// A failed search.
pub async fn evaluate_conversations<F, Fut>(
    conversations: &[Conversation],
    mut search: F,
) -> Result<ConversationMetrics, KnowledgeError>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<colloquy_core::Passage>, KnowledgeError>>,
{
    let (mut all, mut switches, mut follow_ups) =
        (Sums::default(), Sums::default(), Sums::default());
    let mut misses = Vec::new();
    for (c, conversation) in conversations.iter().enumerate() {
        for (t, turn) in conversation.turns.iter().enumerate().skip(1) {
            let said = conversation.turns[..=t]
                .iter()
                .map(|t| t.user.clone())
                .collect();
            let hits = search(said).await?;
            let label = turn.question();
            let rank = hits.iter().take(10).position(|p| label.is_answered_by(p));
            all.add(rank);
            match turn.kind.as_deref() {
                Some("follow-up") => follow_ups.add(rank),
                _ => switches.add(rank),
            }
            if rank != Some(0) {
                misses.push(format!("{c}:{t} {}", turn.user));
            }
        }
    }
    Ok(ConversationMetrics {
        all: all.metrics(),
        switches: switches.metrics(),
        follow_ups: follow_ups.metrics(),
        misses,
    })
}
