//! Searching message text across every session (the console's inbox search).
//!
//! A query is a list of words; a message matches when each word of the query is the
//! beginning of some word of its text, compared lowercased ("pric" finds "Price"
//! and "prices"). Words are runs of letters and digits. This is what a full-text
//! index serves (SQLite FTS5 prefix queries, PostgreSQL `tsquery` prefixes), so
//! every store can answer it the same way; [`matches`] is the reference.

/// The most words a query keeps (the rest are ignored).
pub const MAX_WORDS: usize = 8;

/// The longest word a query keeps, in characters (longer ones are cut).
pub const MAX_WORD_CHARS: usize = 64;

/// The words of a search query, lowercased: at most [`MAX_WORDS`], each at most
/// [`MAX_WORD_CHARS`] characters. Empty when the query has no letter or digit.
#[must_use]
pub fn query_words(query: &str) -> Vec<String> {
    words(query)
        .take(MAX_WORDS)
        .map(|w| w.chars().take(MAX_WORD_CHARS).collect())
        .collect()
}

/// The lowercased words of `text`.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether `text` matches the query `words` (from [`query_words`]): each query word
/// begins some word of the text. No words match nothing.
#[must_use]
pub fn matches(text: &str, words_of_query: &[String]) -> bool {
    if words_of_query.is_empty() {
        return false;
    }
    let text_words: Vec<String> = words(text).collect();
    words_of_query
        .iter()
        .all(|q| text_words.iter().any(|w| w.starts_with(q.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_word_must_begin_a_word_of_the_text() {
        let q = query_words("  Pric, DELIV!");
        assert_eq!(q, ["pric", "deliv"]);
        assert!(matches("What are the prices for delivery?", &q));
        assert!(!matches("What are the prices?", &q));
        assert!(
            !matches("caprice delivery", &q),
            "inside a word is no match"
        );
        assert!(matches("Grüße aus Köln", &query_words("köln GRÜ")));
        assert!(!matches("anything", &query_words("?! ...")));
        assert_eq!(query_words(&"w ".repeat(20)).len(), MAX_WORDS);
    }
}
