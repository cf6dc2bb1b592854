//! The benchmark scenarios, the data they need ([`Fixture`]), and the [`Load`] that
//! runs each one.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;

use crate::client::Conn;
use crate::load::{self, Load, Mode, Stop};
use crate::{BenchError, RequestSpec};

/// Sessions path.
const SESSIONS: &str = "/api/chats/sessions/";
/// Messages path.
const MESSAGES: &str = "/api/chats/messages/";
/// Chat path.
const CHAT: &str = "/api/chats/messages/chat/";
/// Chat stream path.
const STREAM: &str = "/api/chats/messages/chat/stream/";
/// Messages in the small session.
pub const SMALL_SESSION: usize = 20;
/// Small sessions the one-client chat rotates over, so that each stays near
/// [`SMALL_SESSION`] messages while the scenario adds two per chat.
pub const CHAT_ROTATION: usize = 40;
/// The text of benchmark chat messages (six words: the echo answers in seven chunks).
const CHAT_TEXT: &str = "hello there from the load generator";

/// One measured scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Ceiling: `GET` answered with a small JSON body.
    CeilingGet,
    /// Ceiling: `POST` of a small JSON body answered with a small JSON body.
    CeilingPost,
    /// `POST /api/chats/sessions/` with `{}`.
    CreateSession,
    /// `POST /api/chats/messages/`, one session per connection.
    CreateMessage,
    /// `GET /api/chats/messages/{id}/`.
    GetMessage,
    /// `GET /api/chats/messages/?session_id=..&limit=50` on the 20-message session.
    ListSmall,
    /// The same on the big session.
    ListBig,
    /// `limit=20` on the big session: the page size of the small session, so the
    /// comparison with [`Scenario::ListSmall`] isolates the session's size.
    ListBigPage20,
    /// The last 50 messages of the big session (`offset=big-50&limit=50`): the page a
    /// chat UI shows.
    ListBigTail,
    /// The newest 50 messages (`order=desc&limit=50`) of the small session.
    ListSmallNewest,
    /// The newest 50 messages of the big session: the page a chat UI loads first.
    ListBigNewest,
    /// The newest 20 of the big session: the small session's page size, so the
    /// comparison with [`Scenario::ListSmallNewest`] isolates the session's size.
    ListBigNewest20,
    /// `POST /api/chats/messages/chat/` with the echo model.
    Chat,
    /// `POST /api/chats/messages/chat/stream/` with the echo model.
    Stream,
    /// Chat, one client, rotating over [`CHAT_ROTATION`] sessions of
    /// [`SMALL_SESSION`] messages.
    ChatSmallOneClient,
    /// Chat, one client, into the big session.
    ChatBigOneClient,
}

impl Scenario {
    /// The scenarios run on every colloquy store, in order.
    pub const COLLOQUY: [Self; 14] = [
        Self::CreateSession,
        Self::CreateMessage,
        Self::GetMessage,
        Self::ListSmall,
        Self::ListBig,
        Self::ListBigPage20,
        Self::ListBigTail,
        Self::ListSmallNewest,
        Self::ListBigNewest,
        Self::ListBigNewest20,
        Self::Chat,
        Self::Stream,
        Self::ChatSmallOneClient,
        Self::ChatBigOneClient,
    ];

    /// The scenarios run on the ceiling.
    pub const CEILING: [Self; 2] = [Self::CeilingGet, Self::CeilingPost];

