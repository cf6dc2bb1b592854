//! The ceiling: a bare hyper 1.x server that answers every request with a small JSON
//! document, on the same hyper-util auto builder, `TokioIo` and TCP settings as the
//! colloquy server. Whatever colloquy does on top of that costs throughput; the
//! ceiling's figures say how much there was to spend.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// The body of every answer.
pub const CEILING_BODY: &[u8] = br#"{"message":"hello","ok":true}"#;

/// Answers one request: reads its body, answers [`CEILING_BODY`].
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body as a real handler must (a failed read still gets an answer).
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(CEILING_BODY)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(response)
}

/// Serves the ceiling on `listener` until `shutdown` completes.
pub async fn serve_ceiling<F>(listener: TcpListener, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let connection = builder.serve_connection(TokioIo::new(stream), service_fn(answer));
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Conn;
    use crate::RequestSpec;
    use http::StatusCode;

    #[tokio::test]
    async fn answers_json_to_get_and_post() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_ceiling(listener, async {
            let _ = stopped.await;
        }));
        let mut conn = Conn::connect(addr, None).await.expect("connect to ceiling");
        let get = conn
            .call_expect(&RequestSpec::get("/healthz"), StatusCode::OK)
            .await
            .expect("GET answered");
        assert_eq!(&get[..], CEILING_BODY);
        let post = RequestSpec::post_json("/api/chats/messages/", &serde_json::json!({"m": 1}));
        let body = conn
            .call_expect(&post, StatusCode::OK)
            .await
            .expect("POST answered");
        assert_eq!(&body[..], CEILING_BODY);
        drop(conn);
        let _ = stop.send(());
        server.await.expect("ceiling stops after shutdown");
    }
}
