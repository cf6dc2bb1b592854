//! Ingestion: files and folders of Markdown, plain text and HTML into any
//! [`KnowledgeIngest`], skipping files whose content has not changed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use colloquy_core::{KnowledgeError, KnowledgeIngest, NewDocument};
use sha2::{Digest, Sha256};

use crate::html::html_to_text;
use crate::split::{split_markdown, split_plain, Split, SplitConfig};

/// A format ingestion reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.md`, `.markdown`, `.mdx`: sections on headings.
    Markdown,
    /// `.txt`, `.text`: paragraphs.
    Text,
    /// `.html`, `.htm`: tags stripped, headings kept.
    Html,
}

impl Format {
    /// The format of a file, by its extension (case-insensitive).
    #[must_use]
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" | "mdx" => Some(Self::Markdown),
            "txt" | "text" => Some(Self::Text),
            "html" | "htm" | "xhtml" => Some(Self::Html),
            _ => None,
        }
    }
}

/// Settings of an ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestOptions {
    /// How documents are cut into passages.
    pub split: SplitConfig,
    /// Documents' URIs: this URL followed by the file's path below the folder given
    /// (`https://acme.example/docs/` + `pricing.md`). Without it, the URI is the
    /// document id (the path as walked).
    pub base_url: Option<String>,
    /// Remove stored documents that were under a given folder but whose file is gone.
    pub prune: bool,
}

/// Why ingestion stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A path given does not exist or cannot be read.
    #[error("cannot read {path}")]
    Path {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The knowledge base failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
}

/// One file to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its document id: the path as walked, with `/` separators.
    pub id: String,
    /// Its path below the folder given (its name, for a file given directly).
    pub relative: String,
    /// How to read it.
    pub format: Format,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new document, with this many passages.
    Added(usize),
    /// A changed document, now with this many passages.
    Updated(usize),
    /// The content hash is the one stored: nothing done.
    Unchanged,
    /// The document's file is gone (`prune`): removed.
    Removed,
    /// Not ingested, and why.
    Failed(String),
}

/// Progress of an ingestion, one event per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress<'a> {
    /// 1-based position of this file.
    pub index: usize,
    /// Files in all.
    pub total: usize,
    /// The document id.
    pub id: &'a str,
    /// What happened.
    pub outcome: &'a Outcome,
}

/// Totals of an ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Files found.
    pub files: usize,
    /// New documents.
    pub added: usize,
    /// Changed documents.
    pub updated: usize,
    /// Unchanged documents, skipped.
    pub unchanged: usize,
    /// Documents removed (`prune`).
    pub removed: usize,
    /// Files that could not be ingested, and why.
    pub failed: Vec<(String, String)>,
    /// Passages written (added and updated documents).
    pub passages: usize,
    /// Time spent.
    pub elapsed: Duration,
}

/// The document id of a path: its components joined by `/`, without a leading `./`.
fn path_id(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let joined = parts.join("/");
    joined
        .strip_prefix("//")
        .map_or(joined.clone(), |j| format!("/{j}"))
}

