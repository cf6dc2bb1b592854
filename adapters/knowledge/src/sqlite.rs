//! [`SqliteKnowledge`]: documents, passages, their FTS5 index and their vectors in
//! one SQLite file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use colloquy_core::{
    DocumentInfo, KnowledgeBase, KnowledgeError, KnowledgeIngest, NewDocument, Passage,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::embeddings::Embedder;
use crate::fusion;
use crate::query::fts_query;
use crate::split::HEADING_SEPARATOR;
use crate::vectors::VectorIndex;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// How [`SqliteKnowledge::search`](KnowledgeBase::search) ranks passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// FTS5's BM25 over passage titles and texts.
    Bm25,
    /// Cosine similarity of the query's embedding with the passages'.
    Vector,
    /// Reciprocal rank fusion of the two (falls back to BM25 alone, with a warning,
    /// while the embeddings server fails).
    Hybrid,
}

impl SearchMode {
    /// The mode's name: `bm25`, `vector` or `hybrid`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Vector => "vector",
            Self::Hybrid => "hybrid",
        }
    }
}

/// Why a knowledge file could not be opened.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite failed (the file is not a database, a directory is missing, ...).
    #[error("SQLite error")]
    Sqlite(#[from] rusqlite::Error),
    /// This SQLite was built without FTS5.
    #[error("this SQLite has no FTS5")]
    NoFts5,
    /// The file was written by a newer build.
    #[error("knowledge schema version {found} is newer than this build's {SCHEMA_VERSION}")]
    NewerSchema {
        /// The file's version.
        found: i64,
    },
    /// `Vector` or `Hybrid` search without an embedder.
    #[error("{0} search needs an embeddings server")]
    NoEmbedder(&'static str),
}

/// A knowledge base in one SQLite file: the zero-setup default.
///
/// Passages are indexed by FTS5 (`unicode61 remove_diacritics 2` tokenizer: case and
/// accents do not matter) and ranked by BM25; with an [`Embedder`], their vectors are
/// stored in the same file and searched by cosine similarity (brute force over an
/// in-memory copy, reloaded when another process changed the file), alone or fused
/// with BM25 ([`SearchMode`]). Every SQLite call runs on the blocking thread pool.
#[derive(Clone)]
pub struct SqliteKnowledge {
    db: Arc<Mutex<Db>>,
    embedder: Option<Arc<dyn Embedder>>,
    mode: SearchMode,
}

impl std::fmt::Debug for SqliteKnowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteKnowledge")
            .field("mode", &self.mode)
            .field("embedder", &self.embedder.as_ref().map(|e| e.model()))
            .finish_non_exhaustive()
    }
}

struct Db {
    conn: Connection,
    vectors: Option<VectorIndex>,
}

fn lock(db: &Mutex<Db>) -> MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(PoisonError::into_inner)
}

fn backend(e: impl Into<colloquy_core::BoxError>) -> KnowledgeError {
    KnowledgeError::backend(e)
}

/// BM25 weight of a passage's title against its text.
const TITLE_WEIGHT: f64 = 2.0;
/// How many candidates each ranking gives hybrid fusion, at least.
const FUSION_DEPTH: usize = 30;

/// How many counts [`SqliteKnowledge::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Documents stored.
    pub documents: usize,
    /// Passages stored.
    pub passages: usize,
    /// Passages with a vector of the current embedder's model.
    pub vectors: usize,
}