    /// A short name for the table; `big` is the size of the big session.
    #[must_use]
    pub fn label(self, big: usize) -> String {
        match self {
            Self::CeilingGet => "GET hello JSON".to_owned(),
            Self::CeilingPost => "POST hello JSON".to_owned(),
            Self::CreateSession => "create session".to_owned(),
            Self::CreateMessage => "create message".to_owned(),
            Self::GetMessage => "get message".to_owned(),
            Self::ListSmall => format!("list 50 of {SMALL_SESSION}"),
            Self::ListBig => format!("list 50 of {big}"),
            Self::ListBigPage20 => format!("list 20 of {big}"),
            Self::ListBigTail => format!("list last 50 of {big}"),
            Self::ListSmallNewest => format!("list newest 50 of {SMALL_SESSION}"),
            Self::ListBigNewest => format!("list newest 50 of {big}"),
            Self::ListBigNewest20 => format!("list newest 20 of {big}"),
            Self::Chat => "chat (echo)".to_owned(),
            Self::Stream => "stream (echo)".to_owned(),
            Self::ChatSmallOneClient => format!("chat into {SMALL_SESSION}, 1 client"),
            Self::ChatBigOneClient => format!("chat into {big}, 1 client"),
        }
    }

    /// The method, which picks the ceiling figure it is compared to.
    #[must_use]
    pub fn method(self) -> Method {
        match self {
            Self::CeilingGet
            | Self::GetMessage
            | Self::ListSmall
            | Self::ListBig
            | Self::ListBigPage20
            | Self::ListBigTail
            | Self::ListSmallNewest
            | Self::ListBigNewest
            | Self::ListBigNewest20 => Method::GET,
            _ => Method::POST,
        }
    }

    /// Whether it runs on one connection for a fixed number of requests.
    #[must_use]
    pub fn is_one_client(self) -> bool {
        matches!(self, Self::ChatSmallOneClient | Self::ChatBigOneClient)
    }

    /// The status a successful request gets.
    #[must_use]
    pub fn expected_status(self) -> StatusCode {
        match self {
            Self::CreateSession | Self::CreateMessage => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }
}

/// How hard and how long to load.
#[derive(Debug, Clone)]
pub struct LoadShape {
    /// Concurrent connections.
    pub connections: usize,
    /// When each scenario stops.
    pub stop: Stop,
    /// Loopback source addresses for the connections.
    pub sources: Vec<IpAddr>,
    /// Requests of the one-client scenarios ([`Scenario::ChatBigOneClient`]...),
    /// which run by count: each adds two messages to its session.
    pub one_client_requests: u64,
}

/// The data the scenarios of one colloquy server need.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// One session per connection for create message.
    pub write_sessions: Arc<Vec<String>>,
    /// One session per connection for chat.
    pub chat_sessions: Arc<Vec<String>>,
    /// One session per connection for stream.
    pub stream_sessions: Arc<Vec<String>>,
    /// [`CHAT_ROTATION`] sessions of [`SMALL_SESSION`] messages for the one-client chat.
    pub chat_small_sessions: Arc<Vec<String>>,
    /// A session of [`SMALL_SESSION`] messages.
    pub small_session: String,
    /// A session of `big_count` messages.
    pub big_session: String,
    /// Messages in the big session.
    pub big_count: usize,
    /// The id of a message, for get message.
    pub message_id: String,
}

/// A message body for session `session`.
fn message_body(session: &str, text: &str) -> serde_json::Value {
    json!({"session_id": session, "message": text})
}

/// Creates `count` sessions named `{prefix}-{i}` with up to `connections` at once.
///
/// # Errors
/// [`BenchError::LoadFailed`] when any creation fails.
pub async fn create_named_sessions(
    target: SocketAddr,
    prefix: &str,
    count: usize,
    connections: usize,
    sources: &[IpAddr],
) -> Result<Vec<String>, BenchError> {
    let names: Arc<Vec<String>> = Arc::new((0..count).map(|i| format!("{prefix}-{i}")).collect());
    let next = Arc::new(AtomicU64::new(0));
    let plan_names = names.clone();
    let result = load::run(&Load {
        target,
        connections: connections.min(count).max(1),
        stop: Stop::Requests(count as u64),
        mode: Mode::Whole,
        expect: StatusCode::CREATED,
        sources: sources.to_vec(),
        plan: Arc::new(move |_, _| {
            let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(0);
            let name = plan_names.get(i).map_or("", String::as_str);
            RequestSpec::post_json(SESSIONS, &json!({"session_id": name}))
        }),
    })
    .await?;
    result.require_success(&format!("creating {count} sessions"))?;
    Ok(names.to_vec())
}

