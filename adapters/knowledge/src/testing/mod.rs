//! Test and benchmark support (feature `testing`): a fake embeddings server and
//! retrieval-quality evaluation. The knowledge ports' contract suite is in
//! colloquy-conformance (`colloquy_conformance::knowledge_contract_tests!`).

pub mod eval;
pub mod fake;

/// The folder of the test documents and labelled questions shipped with this crate.
#[must_use]
pub fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}
