//! Test doubles: a model that waits on a gate between chunks, models that fail,
//! and a store that fails (or panics) on every call.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{ChatModel, ChatStore, ModelStream};
use colloquy_core::{
    ChatMessage, Completion, EchoModel, FinishInfo, MessageDraft, MessageQuery, ModelError,
    ModelEvent, ModelRequest, Page, Session, SessionFilter, SessionPatch, SessionRef, StoreError,
    TimeoutKind,
};
use futures::StreamExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Answers like [`EchoModel`], but streams only the first chunk freely: each later
/// chunk waits for a permit from its [`Gate`]. While the test holds the gate, the
/// model cannot finish.
pub struct GatedModel {
    permits: Arc<Semaphore>,
}

/// The test's side of a [`GatedModel`].
#[derive(Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
}

impl Gate {
    /// Lets `n` more chunks through.
    pub fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Lets every remaining chunk through.
    pub fn open(&self) {
        self.permits.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl GatedModel {
    pub fn new() -> (Self, Gate) {
        let permits = Arc::new(Semaphore::new(0));
        (
            Self {
                permits: permits.clone(),
            },
            Gate { permits },
        )
    }
}

#[async_trait]
impl ChatModel for GatedModel {
    async fn complete(&self, request: &ModelRequest) -> Result<Completion, ModelError> {
        EchoModel::new().complete(request).await
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError> {
        let permits = self.permits.clone();
        let chunks = EchoModel::chunks(&EchoModel::answer(request));
        let stream = futures::stream::iter(chunks.into_iter().enumerate())
            .then(move |(i, chunk)| {
                let permits = permits.clone();
                async move {
                    if i > 0 {
                        permits.acquire().await.expect("gate open").forget();
                    }
                    Ok(ModelEvent::Delta(chunk))
                }
            })
            .chain(futures::stream::once(async {
                Ok(ModelEvent::Finished(FinishInfo::default()))
            }));
        Ok(stream.boxed())
    }
}

/// How a [`FailingModel`] fails.
#[derive(Clone, Copy)]
pub enum Failure {
    /// Refuses every call (502 `llm_unavailable`).
    Unavailable,
    /// Times out on every call (504 `llm_timeout`).
    Timeout,
    /// Streams `after` echo chunks, then fails; `complete` fails outright.
    MidStream { after: usize },
}

pub struct FailingModel(pub Failure);

fn unavailable() -> ModelError {
    ModelError::Unavailable {
        retryable: false,
        source: "test model refuses".into(),
    }
}

#[async_trait]
impl ChatModel for FailingModel {
    async fn complete(&self, _: &ModelRequest) -> Result<Completion, ModelError> {
        match self.0 {
            Failure::Timeout => Err(ModelError::Timeout(TimeoutKind::Total)),
            _ => Err(unavailable()),
        }
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, ModelError> {
        match self.0 {
            Failure::Unavailable => Err(unavailable()),
            Failure::Timeout => Err(ModelError::Timeout(TimeoutKind::FirstChunk)),
            Failure::MidStream { after } => {
                let chunks: Vec<_> = EchoModel::chunks(&EchoModel::answer(request))
                    .into_iter()
                    .take(after)
                    .map(|c| Ok(ModelEvent::Delta(c)))
                    .chain(std::iter::once(Err(unavailable())))
                    .collect();
                Ok(futures::stream::iter(chunks).boxed())
            }
        }
    }
}

/// What a [`FaultyStore`] does on every call.
#[derive(Clone, Copy)]
pub enum Fault {
    /// The backend is down (503 `store_unavailable`).
    Unavailable,
    /// The backend answers garbage (500, details logged only).
    Backend,
    /// The adapter panics (500, the server survives).
    Panic,
}

/// A secret that must never reach a client.
pub const SECRET: &str = "secret-table-xyz";

pub struct FaultyStore(pub Fault);

impl FaultyStore {
    fn fail<T>(&self) -> Result<T, StoreError> {
        match self.0 {
            Fault::Unavailable => Err(StoreError::unavailable("connection refused")),
            Fault::Backend => Err(StoreError::backend(format!("{SECRET} is corrupt"))),
            Fault::Panic => panic!("the store adapter panicked ({SECRET})"),
        }
    }
}

#[async_trait]
impl ChatStore for FaultyStore {
    async fn create_session(&self, _: &Session) -> Result<(), StoreError> {
        self.fail()
    }
    async fn session(&self, _: &SessionRef) -> Result<Option<Session>, StoreError> {
        self.fail()
    }
    async fn update_session(
        &self,
        _: &SessionRef,
        _: &SessionPatch,
    ) -> Result<Session, StoreError> {
        self.fail()
    }
    async fn delete_session(&self, _: &SessionRef) -> Result<(), StoreError> {
        self.fail()
    }
    async fn list_sessions(&self, _: &SessionFilter, _: Page) -> Result<Vec<Session>, StoreError> {
        self.fail()
    }
    async fn append(
        &self,
        _: &SessionRef,
        _: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        self.fail()
    }
    async fn message(&self, _: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        self.fail()
    }
    async fn list_messages(
        &self,
        _: &SessionRef,
        _: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        self.fail()
    }
    async fn delete_message(&self, _: Uuid) -> Result<(), StoreError> {
        self.fail()
    }
    async fn purge_expired(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        self.fail()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.fail()
    }
}
