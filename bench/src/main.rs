//! The `colloquy-bench` orchestrator (being written).
fn main() {}