/// The supported files under `roots`, in path order: folders are walked
/// recursively (hidden entries and symbolic links to folders skipped, files of other
/// formats ignored); a file given directly is read as text when its extension is not
/// a known one.
///
/// # Errors
/// [`IngestError::Path`] when a root cannot be read.
pub fn collect(roots: &[PathBuf]) -> Result<Vec<SourceFile>, IngestError> {
    let mut files = Vec::new();
    for root in roots {
        let meta = std::fs::metadata(root).map_err(|source| IngestError::Path {
            path: root.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(root, root, &mut files)?;
        } else {
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push(SourceFile {
                path: root.clone(),
                id: path_id(root),
                relative: name,
                format: Format::of(root).unwrap_or(Format::Text),
            });
        }
    }
    files.sort_by(|a, b| a.id.cmp(&b.id));
    files.dedup_by(|a, b| a.id == b.id);
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<SourceFile>) -> Result<(), IngestError> {
    let read = |source| IngestError::Path {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(read)?
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(read)?;
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if let Some(format) = Format::of(&path) {
            if kind.is_symlink() && !path.is_file() {
                continue;
            }
            let relative = path.strip_prefix(root).map(path_id).unwrap_or_default();
            files.push(SourceFile {
                id: path_id(&path),
                path,
                relative,
                format,
            });
        }
    }
    Ok(())
}

/// Bumped when reading or splitting changes, so every file is ingested again.
const PIPELINE_VERSION: &str = "colloquy-ingest-1";

/// Reads and splits one file into a document.
///
/// # Errors
/// The file cannot be read or is not UTF-8 (the message says which).
pub fn load(file: &SourceFile, options: &IngestOptions) -> Result<NewDocument, String> {
    let bytes = std::fs::read(&file.path).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let uri = match &options.base_url {
        Some(base) => format!(
            "{}/{}",
            base.trim_end_matches('/'),
            file.relative.trim_start_matches('/')
        ),
        None => file.id.clone(),
    };
    let mut hasher = Sha256::new();
    for part in [
        PIPELINE_VERSION,
        &format!("{:?}", options.split),
        &uri,
        &text,
    ] {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (html_title, split) = match file.format {
        Format::Markdown => (None, split_markdown(&text, &options.split)),
        Format::Text => (None, split_plain(&text, &options.split)),
        Format::Html => {
            let page = html_to_text(&text);
            (page.title, split_markdown(&page.markdown, &options.split))
        }
    };
    let Split { title, passages } = split;
    let stem = file
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.id.clone());
    Ok(NewDocument {
        id: file.id.clone(),
        title: html_title.or(title).unwrap_or(stem),
        uri,
        hash,
        passages,
    })
}

/// Ingests `roots` into `store`: every supported file whose content hash differs
/// from the stored document's is stored again (its passages replaced); unchanged
/// files are skipped; with `prune`, documents under a given folder whose file is
/// gone are removed. A file that cannot be read is reported and the rest go on.
///
/// # Errors
/// A root that cannot be read, or a knowledge base failure (which stops the run).
pub async fn ingest(
    store: &dyn KnowledgeIngest,
    roots: &[PathBuf],
    options: &IngestOptions,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Summary, IngestError> {
    let started = Instant::now();
    let files = collect(roots)?;
    let stored: std::collections::HashMap<String, String> = store
        .documents()
        .await?
        .into_iter()
        .map(|d| (d.id, d.hash))
        .collect();
    let prefixes: Vec<String> = roots
        .iter()
        .filter(|r| r.is_dir())
        .map(|r| {
            let id = path_id(r);
            if id.is_empty() || id.ends_with('/') {
                id
            } else {
                format!("{id}/")
            }
        })
        .collect();
    let gone: Vec<String> = if options.prune {
        stored
            .keys()
            .filter(|id| prefixes.iter().any(|p| id.starts_with(p.as_str())))
            .filter(|id| !files.iter().any(|f| &f.id == *id))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let total = files.len() + gone.len();
    let mut summary = Summary {
        files: files.len(),
        ..Summary::default()
    };
    for (n, file) in files.iter().enumerate() {
        let outcome = match load(file, options) {
            Err(why) => Outcome::Failed(why),
            Ok(doc) if stored.get(&doc.id) == Some(&doc.hash) => Outcome::Unchanged,
            Ok(doc) => {
                store.upsert_document(&doc).await?;
                if stored.contains_key(&doc.id) {
                    Outcome::Updated(doc.passages.len())
                } else {
                    Outcome::Added(doc.passages.len())
                }
            }
        };
        match &outcome {
            Outcome::Added(p) => {
                summary.added += 1;
                summary.passages += p;
            }
            Outcome::Updated(p) => {
                summary.updated += 1;
                summary.passages += p;
            }
            Outcome::Unchanged => summary.unchanged += 1,
            Outcome::Removed => summary.removed += 1,
            Outcome::Failed(why) => summary.failed.push((file.id.clone(), why.clone())),
        }
        progress(Progress {
            index: n + 1,
            total,
            id: &file.id,
            outcome: &outcome,
        });
    }
    let mut gone = gone;
    gone.sort();
    for (n, id) in gone.iter().enumerate() {
        store.delete_document(id).await?;
        summary.removed += 1;
        progress(Progress {
            index: files.len() + n + 1,
            total,
            id,
            outcome: &Outcome::Removed,
        });
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_slash_paths_without_dot_prefix() {
        assert_eq!(path_id(Path::new("./docs/a.md")), "docs/a.md");
        assert_eq!(path_id(Path::new("docs//sub/b.md")), "docs/sub/b.md");
        assert_eq!(path_id(Path::new("/abs/c.md")), "/abs/c.md");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a.MD")), Some(Format::Markdown));
        assert_eq!(Format::of(Path::new("a.htm")), Some(Format::Html));
        assert_eq!(Format::of(Path::new("a.txt")), Some(Format::Text));
        assert_eq!(Format::of(Path::new("a.png")), None);
        assert_eq!(Format::of(Path::new("Makefile")), None);
    }
}
