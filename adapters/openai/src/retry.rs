//! `Retry-After` read from a response's headers. The retry policy and loop are
//! [`colloquy_core::retry`]'s, shared with every adapter that calls a remote service.

use std::time::{Duration, SystemTime};

use colloquy_core::retry::parse_retry_after;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Reads `Retry-After`: delay seconds, or an HTTP date (a date in the past means
/// no wait). `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_comes_from_the_header() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:05 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(5)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }
}