impl SqliteKnowledge {
    /// Opens (creating if missing) the knowledge file at `path`. With an `embedder`
    /// the mode is [`SearchMode::Hybrid`], else [`SearchMode::Bm25`].
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open(
        path: impl AsRef<Path>,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<Self, OpenError> {
        let path = path.as_ref().to_owned();
        let conn = tokio::task::spawn_blocking(move || Connection::open(path))
            .await
            .map_err(|_| OpenError::Sqlite(rusqlite::Error::InvalidQuery))??;
        Self::from_connection(conn, embedder)
    }

    /// A private in-memory knowledge base (tests, demos).
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open_in_memory(embedder: Option<Arc<dyn Embedder>>) -> Result<Self, OpenError> {
        Self::from_connection(Connection::open_in_memory()?, embedder)
    }

    fn from_connection(
        conn: Connection,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<Self, OpenError> {
        migrate(&conn)?;
        let mode = if embedder.is_some() {
            SearchMode::Hybrid
        } else {
            SearchMode::Bm25
        };
        Ok(Self {
            db: Arc::new(Mutex::new(Db {
                conn,
                vectors: None,
            })),
            embedder,
            mode,
        })
    }

    /// The same knowledge base, searched in `mode`.
    ///
    /// # Errors
    /// [`OpenError::NoEmbedder`] for `Vector` or `Hybrid` without an embedder.
    pub fn with_mode(mut self, mode: SearchMode) -> Result<Self, OpenError> {
        if mode != SearchMode::Bm25 && self.embedder.is_none() {
            return Err(OpenError::NoEmbedder(mode.as_str()));
        }
        self.mode = mode;
        Ok(self)
    }

    /// How it searches.
    #[must_use]
    pub fn mode(&self) -> SearchMode {
        self.mode
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, KnowledgeError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, KnowledgeError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&mut lock(&db)))
            .await
            .map_err(backend)?
    }

