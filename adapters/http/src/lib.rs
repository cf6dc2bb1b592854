//! HTTP/SSE transport for Colloquy (being written).
