//! Natural-language questions as FTS5 queries.

/// Words too common to help a ranking (English). A query of nothing else keeps them.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "do", "does",
    "for", "from", "has", "have", "how", "i", "if", "in", "is", "it", "its", "me", "my", "of",
    "on", "or", "our", "so", "than", "that", "the", "their", "then", "there", "these", "this",
    "to", "us", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with",
    "would", "you", "your",
];

/// The most words a query keeps.
const MAX_TERMS: usize = 32;

/// The FTS5 query for a question: its distinct words (letters and digits, any
/// script), each quoted so nothing in it is an operator, joined by `OR` so BM25
/// ranks by how many and how rare the matched words are. `None` when the text has
/// no word.
#[must_use]
pub fn fts_query(text: &str) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if !word.is_empty() && !words.contains(&word) {
            words.push(word);
        }
    }
    let content: Vec<&String> = words
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect();
    let chosen: Vec<&String> = if content.is_empty() {
        words.iter().collect()
    } else {
        content
    };
    let terms: Vec<String> = chosen
        .into_iter()
        .take(MAX_TERMS)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_deduplicated_and_stopwords_dropped() {
        assert_eq!(
            fts_query("How much does the Team plan cost? TEAM!").as_deref(),
            Some("\"much\" OR \"team\" OR \"plan\" OR \"cost\"")
        );
        assert_eq!(
            fts_query("Crème brûlée").as_deref(),
            Some("\"crème\" OR \"brûlée\"")
        );
        assert_eq!(
            fts_query("who is it").as_deref(),
            Some("\"who\" OR \"is\" OR \"it\"")
        );
        assert_eq!(
            fts_query("NEAR(a b) AND \"x\" OR title:y*").as_deref(),
            Some("\"near\" OR \"b\" OR \"x\" OR \"title\" OR \"y\"")
        );
        assert_eq!(fts_query("?! -- ()"), None);
    }
}
