//! Request bodies: size limit enforced while reading, content type, JSON parsing.
//!
//! Rules, in order:
//! 1. A `Content-Length` over the limit is refused at once with 413.
//! 2. Once more than the limit has arrived, reading stops and the answer is 413
//!    `payload_too_large`.
//! 3. An empty body stands for `{}` whatever its content type (so `POST /sessions/`
//!    with no body creates a session; on other endpoints the required fields are then
//!    reported missing).
//! 4. A non-empty body must be declared JSON: `Content-Type: application/json` or any
//!    `application/*+json`, parameters such as `charset` ignored; a missing or other
//!    content type is 415 `unsupported_media_type`.
//! 5. It must parse as JSON (400 `invalid_json`); whether it is an object, and its
//!    fields, are checked by `colloquy_core::validate`.
//!
//! A body that does not arrive in full before its deadline (see
//! [`DeadlineBody`](crate::deadline::DeadlineBody)) is 408 `request_timeout`.

use bytes::Bytes;
use colloquy_core::ErrorCode;
use http::{header, HeaderMap};
use std::pin::pin;

use http_body_util::BodyExt;
use hyper::body::Buf;
use serde_json::Value;

use crate::deadline::BodyTimeout;
use crate::error::ApiError;

/// Whether a `Content-Type` value names JSON.
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// Reads the body of a request with `headers` up to `limit` bytes.
///
/// Memory follows what the client actually sent: each frame is copied into one
/// buffer that grows with the bytes received (never reserved from `Content-Length`)
/// and dropped at once. Keeping hyper's frames instead (as `collect` does) would pin
/// hyper's whole read buffer, 8 KiB, for every frame of a body that arrives a byte at
/// a time: that multiplied memory thousands of times.
pub(crate) async fn read<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = pin!(body);
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreadable(&e))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len().saturating_add(data.remaining()) > limit {
            return Err(too_large(limit));
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            buf.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }
    Ok(Bytes::from(buf))
}

/// The answer to a body that could not be read: 408 after its deadline, else 400.
fn unreadable(e: &(dyn std::error::Error + 'static)) -> ApiError {
    if let Some(timeout) = body_timeout(e) {
        tracing::debug!("the request body did not arrive in time");
        return ApiError::request_timeout(timeout.0);
    }
    tracing::debug!(error = %e, "could not read the request body");
    ApiError::new(ErrorCode::InvalidJson, "the request body could not be read")
}

/// The [`BodyTimeout`] in `e`'s `source` chain, if any.
fn body_timeout<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
    let mut current = Some(e);
    while let Some(error) = current {
        if let Some(timeout) = error.downcast_ref::<BodyTimeout>() {
            return Some(timeout);
        }
        current = error.source();
    }
    None
}

/// Reads a JSON body (see the module docs for the rules).
pub(crate) async fn read_json<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Value, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read(headers, body, limit).await?;
    parse_json(headers, &bytes)
}

/// Applies rules 3 to 5 to a body already read.
pub(crate) fn parse_json(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(content_type: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        h
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "json",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn empty_body_is_an_empty_object_whatever_the_type() {
        let v = parse_json(&headers(Some("text/plain")), b"").expect("empty is {}");
        assert_eq!(v, serde_json::json!({}));
        let v = parse_json(&headers(None), b"").expect("empty is {}");
        assert_eq!(v, serde_json::json!({}));
    }

    #[test]
    fn non_json_bodies_are_refused_and_bad_json_is_400() {
        let e = parse_json(&headers(None), b"{}").expect_err("no content type");
        assert_eq!(e.code(), ErrorCode::UnsupportedMediaType);
        let e = parse_json(&headers(Some("text/plain")), b"{}").expect_err("text");
        assert_eq!(e.code(), ErrorCode::UnsupportedMediaType);
        let e = parse_json(&headers(Some("application/json")), b"{").expect_err("bad");
        assert_eq!(e.code(), ErrorCode::InvalidJson);
    }

    #[tokio::test]
    async fn the_limit_is_enforced_while_reading() {
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 11]));
        let e = read(&headers(None), body, 10).await.expect_err("over");
        assert_eq!(e.code(), ErrorCode::PayloadTooLarge);
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 10]));
        assert_eq!(
            read(&headers(None), body, 10)
                .await
                .expect("at limit")
                .len(),
            10
        );
    }
}
