//! Test and benchmark support (feature `testing`): a fake embeddings server, the
//! knowledge port's conformance suite, and retrieval-quality evaluation.

pub mod conformance;
pub mod eval;
pub mod fake;

/// The folder of the test documents and labelled questions shipped with this crate.
#[must_use]
pub fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}
