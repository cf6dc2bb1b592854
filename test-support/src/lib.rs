//! Shared by Colloquy's test suites (a dev-dependency, never published): whether a
//! missing service fails or skips a test, free ports and children that own them, one
//! server-sent-events parser, and throwaway PostgreSQL databases and clusters.
//!
//! Temporary directories come from the `tempfile` crate.

pub mod net;
pub mod postgres;
pub mod sse;

/// How long a test waits for anything unless it says otherwise.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a missing service (Redis, PostgreSQL, a browser, ...) fails the test
/// instead of skipping it: `COLLOQUY_REQUIRE_SERVICES=1` (or `true`), as in CI. The
/// rule lives once, in the conformance suite, which outside adapters use too.
pub use colloquy_conformance::services_required;

/// Says why a test skips (and returns true) when `service` is missing locally;
/// panics instead when [`services_required`].
pub fn skip_missing(service: &str, why: &dyn std::fmt::Display) -> bool {
    assert!(
        !services_required(),
        "{service} is required (COLLOQUY_REQUIRE_SERVICES=1) but not reachable: {why}"
    );
    eprintln!(
        "SKIPPED: {service} is not reachable ({why}); set COLLOQUY_REQUIRE_SERVICES=1 to fail instead"
    );
    true
}

/// A name part no other test run uses: `tag`, the process id and a random suffix.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