    /// Counts of documents, passages and vectors.
    ///
    /// # Errors
    /// A SQLite failure.
    pub async fn stats(&self) -> Result<Stats, KnowledgeError> {
        let model = self.embedder.as_ref().map(|e| e.model().to_owned());
        self.blocking(move |db| {
            let count = |sql: &str| -> Result<usize, KnowledgeError> {
                let n: i64 = db.conn.query_row(sql, [], |r| r.get(0)).map_err(backend)?;
                Ok(usize::try_from(n).unwrap_or(0))
            };
            let documents = count("SELECT count(*) FROM kb_documents")?;
            let passages = count("SELECT count(*) FROM kb_passages")?;
            let vectors = match model {
                Some(m) => db
                    .conn
                    .query_row(
                        "SELECT count(*) FROM kb_vectors WHERE model = ?1",
                        [m],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(backend)
                    .map(|n| usize::try_from(n).unwrap_or(0))?,
                None => 0,
            };
            Ok(Stats {
                documents,
                passages,
                vectors,
            })
        })
        .await
    }

    /// Gives a vector to every passage that has none from the current embedder's
    /// model (passages stored without embeddings, or with another model), `batch`
    /// passages at a time, calling `progress(done, total)` after each batch. Returns
    /// how many it embedded; 0 without an embedder.
    ///
    /// # Errors
    /// A SQLite or embeddings failure (what was embedded before it stays stored).
    pub async fn embed_missing(
        &self,
        batch: usize,
        mut progress: impl FnMut(usize, usize) + Send,
    ) -> Result<usize, KnowledgeError> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(0);
        };
        let model = embedder.model().to_owned();
        let wanted = model.clone();
        let missing: Vec<(i64, String)> = self
            .blocking(move |db| {
                let mut stmt = db
                    .conn
                    .prepare(
                        "SELECT p.rowid, p.title, p.text FROM kb_passages p WHERE NOT EXISTS \
                         (SELECT 1 FROM kb_vectors v WHERE v.passage = p.rowid AND v.model = ?1) \
                         ORDER BY p.rowid",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map([wanted], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            embedding_text(&r.get::<_, String>(1)?, &r.get::<_, String>(2)?),
                        ))
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        let total = missing.len();
        let mut done = 0;
        for chunk in missing.chunks(batch.max(1)) {
            let texts: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
            let vectors = embedder
                .embed(&texts)
                .await
                .map_err(KnowledgeError::unavailable)?;
            let rows: Vec<(i64, Vec<f32>)> = chunk.iter().map(|(id, _)| *id).zip(vectors).collect();
            let model = model.clone();
            self.blocking(move |db| {
                let tx = db.conn.transaction().map_err(backend)?;
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO kb_vectors (passage, model, vector) VALUES (?1, ?2, ?3)",
                        )
                        .map_err(backend)?;
                    for (id, v) in &rows {
                        insert
                            .execute(params![id, model, crate::vectors::to_blob(v)])
                            .map_err(backend)?;
                    }
                }
                bump_generation(&tx)?;
                tx.commit().map_err(backend)
            })
            .await?;
            done += chunk.len();
            progress(done, total);
        }
        Ok(total)
    }

    /// Merges the FTS5 index's segments: faster searches after a large ingest.
    ///
    /// # Errors
    /// A SQLite failure.
    pub async fn optimize(&self) -> Result<(), KnowledgeError> {
        self.blocking(|db| {
            db.conn
                .execute("INSERT INTO kb_fts(kb_fts) VALUES ('optimize')", [])
                .map(drop)
                .map_err(backend)
        })
        .await
    }

    /// The BM25 ranking: at most `n` passages.
    async fn bm25(&self, query: String, n: usize) -> Result<Vec<Hit>, KnowledgeError> {
        let Some(fts) = fts_query(&query) else {
            return Ok(Vec::new());
        };
        self.blocking(move |db| {
            let sql = format!(
                "SELECT p.rowid, p.document, p.seq, p.title, p.text, d.uri, \
                 bm25(kb_fts, {TITLE_WEIGHT}, 1.0) AS rank \
                 FROM kb_fts JOIN kb_passages p ON p.rowid = kb_fts.rowid \
                 JOIN kb_documents d ON d.id = p.document \
                 WHERE kb_fts MATCH ?1 ORDER BY rank LIMIT ?2"
            );
            let mut stmt = db.conn.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(params![fts, n as i64], |r| {
                    Ok(Hit {
                        rowid: r.get(0)?,
                        passage: passage_row(r, -r.get::<_, f64>(6)?)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    /// The cosine ranking: at most `n` passages.
    async fn vector(&self, query: String, n: usize) -> Result<Vec<Hit>, KnowledgeError> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(Vec::new());
        };
        let mut embedded = embedder
            .embed(&[query])
            .await
            .map_err(KnowledgeError::unavailable)?;
        let q = embedded.pop().ok_or_else(|| backend("no query vector"))?;
        let model = embedder.model().to_owned();
        self.blocking(move |db| {
            let generation = generation(&db.conn)?;
            let stale = db
                .vectors
                .as_ref()
                .is_none_or(|v| v.generation != generation || v.model != model);
            if stale {
                db.vectors = Some(VectorIndex::load(&db.conn, &model, generation)?);
            }
            let top = db
                .vectors
                .as_ref()
                .map(|v| v.top(&q, n))
                .unwrap_or_default();
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT p.rowid, p.document, p.seq, p.title, p.text, d.uri \
                     FROM kb_passages p JOIN kb_documents d ON d.id = p.document \
                     WHERE p.rowid = ?1",
                )
                .map_err(backend)?;
            let mut hits = Vec::with_capacity(top.len());
            for (rowid, score) in top {
                let passage = stmt
                    .query_row([rowid], |r| passage_row(r, f64::from(score)))
                    .optional()
                    .map_err(backend)?;
                if let Some(passage) = passage {
                    hits.push(Hit { rowid, passage });
                }
            }
            Ok(hits)
        })
        .await
    }
}

/// A ranked passage and its row.
struct Hit {
    rowid: i64,
    passage: Passage,
}

/// A passage from `rowid, document, seq, title, text, uri` columns.
fn passage_row(r: &rusqlite::Row<'_>, score: f64) -> rusqlite::Result<Passage> {
    let document: String = r.get(1)?;
    let seq: i64 = r.get(2)?;
    Ok(Passage {
        id: format!("{document}#{seq}"),
        document,
        title: r.get(3)?,
        uri: r.get(5)?,
        text: r.get(4)?,
        score,
    })
}

/// What is embedded for a passage: its title, then its text.
fn embedding_text(title: &str, text: &str) -> String {
    format!("{title}\n\n{text}")
}

fn passage_title(document_title: &str, heading: Option<&str>) -> String {
    match heading {
        Some(h) if !h.is_empty() => format!("{document_title}{HEADING_SEPARATOR}{h}"),
        _ => document_title.to_owned(),
    }
}

fn generation(conn: &Connection) -> Result<i64, KnowledgeError> {
    conn.query_row(
        "SELECT value FROM kb_meta WHERE key = 'generation'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map(Option::unwrap_or_default)
    .map_err(backend)
}

fn bump_generation(conn: &Connection) -> Result<(), KnowledgeError> {
    conn.execute(
        "INSERT INTO kb_meta (key, value) VALUES ('generation', 1) \
         ON CONFLICT (key) DO UPDATE SET value = value + 1",
        [],
    )
    .map(drop)
    .map_err(backend)
}

fn migrate(conn: &Connection) -> Result<(), OpenError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let fts5: bool =
        conn.query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
            r.get(0)
        })?;
    if !fts5 {
        return Err(OpenError::NoFts5);
    }
    // In-memory databases answer "memory": fine.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema { found: version });
    }
    if version < 1 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS kb_documents (
                 id TEXT PRIMARY KEY,
                 title TEXT NOT NULL,
                 uri TEXT NOT NULL,
                 hash TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS kb_passages (
                 rowid INTEGER PRIMARY KEY,
                 document TEXT NOT NULL REFERENCES kb_documents (id),
                 seq INTEGER NOT NULL,
                 title TEXT NOT NULL,
                 text TEXT NOT NULL,
                 UNIQUE (document, seq)
             );
             CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5 (
                 title, text,
                 content = 'kb_passages', content_rowid = 'rowid',
                 tokenize = 'unicode61 remove_diacritics 2'
             );
             CREATE TRIGGER IF NOT EXISTS kb_passages_ai AFTER INSERT ON kb_passages BEGIN
                 INSERT INTO kb_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
             END;
             CREATE TRIGGER IF NOT EXISTS kb_passages_ad AFTER DELETE ON kb_passages BEGIN
                 INSERT INTO kb_fts (kb_fts, rowid, title, text)
                 VALUES ('delete', old.rowid, old.title, old.text);
             END;
             CREATE TABLE IF NOT EXISTS kb_vectors (
                 passage INTEGER PRIMARY KEY REFERENCES kb_passages (rowid),
                 model TEXT NOT NULL,
                 vector BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS kb_meta (
                 key TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    Ok(())
}

#[async_trait]
impl KnowledgeBase for SqliteKnowledge {
    async fn search(&self, query: &str, k: usize) -> Result<Vec<Passage>, KnowledgeError> {
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let hits = match self.mode {
            SearchMode::Bm25 => self.bm25(query.to_owned(), k).await?,
            SearchMode::Vector => self.vector(query.to_owned(), k).await?,
            SearchMode::Hybrid => {
                let depth = k.saturating_mul(4).max(FUSION_DEPTH);
                let (lexical, semantic) = tokio::join!(
                    self.bm25(query.to_owned(), depth),
                    self.vector(query.to_owned(), depth)
                );
                let lexical = lexical?;
                match semantic {
                    Ok(semantic) => fuse(lexical, semantic, k),
                    Err(e) => {
                        tracing::warn!(error = %e, "vector search failed; using BM25 alone");
                        lexical.into_iter().take(k).collect()
                    }
                }
            }
        };
        Ok(hits.into_iter().take(k).map(|h| h.passage).collect())
    }
}

/// Reciprocal rank fusion of two rankings; the score is the fused score.
fn fuse(lexical: Vec<Hit>, semantic: Vec<Hit>, k: usize) -> Vec<Hit> {
    let ranking = |hits: &[Hit]| hits.iter().map(|h| h.rowid).collect::<Vec<_>>();
    let fused = fusion::reciprocal_rank_fusion(&[ranking(&lexical), ranking(&semantic)], k);
    let mut by_id: HashMap<i64, Hit> = HashMap::new();
    for hit in lexical.into_iter().chain(semantic) {
        by_id.entry(hit.rowid).or_insert(hit);
    }
    fused
        .into_iter()
        .filter_map(|(rowid, score)| {
            by_id.remove(&rowid).map(|mut hit| {
                hit.passage.score = score;
                hit
            })
        })
        .collect()
}

#[async_trait]
impl KnowledgeIngest for SqliteKnowledge {
    async fn upsert_document(&self, document: &NewDocument) -> Result<(), KnowledgeError> {
        if document.id.trim().is_empty() {
            return Err(KnowledgeError::Invalid("empty document id".into()));
        }
        let titles: Vec<String> = document
            .passages
            .iter()
            .map(|p| passage_title(&document.title, p.heading.as_deref()))
            .collect();
        let vectors = match &self.embedder {
            Some(embedder) => {
                let texts: Vec<String> = titles
                    .iter()
                    .zip(&document.passages)
                    .map(|(t, p)| embedding_text(t, &p.text))
                    .collect();
                let vectors = embedder
                    .embed(&texts)
                    .await
                    .map_err(KnowledgeError::unavailable)?;
                Some((embedder.model().to_owned(), vectors))
            }
            None => None,
        };
        let document = document.clone();
        self.blocking(move |db| {
            let tx = db.conn.transaction().map_err(backend)?;
            delete_passages(&tx, &document.id)?;
            tx.execute(
                "INSERT INTO kb_documents (id, title, uri, hash) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, uri = excluded.uri, \
                 hash = excluded.hash",
                params![document.id, document.title, document.uri, document.hash],
            )
            .map_err(backend)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO kb_passages (document, seq, title, text) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(backend)?;
                let mut insert_vector = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO kb_vectors (passage, model, vector) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(backend)?;
                for (seq, (passage, title)) in document.passages.iter().zip(&titles).enumerate() {
                    let rowid = insert
                        .insert(params![document.id, seq as i64, title, passage.text])
                        .map_err(backend)?;
                    if let Some((model, vectors)) = &vectors {
                        if let Some(v) = vectors.get(seq) {
                            insert_vector
                                .execute(params![rowid, model, crate::vectors::to_blob(v)])
                                .map_err(backend)?;
                        }
                    }
                }
            }
            bump_generation(&tx)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn delete_document(&self, id: &str) -> Result<bool, KnowledgeError> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let tx = db.conn.transaction().map_err(backend)?;
            delete_passages(&tx, &id)?;
            let gone = tx
                .execute("DELETE FROM kb_documents WHERE id = ?1", [&id])
                .map_err(backend)?;
            bump_generation(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(gone > 0)
        })
        .await
    }

    async fn documents(&self) -> Result<Vec<DocumentInfo>, KnowledgeError> {
        self.blocking(|db| {
            let mut stmt = db
                .conn
                .prepare(
                    "SELECT d.id, d.title, d.uri, d.hash, \
                     (SELECT count(*) FROM kb_passages p WHERE p.document = d.id) \
                     FROM kb_documents d ORDER BY d.id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(DocumentInfo {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        uri: r.get(2)?,
                        hash: r.get(3)?,
                        passages: usize::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}

/// Deletes a document's passages, their vectors and their index entries.
fn delete_passages(conn: &Connection, id: &str) -> Result<(), KnowledgeError> {
    conn.execute(
        "DELETE FROM kb_vectors WHERE passage IN (SELECT rowid FROM kb_passages WHERE document = ?1)",
        [id],
    )
    .map_err(backend)?;
    conn.execute("DELETE FROM kb_passages WHERE document = ?1", [id])
        .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_is_compiled_in_and_the_schema_applies() {
        let kb = SqliteKnowledge::open_in_memory(None).expect("opens");
        let db = lock(&kb.db);
        let version: i64 = db
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn a_newer_file_is_refused() {
        let temp = tempfile::tempdir().expect("temp dir");
        let path = temp.path().join("kb.db");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch("PRAGMA user_version = 99").expect("set");
        }
        let opened = SqliteKnowledge::open(&path, None).await;
        assert!(matches!(opened, Err(OpenError::NewerSchema { found: 99 })));
    }

    #[test]
    fn vector_modes_need_an_embedder() {
        let kb = SqliteKnowledge::open_in_memory(None).expect("opens");
        assert_eq!(kb.mode(), SearchMode::Bm25);
        assert!(matches!(
            kb.with_mode(SearchMode::Vector),
            Err(OpenError::NoEmbedder("vector"))
        ));
    }
}
