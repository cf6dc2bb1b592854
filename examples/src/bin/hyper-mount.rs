//! A plain hyper/hyper-util server that embeds Colloquy: a route of its own
//! (`GET /hello`), the chat API mounted under `/support`
//! (`POST /support/api/chats/sessions/`, ...), and a handler of its own, `POST /ask`,
//! that calls [`ChatService`] directly and streams the answer in the API's SSE
//! format.
//!
//! ```sh
//! cargo run -p colloquy-examples --bin hyper-mount -- --bind 127.0.0.1:3000
//! curl -s -X POST localhost:3000/support/api/chats/sessions/
//! curl -N -X POST localhost:3000/ask -d 'What is Colloquy?'
//! ```
//!
//! What the server owns, because it serves (see `colloquy_http::Api`): the listener
//! and accept loop, `TCP_NODELAY`, the client's address ([`PeerAddr`]) and graceful
//! shutdown with [`ChatService::shutdown`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use colloquy_core::{
    validate, ChatService, ChatStream, EchoModel, ErrorCode, NewMessage, NewSession, Role,
    ServiceError, SessionRef, SystemClock, ValidationError,
};
use colloquy_http::{error_response, sse_response, Api, HttpConfig, PeerAddr, Response};
use colloquy_memory::MemoryStore;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;

/// How long answers in flight may take to finish on shutdown.
const GRACE: Duration = Duration::from_secs(10);

/// The largest question `POST /ask` reads.
const MAX_QUESTION_BYTES: usize = 64 * 1024;

/// The header that names the session of `POST /ask` (request: continue it;
/// response: the session the answer went to).
const SESSION_HEADER: &str = "x-session-id";

/// A hyper server with the Colloquy chat API mounted under /support.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    bind: SocketAddr,
}

/// Everything a request needs.
#[derive(Clone)]
struct App {
    service: ChatService,
    api: Api,
    keep_alive: Duration,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let clock = Arc::new(SystemClock);
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let service = ChatService::builder(store, clock)
        .model(Arc::new(EchoModel::new()))
        .build();
    let config = HttpConfig::default();
    let app = App {
        service: service.clone(),
        keep_alive: config.sse_keep_alive,
        api: Api::new(service.clone(), config)
            .with_base_path("/support/api/chats")
            .with_service_endpoints(false),
    };

    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("hyper-mount listening on http://{}", listener.local_addr()?);

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut ctrl_c => break,
        };
        // Each SSE event is a small write that must leave at once.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let serve = service_fn(move |mut request: Request<Incoming>| {
            // The client's address, for per-IP rate limits.
            request.extensions_mut().insert(PeerAddr(peer));
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.route(request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), serve);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    // Connections drain while the answers in flight finish, under one deadline.
    let drain = tokio::time::timeout(GRACE + Duration::from_secs(2), graceful.shutdown());
    let (_, ()) = tokio::join!(drain, service.shutdown(GRACE));
    Ok(())
}

impl App {
    /// The app's own routes first, then the chat API (a `hyper::service::Service`).
    async fn route(&self, request: Request<Incoming>) -> Response {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/hello") => text(StatusCode::OK, "hello from the host app\n"),
            (&Method::POST, "/ask") => self.ask(request).await,
            (_, path) if path.starts_with("/support/") => match self.api.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// `POST /ask` with the question as a plain-text body: the answer streamed
    /// exactly as `POST /support/api/chats/messages/chat/stream/` streams it.
    /// Continues the session named by `X-Session-Id`, or starts one; the response's
    /// `X-Session-Id` names it. Failures are the API's JSON errors.
    async fn ask(&self, request: Request<Incoming>) -> Response {
        let session = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(SessionRef::parse);
        let body = Limited::new(request.into_body(), MAX_QUESTION_BYTES);
        let question = match body.collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(_) => {
                // The API's 413 (a body that failed to arrive gets the same answer).
                let too_big = ValidationError {
                    code: ErrorCode::PayloadTooLarge,
                    field: None,
                    message: format!("the question must be at most {MAX_QUESTION_BYTES} bytes"),
                };
                return error_response(&ServiceError::from(too_big));
            }
        };
        match start(&self.service, session, question).await {
            Ok(stream) => {
                let session_id = HeaderValue::from_str(&stream.session_id).ok();
                let mut response = sse_response(stream, self.keep_alive);
                if let Some(id) = session_id {
                    response.headers_mut().insert(SESSION_HEADER, id);
                }
                response
            }
            Err(e) => error_response(&e),
        }
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = http::Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Starts the answer to `question` in `session`, or in a new session.
async fn start(
    service: &ChatService,
    session: Option<SessionRef>,
    question: String,
) -> Result<ChatStream, ServiceError> {
    // The service checks the message too; checking first creates no session for a
    // question that would be refused.
    validate::message_text(&question, service.limits())?;
    let session = match session {
        Some(session) => session,
        None => SessionRef::from_uuid(service.create_session(NewSession::default()).await?.id),
    };
    service
        .chat_stream(NewMessage {
            session,
            message: question,
            role: Role::User,
            metadata: Default::default(),
        })
        .await
}
