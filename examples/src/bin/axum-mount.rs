//! An axum app that embeds Colloquy: routes of its own (`GET /hello`), the chat API
//! mounted under `/support` (`POST /support/api/chats/sessions/`, ...), and a
//! handler of its own, `POST /ask`, that calls [`ChatService`] directly and streams
//! the answer in the API's SSE format.
//!
//! ```sh
//! cargo run -p colloquy-examples --bin axum-mount -- --bind 127.0.0.1:3000
//! curl -s -X POST localhost:3000/support/api/chats/sessions/
//! curl -N -X POST localhost:3000/ask -d 'What is Colloquy?'
//! ```
//!
//! What the app owns, because it serves (see `colloquy_http::Api`): the listener,
//! `TCP_NODELAY`, the client's address ([`PeerAddr`]) and graceful shutdown with
//! [`ChatService::shutdown`].

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use colloquy_core::{
    validate, ChatService, ChatStream, EchoModel, NewMessage, NewSession, Role, ServiceError,
    SessionRef, SystemClock,
};
use colloquy_http::{error_response, sse_response, Api, HttpConfig, PeerAddr};
use colloquy_memory::MemoryStore;

/// How long answers in flight may take to finish on shutdown.
const GRACE: Duration = Duration::from_secs(10);

/// The header that names the session of `POST /ask` (request: continue it;
/// response: the session the answer went to).
const SESSION_HEADER: &str = "x-session-id";

/// An axum app with the Colloquy chat API mounted under /support.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    bind: SocketAddr,
}

/// What `POST /ask` needs.
#[derive(Clone)]
struct Chat {
    service: ChatService,
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
    let chat = Chat {
        service: service.clone(),
        keep_alive: config.sse_keep_alive,
    };
    // The API keeps the request's whole path, so give it the full base path and
    // mount it with `route_service` (axum's `nest_service` would strip `/support`).
    let api = Api::new(service.clone(), config)
        .with_base_path("/support/api/chats")
        .with_service_endpoints(false);
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/ask", post(ask))
        .with_state(chat)
        .route_service("/support/api/chats/{*rest}", api)
        .layer(middleware::from_fn(peer_addr));

    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("axum-mount listening on http://{}", listener.local_addr()?);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // TCP_NODELAY: each SSE event is a small write that must leave at once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(()); // stop accepting; connections drain ...
        service.shutdown(GRACE).await; // ... while the answers in flight finish
    };
    let (served, ()) = tokio::join!(server.into_future(), stop);
    served
}

/// Tells the API who the client is, for per-IP rate limits.
async fn peer_addr(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(PeerAddr(peer));
    next.run(request).await
}

/// `GET /hello`: a route of the app's own.
async fn hello() -> &'static str {
    "hello from the host app\n"
}

/// `POST /ask` with the question as a plain-text body: the answer streamed exactly
/// as `POST /support/api/chats/messages/chat/stream/` streams it. Continues the
/// session named by `X-Session-Id`, or starts one; the response's `X-Session-Id`
/// names it. Failures are the API's JSON errors.
async fn ask(State(chat): State<Chat>, headers: HeaderMap, question: String) -> Response {
    let session = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(SessionRef::parse);
    match start(&chat.service, session, question).await {
        Ok(stream) => {
            let session_id = HeaderValue::from_str(&stream.session_id).ok();
            let mut response = sse_response(stream, chat.keep_alive);
            if let Some(id) = session_id {
                response.headers_mut().insert(SESSION_HEADER, id);
            }
            response.into_response()
        }
        Err(e) => error_response(&e).into_response(),
    }
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
