//! # colloquy-conformance
//!
//! The reusable contract suite for Colloquy store adapters (being written).

mod harness;

pub use harness::{service_missing, services_required, TestStore, REQUIRE_SERVICES_ENV};
