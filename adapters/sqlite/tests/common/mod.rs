//! Helpers shared by the integration tests: unique temporary database paths.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of it

use std::path::{Path, PathBuf};

/// A fresh temporary directory holding one database path; removed on drop.
pub struct TempDb {
    dir: PathBuf,
    path: PathBuf,
}

impl TempDb {
    /// Creates `<tmp>/colloquy-sqlite-<uuid>/` and names `colloquy.db` inside it.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("colloquy-sqlite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let path = dir.join("colloquy.db");
        Self { dir, path }
    }

    /// The database file's path (it does not exist until a store opens it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives up ownership: the caller removes the directory (see [`remove_dir`]).
    pub fn into_dir(self) -> PathBuf {
        let dir = self.dir.clone();
        std::mem::forget(self);
        dir
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        remove_dir(&self.dir);
    }
}

/// Removes a temporary directory, ignoring errors (best-effort cleanup).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
