//! Percent-decoding of paths and query strings, strictly: bytes that do not form
//! UTF-8 once decoded (`%FF`) are an error, never replaced by U+FFFD.

use colloquy_core::{ErrorCode, ValidationError};

use crate::error::ApiError;

/// `text` percent-decoded, or `None` when the result is not UTF-8.
pub(crate) fn decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// 400 `invalid_field` unless every segment of `path` percent-decodes to UTF-8.
pub(crate) fn check_path(path: &str) -> Result<(), ApiError> {
    if path.split('/').all(|segment| decode(segment).is_some()) {
        return Ok(());
    }
    Err(ApiError::from(ValidationError {
        code: ErrorCode::InvalidField,
        field: None,
        message: "the path is not valid UTF-8 once percent-decoded".to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_and_refuses_the_rest() {
        assert_eq!(decode("a%3Ab").as_deref(), Some("a:b"));
        assert_eq!(decode("w%C3%B6rld").as_deref(), Some("wörld"));
        assert_eq!(
            decode("%EF%BF%BD").as_deref(),
            Some("\u{FFFD}"),
            "a real U+FFFD"
        );
        assert_eq!(decode("100%").as_deref(), Some("100%"), "a lone % is kept");
        for bad in ["%FF", "a%C3", "%C3%28", "%ED%A0%80"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert!(check_path("/api/chats/sessions/a%3Ab/").is_ok());
        let e = check_path("/api/chats/sessions/%FF/").expect_err("not UTF-8");
        assert_eq!(e.code(), ErrorCode::InvalidField);
    }
}
