//! Helpers shared by the integration tests: unique temporary database paths, and
//! sessions and drafts as the service would build them.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of it

use std::path::{Path, PathBuf};

use chrono::Duration;
use colloquy_core::{Clock, MessageDraft, MessageQuery, Metadata, Page, Role, Session};
use uuid::Uuid;

/// A fresh temporary directory (`tempfile`) holding one database path; removed on
/// drop.
pub struct TempDb {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempDb {
    /// Creates `<tmp>/colloquy-sqlite-<random>/` and names `colloquy.db` inside it.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("colloquy-sqlite-")
            .tempdir()
            .expect("create a temporary directory");
        let path = dir.path().join("colloquy.db");
        Self { dir, path }
    }

    /// The database file's path (it does not exist until a store opens it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives up ownership: the caller removes the directory (see [`remove_dir`]).
    pub fn into_dir(self) -> PathBuf {
        self.dir.keep()
    }
}

/// Removes a temporary directory, ignoring errors (best-effort cleanup).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// A session as the service would build it: created now, expiring after `ttl`.
pub fn session(clock: &dyn Clock, sid: &str, ttl: Duration) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        session_id: sid.into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + ttl,
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

/// A draft with a random id, written now.
pub fn draft(clock: &dyn Clock, role: Role, text: &str) -> MessageDraft {
    MessageDraft {
        id: Uuid::new_v4(),
        role,
        message: text.into(),
        metadata: Metadata::new(),
        timestamp: clock.now(),
    }
}

/// The largest page: everything, for the small sessions of these tests.
pub fn all() -> Page {
    Page {
        limit: Page::MAX_LIMIT,
        offset: 0,
    }
}

/// Every non-deleted message of a session, in write order.
pub fn everything() -> MessageQuery {
    MessageQuery {
        page: all(),
        ..MessageQuery::default()
    }
}