/// Writes `count` messages into each of `sessions` with up to `connections` at once.
async fn fill_sessions(
    target: SocketAddr,
    sessions: &[String],
    count: usize,
    connections: usize,
) -> Result<(), BenchError> {
    let bodies: Vec<RequestSpec> = sessions
        .iter()
        .map(|s| RequestSpec::post_json(MESSAGES, &message_body(s, "a message of the fixture")))
        .collect();
    let total = count * bodies.len();
    if total == 0 {
        return Ok(());
    }
    let next = AtomicU64::new(0);
    let result = load::run(&Load {
        target,
        connections: connections.min(total).max(1),
        stop: Stop::Requests(total as u64),
        mode: Mode::Whole,
        expect: StatusCode::CREATED,
        sources: Vec::new(),
        plan: Arc::new(move |_, _| {
            let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(0);
            bodies[i % bodies.len()].clone()
        }),
    })
    .await?;
    result.require_success(&format!(
        "writing {count} messages into each of {} sessions",
        sessions.len()
    ))
}

/// Creates the data of every scenario on the server at `target`; names start with
/// `tag` so that runs never collide.
///
/// # Errors
/// Any failed request.
pub async fn prepare(
    target: SocketAddr,
    tag: &str,
    shape: &LoadShape,
    big: usize,
) -> Result<Fixture, BenchError> {
    let n = shape.connections.max(1);
    let c = shape.connections;
    let write_sessions = create_named_sessions(target, &format!("{tag}-w"), n, c, &[]).await?;
    let chat_sessions = create_named_sessions(target, &format!("{tag}-c"), n, c, &[]).await?;
    let stream_sessions = create_named_sessions(target, &format!("{tag}-s"), n, c, &[]).await?;
    let chat_small =
        create_named_sessions(target, &format!("{tag}-r"), CHAT_ROTATION, c, &[]).await?;
    let fixed = create_named_sessions(target, &format!("{tag}-f"), 2, 2, &[]).await?;
    let (small, big_session) = (fixed[0].clone(), fixed[1].clone());
    let mut conn = Conn::connect(target, None).await?;
    let first = RequestSpec::post_json(MESSAGES, &message_body(&small, "the first message"));
    let created = conn.call_expect(&first, StatusCode::CREATED).await?;
    let message_id = json_id(&created, MESSAGES)?;
    fill_sessions(target, std::slice::from_ref(&small), SMALL_SESSION - 1, c).await?;
    fill_sessions(target, &chat_small, SMALL_SESSION, c).await?;
    fill_sessions(target, std::slice::from_ref(&big_session), big, c).await?;
    Ok(Fixture {
        write_sessions: Arc::new(write_sessions),
        chat_sessions: Arc::new(chat_sessions),
        stream_sessions: Arc::new(stream_sessions),
        chat_small_sessions: Arc::new(chat_small),
        small_session: small,
        big_session,
        big_count: big,
        message_id,
    })
}

/// The `id` of the JSON object `body` (a response to `path`).
///
/// # Errors
/// [`BenchError::Json`] when it is missing or not a string.
pub fn json_id(body: &[u8], path: &str) -> Result<String, BenchError> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(body)
        .map(|parsed| parsed.id)
        .map_err(|source| BenchError::Json {
            path: path.to_owned(),
            field: "id",
            source,
        })
}

