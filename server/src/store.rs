//! `--store`: which store the server keeps sessions and messages in.
//!
//! A store is named by a short spec string, parsed into [`StoreSpec`] and opened by
//! [`StoreSpec::open`]. To add a backend, add a variant, its spec syntax in
//! `from_str` (and in [`SUPPORTED`]), and its arm in `open`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::Clock;
use colloquy_memory::MemoryStore;

/// The spec forms `--store` accepts, for help and error messages.
pub(crate) const SUPPORTED: &str = "memory";

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// `memory`: in-process, lost on restart.
    Memory,
}

/// A `--store` value that names no supported store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store {spec:?}; supported: {SUPPORTED}")]
pub(crate) struct StoreSpecError {
    spec: String,
}

impl FromStr for StoreSpec {
    type Err = StoreSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.trim() {
            "memory" => Ok(Self::Memory),
            _ => Err(StoreSpecError {
                spec: spec.to_owned(),
            }),
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
        }
    }
}

/// Both store ports of an opened store (usually one object behind both).
pub(crate) struct Stores {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) messages: Arc<dyn MessageStore>,
}

/// A store that could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OpenStoreError {}

impl StoreSpec {
    /// Opens the store, judging expiry by `clock`.
    #[allow(clippy::unused_async)] // durable backends connect here
    pub(crate) async fn open(&self, clock: Arc<dyn Clock>) -> Result<Stores, OpenStoreError> {
        match self {
            Self::Memory => {
                let store = Arc::new(MemoryStore::new(clock));
                Ok(Stores {
                    sessions: store.clone(),
                    messages: store,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_specs_and_explains_unknown_ones() {
        assert_eq!("memory".parse(), Ok(StoreSpec::Memory));
        assert_eq!(StoreSpec::Memory.to_string(), "memory");
        let e = "postgres://x".parse::<StoreSpec>().expect_err("unknown");
        assert!(e.to_string().contains(SUPPORTED));
    }

    #[tokio::test]
    async fn memory_opens_and_answers() {
        let stores = StoreSpec::Memory
            .open(Arc::new(colloquy_core::SystemClock))
            .await
            .expect("memory opens");
        stores.sessions.ping().await.expect("memory answers");
    }
}
