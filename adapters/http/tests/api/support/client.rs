//! A thin test client on hyper-util's HTTP client: real TCP, real HTTP/1.1 (or
//! HTTP/2 with prior knowledge).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub type ClientBody = UnsyncBoxBody<Bytes, Infallible>;

/// A whole response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `code` of an error body, after checking the documented error shape.
    pub fn error_code(&self) -> String {
        let body = self.json();
        assert!(body["error"].is_string(), "error text in {body}");
        assert_eq!(
            self.headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().expect("ascii")),
            Some("application/json; charset=utf-8")
        );
        body["code"].as_str().expect("code").to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The test client, bound to one server.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    inner: HyperClient<HttpConnector, ClientBody>,
}

pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed_unsync()
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A client that speaks HTTP/2 with prior knowledge.
    pub fn http2(addr: SocketAddr) -> Self {
        Self {
            addr,
            inner: HyperClient::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ClientBody,
    ) -> http::Response<Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(path))
            .body(body)
            .expect("valid request");
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        self.inner.request(request).await.expect("request sent")
    }

    /// Sends a request and reads the whole response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ClientBody,
    ) -> Reply {
        let response = self.send(method, path, headers, body).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, &[], full(Bytes::new())).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, &[], full(Bytes::new()))
            .await
    }

    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.call(
            method,
            path,
            &[("content-type", "application/json")],
            full(body.to_string()),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.json(Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.json(Method::PATCH, path, body).await
    }

    /// Creates a session with `body` and returns it, checking the 201.
    pub async fn create_session(&self, body: &Value) -> Value {
        let reply = self.post("/api/chats/sessions/", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.json()
    }
}
