//! # colloquy-bench
//!
//! Reproducible benchmarks for Colloquy (stub, being written).
