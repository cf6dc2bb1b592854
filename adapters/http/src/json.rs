//! JSON responses: one content type, one way to build them.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde::Serialize;

use crate::Response;

/// The content type of every JSON response.
pub(crate) const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A response with `value` serialized as its JSON body.
pub(crate) fn response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = http::Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(e) => {
            // Only a non-string map key could fail; our types have none.
            tracing::error!(error = %e, "could not serialize a response");
            let mut response = http::Response::new(
                Full::new(Bytes::from_static(
                    br#"{"error":"internal server error","code":"internal_error"}"#,
                ))
                .boxed_unsync(),
            );
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
    }
}

/// A response whose JSON body is already serialized.
pub(crate) fn raw(status: StatusCode, body: String) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A response without a body (204, preflight).
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = http::Response::new(Empty::new().boxed_unsync());
    *response.status_mut() = status;
    response
}
