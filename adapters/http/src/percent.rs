//! Percent-decoding (the one place it is written) of paths and query strings, strictly: bytes that do not form
//! UTF-8 once decoded (`%FF`) are an error, never replaced by U+FFFD.

use std::borrow::Cow;

use colloquy_core::{ErrorCode, ValidationError};

use crate::error::ApiError;

/// `text` percent-decoded, or `None` when the result is not UTF-8. Borrowed when
/// `text` has nothing to decode (no allocation).
pub(crate) fn decode(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains('%') {
        return Some(Cow::Borrowed(text));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
}

/// 400 `invalid_field`: a path segment that is not UTF-8 once percent-decoded.
pub(crate) fn not_utf8_path() -> ApiError {
    ApiError::from(ValidationError {
        code: ErrorCode::InvalidField,
        field: None,
        message: "the path is not valid UTF-8 once percent-decoded".to_owned(),
    })
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
        assert!(matches!(decode("plain"), Some(Cow::Borrowed("plain"))));
        for bad in ["%FF", "a%C3", "%C3%28", "%ED%A0%80"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(not_utf8_path().code(), ErrorCode::InvalidField);
    }
}
