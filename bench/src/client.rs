//! [`Conn`]: one keep-alive HTTP/1.1 client connection on `hyper::client::conn::http1`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::{BenchError, RequestSpec};

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A keep-alive HTTP/1.1 connection to one server.
#[derive(Debug)]
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    /// Connects to `target`, from `source` (a loopback address such as 127.0.0.2) when
    /// given, so that many connections do not exhaust one address's ephemeral ports.
    ///
    /// # Errors
    /// [`BenchError::Io`] when the TCP connection fails, [`BenchError::Hyper`] when
    /// the HTTP handshake does.
    pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> Result<Self, BenchError> {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(BenchError::io("creating a socket"))?;
        if let Some(source) = source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(BenchError::io(format!("binding to {source}")))?;
        }
        let stream = socket
            .connect(target)
            .await
            .map_err(BenchError::io(format!("connecting to {target}")))?;
        stream
            .set_nodelay(true)
            .map_err(BenchError::io("setting TCP_NODELAY"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends with an error when the server goes away; the
            // next request on it reports that.
            let _ = connection.await;
        });
        let host = HeaderValue::from_str(&target.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Ok(Self { sender, host })
    }

    /// Whether the connection can still carry requests.
    #[must_use]
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends `spec` and returns the response head with its body still unread.
    ///
    /// # Errors
    /// [`BenchError::Hyper`] when the connection fails.
    pub async fn send(&mut self, spec: &RequestSpec) -> Result<Response<Incoming>, BenchError> {
        self.sender.ready().await?;
        let mut builder = Request::builder()
            .method(spec.method.clone())
            .uri(spec.path.as_str())
            .header(HOST, self.host.clone());
        if !spec.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder.body(Full::new(spec.body.clone()))?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends `spec`, reads the whole body and returns it with the status, within
    /// [`REQUEST_TIMEOUT`].
    ///
    /// # Errors
    /// [`BenchError::Hyper`] on a connection failure, [`BenchError::Timeout`].
    pub async fn call(&mut self, spec: &RequestSpec) -> Result<(StatusCode, Bytes), BenchError> {
        let exchange = async {
            let response = self.send(spec).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, BenchError>((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| BenchError::Timeout(REQUEST_TIMEOUT))?
    }

    /// Like [`Conn::call`], but fails with [`BenchError::Status`] unless the status is
    /// `expected`.
    ///
    /// # Errors
    /// As [`Conn::call`], plus [`BenchError::Status`].
    pub async fn call_expect(
        &mut self,
        spec: &RequestSpec,
        expected: StatusCode,
    ) -> Result<Bytes, BenchError> {
        let (status, body) = self.call(spec).await?;
        if status == expected {
            Ok(body)
        } else {
            Err(status_error(spec, expected, status, &body))
        }
    }
}

/// A [`BenchError::Status`] for `spec`, keeping the start of `body`.
#[must_use]
pub fn status_error(
    spec: &RequestSpec,
    expected: StatusCode,
    status: StatusCode,
    body: &[u8],
) -> BenchError {
    let shown = &body[..body.len().min(300)];
    BenchError::Status {
        method: spec.method.clone(),
        path: spec.path.clone(),
        expected,
        status,
        body: String::from_utf8_lossy(shown).into_owned(),
    }
}
