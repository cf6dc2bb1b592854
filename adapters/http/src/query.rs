//! Query strings: `application/x-www-form-urlencoded` pairs, percent- and
//! `+`-decoded by `form_urlencoded` (invalid UTF-8 is replaced, never an error).

/// The decoded `(key, value)` pairs of a URI's query, in order.
pub(crate) fn pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        let uri: http::Uri = "/x?search=hello+w%C3%B6rld&session_id=a%3Ab&empty="
            .parse()
            .expect("uri");
        assert_eq!(
            pairs(&uri),
            vec![
                ("search".to_owned(), "hello wörld".to_owned()),
                ("session_id".to_owned(), "a:b".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        assert!(pairs(&"/x".parse().expect("uri")).is_empty());
    }
}
