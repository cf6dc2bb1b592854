//! How text is stored: PostgreSQL `text` cannot hold U+0000, which a chat message may
//! contain, so stored text escapes it.
//!
//! The escape uses two Unicode *noncharacters* (code points reserved for exactly this
//! kind of internal use): `ESC` = U+10FFFF and `NUL_MARK` = U+10FFFE.
//!
//! - U+0000 is stored as `ESC NUL_MARK`;
//! - `ESC` itself is stored as `ESC ESC`;
//! - everything else, `NUL_MARK` included, is stored as is.
//!
//! Decoding reads `ESC` and the character after it as one unit, so every string round
//! trips exactly. Text without the three special characters (all text in practice) is
//! stored unchanged, and a search needle without them matches stored text exactly
//! when it matches the original: the escape sequences consist of special characters
//! only, and case mapping leaves noncharacters alone. A needle containing U+0000,
//! U+10FFFE or U+10FFFF may match differently (the crate docs list this gap).

use std::borrow::Cow;

const ESC: char = '\u{10FFFF}';
const NUL_MARK: char = '\u{10FFFE}';

/// The stored form of `s`; borrows when nothing needs escaping.
pub(crate) fn encode(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', ESC]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(ESC);
                out.push(NUL_MARK);
            }
            ESC => {
                out.push(ESC);
                out.push(ESC);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The original of stored text `s`; `None` when `s` is not a valid stored form (an
/// `ESC` not followed by `ESC` or `NUL_MARK`).
pub(crate) fn decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(ESC) {
        return Some(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            match chars.next()? {
                ESC => out.push(ESC),
                NUL_MARK => out.push('\0'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(Cow::Owned(out))
}

/// The stored form of an owned string, reusing its buffer when nothing needs escaping.
pub(crate) fn encode_owned(s: String) -> String {
    match encode(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(escaped) => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_stored_unchanged() {
        assert!(matches!(encode("héllo wörld %_"), Cow::Borrowed(_)));
        assert!(matches!(decode("héllo"), Some(Cow::Borrowed(_))));
        assert_eq!(encode("\u{10FFFE} alone"), "\u{10FFFE} alone");
    }

    #[test]
    fn nul_and_the_escape_round_trip() {
        let cases = [
            "\0",
            "a\0b",
            "\u{10FFFF}",
            "\u{10FFFF}\u{10FFFE}",
            "\0\u{10FFFF}\0\u{10FFFE}\u{10FFFF}",
            "\u{10FFFE}\0",
            "end\u{10FFFF}",
        ];
        for case in cases {
            let stored = encode(case);
            assert!(!stored.contains('\0'), "{case:?} stored with a NUL");
            assert_eq!(decode(&stored).as_deref(), Some(case), "{case:?}");
        }
    }

    #[test]
    fn a_dangling_escape_is_corrupt() {
        assert_eq!(decode("x\u{10FFFF}"), None);
        assert_eq!(decode("\u{10FFFF}y"), None);
    }

    #[test]
    fn plain_needles_match_escaped_text_as_they_match_the_original() {
        let hay = "Null\0byte \u{10FFFF} here";
        let stored = encode(hay);
        for needle in ["null", "byte", " here", "e ", "Null"] {
            assert_eq!(
                stored.contains(&*encode(needle)),
                hay.contains(needle),
                "{needle:?}"
            );
        }
        assert!(stored.contains(&*encode("l\0b")));
    }
}
