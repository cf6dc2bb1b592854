//! The `colloquy-ceiling` server (being written).
fn main() {}
