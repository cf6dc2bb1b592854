//! # colloquy-openai
//!
//! An OpenAI-compatible `ChatModel` (work in progress).
