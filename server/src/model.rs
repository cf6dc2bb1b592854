//! `--model`: which language model answers.
//!
//! Like `--store`, a short spec string parsed into [`ModelSpec`] and built by
//! [`ModelSpec::build`]; a new model adapter adds a variant, its syntax, and its arm.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ports::ChatModel;
use colloquy_core::EchoModel;

use crate::openai::OpenAiArgs;

/// The spec forms `--model` accepts, for help and error messages.
pub(crate) const SUPPORTED: &str = "echo, openai";

/// A parsed `--model` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModelSpec {
    /// `echo`: answers `Echo: <message>`, streamed word by word.
    Echo,
    /// `openai`: an OpenAI-compatible server, set up by the `--openai-*` flags.
    OpenAi,
}

/// A `--model` value that names no supported model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model {spec:?}; supported: {SUPPORTED}")]
pub(crate) struct ModelSpecError {
    spec: String,
}

impl FromStr for ModelSpec {
    type Err = ModelSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.trim() {
            "echo" => Ok(Self::Echo),
            "openai" => Ok(Self::OpenAi),
            _ => Err(ModelSpecError {
                spec: spec.to_owned(),
            }),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo => f.write_str("echo"),
            Self::OpenAi => f.write_str("openai"),
        }
    }
}

/// A model that could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BuildModelError {
    /// An `--openai-*` setting cannot be used.
    #[error(transparent)]
    OpenAi(#[from] colloquy_openai::ConfigError),
}

impl ModelSpec {
    /// Builds the model; `openai` holds the `--openai-*` settings, `echo_chunk_delay`
    /// the echo model's pause before each streamed chunk.
    pub(crate) fn build(
        &self,
        openai: &OpenAiArgs,
        echo_chunk_delay: Duration,
    ) -> Result<Arc<dyn ChatModel>, BuildModelError> {
        match self {
            Self::Echo => Ok(Arc::new(EchoModel::with_chunk_delay(echo_chunk_delay))),
            Self::OpenAi => Ok(Arc::new(openai.build()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_echo_and_explains_unknown_models() {
        assert_eq!("echo".parse(), Ok(ModelSpec::Echo));
        assert_eq!(ModelSpec::Echo.to_string(), "echo");
        assert_eq!("openai".parse(), Ok(ModelSpec::OpenAi));
        assert_eq!(ModelSpec::OpenAi.to_string(), "openai");
        let e = "gpt".parse::<ModelSpec>().expect_err("unknown");
        assert!(e.to_string().contains(SUPPORTED));
    }
}