/// The load that runs `scenario` against `target` (`fixture` is needed by every
/// colloquy scenario and ignored by the ceiling's).
#[must_use]
pub fn load_for(
    scenario: Scenario,
    target: SocketAddr,
    fixture: Option<&Fixture>,
    shape: &LoadShape,
) -> Load {
    let plan: load::Plan = match (scenario, fixture) {
        (Scenario::CeilingGet, _) | (_, None) => {
            let spec = RequestSpec::get("/api/chats/messages/hello/");
            Arc::new(move |_, _| spec.clone())
        }
        (Scenario::CeilingPost, _) => {
            let spec = RequestSpec::post_json(
                MESSAGES,
                &message_body("ceiling", "hello from the benchmark"),
            );
            Arc::new(move |_, _| spec.clone())
        }
        (Scenario::CreateSession, Some(_)) => {
            let spec = RequestSpec::post_json(SESSIONS, &json!({}));
            Arc::new(move |_, _| spec.clone())
        }
        (Scenario::CreateMessage, Some(f)) => {
            per_connection(&f.write_sessions, MESSAGES, "hello from the benchmark")
        }
        (Scenario::GetMessage, Some(f)) => {
            let spec = RequestSpec::get(format!("{MESSAGES}{}/", f.message_id));
            Arc::new(move |_, _| spec.clone())
        }
        (Scenario::ListSmall, Some(f)) => list_plan(&f.small_session, 0, 50),
        (Scenario::ListBig, Some(f)) => list_plan(&f.big_session, 0, 50),
        (Scenario::ListBigPage20, Some(f)) => list_plan(&f.big_session, 0, 20),
        (Scenario::ListBigTail, Some(f)) => {
            list_plan(&f.big_session, f.big_count.saturating_sub(50), 50)
        }
        (Scenario::ListSmallNewest, Some(f)) => newest_plan(&f.small_session, 50),
        (Scenario::ListBigNewest, Some(f)) => newest_plan(&f.big_session, 50),
        (Scenario::ListBigNewest20, Some(f)) => newest_plan(&f.big_session, 20),
        (Scenario::Chat, Some(f)) => per_connection(&f.chat_sessions, CHAT, CHAT_TEXT),
        (Scenario::Stream, Some(f)) => per_connection(&f.stream_sessions, STREAM, CHAT_TEXT),
        (Scenario::ChatSmallOneClient, Some(f)) => {
            let specs: Vec<RequestSpec> = f
                .chat_small_sessions
                .iter()
                .map(|s| RequestSpec::post_json(CHAT, &message_body(s, CHAT_TEXT)))
                .collect();
            Arc::new(move |_, n| {
                let i = usize::try_from(n).unwrap_or(0);
                specs[i % specs.len()].clone()
            })
        }
        (Scenario::ChatBigOneClient, Some(f)) => {
            let spec = RequestSpec::post_json(CHAT, &message_body(&f.big_session, CHAT_TEXT));
            Arc::new(move |_, _| spec.clone())
        }
    };
    let one_client = scenario.is_one_client();
    Load {
        target,
        connections: if one_client { 1 } else { shape.connections },
        stop: if one_client {
            Stop::Requests(shape.one_client_requests.max(1))
        } else {
            shape.stop
        },
        mode: if scenario == Scenario::Stream {
            Mode::Stream
        } else {
            Mode::Whole
        },
        expect: scenario.expected_status(),
        sources: shape.sources.clone(),
        plan,
    }
}

/// POSTs of `text` to `path`, each connection in its own session.
fn per_connection(sessions: &Arc<Vec<String>>, path: &'static str, text: &str) -> load::Plan {
    let specs: Vec<RequestSpec> = sessions
        .iter()
        .map(|s| RequestSpec::post_json(path, &message_body(s, text)))
        .collect();
    Arc::new(move |conn, _| specs[conn % specs.len()].clone())
}

/// `GET` of the newest `limit` messages of `session`, newest first.
fn newest_plan(session: &str, limit: usize) -> load::Plan {
    let spec = RequestSpec::get(format!(
        "{MESSAGES}?session_id={session}&order=desc&limit={limit}"
    ));
    Arc::new(move |_, _| spec.clone())
}

/// `GET` of `limit` messages of `session` from `offset`.
fn list_plan(session: &str, offset: usize, limit: usize) -> load::Plan {
    let spec = RequestSpec::get(if offset == 0 {
        format!("{MESSAGES}?session_id={session}&limit={limit}")
    } else {
        format!("{MESSAGES}?session_id={session}&offset={offset}&limit={limit}")
    });
    Arc::new(move |_, _| spec.clone())
}
