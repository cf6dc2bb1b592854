//! Query strings: `application/x-www-form-urlencoded` pairs (`&`-separated, `+` is a
//! space, then percent-decoding), decoded strictly: a name or value that is not
//! UTF-8 once decoded is 400 `invalid_field`, never replaced by U+FFFD.

use colloquy_core::{ErrorCode, ValidationError};

use crate::error::ApiError;
use crate::percent;

/// One name or value of a query: `+` is a space, then percent-decoding.
fn decode(text: &str) -> Option<String> {
    if text.contains('+') {
        percent::decode(&text.replace('+', " ")).map(std::borrow::Cow::into_owned)
    } else {
        percent::decode(text).map(std::borrow::Cow::into_owned)
    }
}

/// The decoded `(key, value)` pairs of a URI's query, in order; 400 `invalid_field`
/// (with the parameter as `field` when its name decodes) for one that is not UTF-8.
pub(crate) fn pairs(uri: &http::Uri) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = uri.query() else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name);
            match (name, decode(value)) {
                (Some(name), Some(value)) => Ok((name, value)),
                (name, _) => Err(ApiError::from(ValidationError {
                    code: ErrorCode::InvalidField,
                    message: match &name {
                        Some(name) => {
                            format!(
                                "query parameter {name} is not valid UTF-8 once percent-decoded"
                            )
                        }
                        None => "a query parameter name is not valid UTF-8 once percent-decoded"
                            .to_owned(),
                    },
                    field: name,
                })),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<Vec<(String, String)>, ApiError> {
        pairs(&uri.parse().expect("uri"))
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(
            parse("/x?search=hello+w%C3%B6rld&session_id=a%3Ab&empty=&&flag&plus=%2B")
                .expect("valid"),
            vec![
                ("search".to_owned(), "hello wörld".to_owned()),
                ("session_id".to_owned(), "a:b".to_owned()),
                ("empty".to_owned(), String::new()),
                ("flag".to_owned(), String::new()),
                ("plus".to_owned(), "+".to_owned()),
            ]
        );
        assert!(parse("/x").expect("valid").is_empty());
    }

    #[test]
    fn matches_form_urlencoded_on_valid_input() {
        let query = "a=1&b=x+y%20z&=v&k=&c=%E2%82%AC&d=a=b&e=%zz";
        let ours = parse(&format!("/x?{query}")).expect("valid");
        let theirs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn invalid_utf8_is_an_invalid_field() {
        let e = parse("/x?search=%FF").expect_err("not UTF-8");
        assert_eq!(e.code(), ErrorCode::InvalidField);
        let body = e.into_response();
        assert_eq!(body.status(), http::StatusCode::BAD_REQUEST);
        let e = parse("/x?%C3=1").expect_err("name not UTF-8");
        assert_eq!(e.code(), ErrorCode::InvalidField);
    }
}
