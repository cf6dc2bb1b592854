//! `--model openai`: the settings of the OpenAI-compatible model, as `--openai-*`
//! flags and `COLLOQUY_OPENAI_*` variables.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{ArgAction, Args};
use colloquy_openai::{ConfigError, OpenAiConfig, OpenAiModel, RetryPolicy, Timeouts};

use crate::duration;
use crate::redact::redact;

/// The API root. `Display` and `Debug` hide a password in it
/// (`http://user:***@host/v1`): it is printed at start-up and in errors.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl(String);

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({:?})", redact(&self.0))
    }
}

impl FromStr for BaseUrl {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The API key: never shown by `Debug` (the whole command line is `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// An extra header, `NAME:VALUE`; its value is never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Header {
    name: String,
    value: String,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <redacted>", self.name)
    }
}

/// A `--openai-header` value without a colon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected NAME:VALUE")]
pub(crate) struct HeaderError;

impl FromStr for Header {
    type Err = HeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s.split_once(':').ok_or(HeaderError)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(HeaderError);
        }
        Ok(Self {
            name: name.to_owned(),
            value: value.trim().to_owned(),
        })
    }
}

/// Settings of `--model openai`: any OpenAI-compatible Chat Completions server
/// (OpenAI, Ollama, vLLM, llama.cpp server, LM Studio, LiteLLM, ...).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "OpenAI-compatible model (--model openai)")]
pub(crate) struct OpenAiArgs {
    /// API root of the server; `/chat/completions` is appended. Ollama:
    /// `http://localhost:11434/v1`, vLLM: `http://localhost:8000/v1`, llama.cpp:
    /// `http://localhost:8080/v1`, LM Studio: `http://localhost:1234/v1`, LiteLLM:
    /// `http://localhost:4000/v1`.
    #[arg(
        long = "openai-base-url",
        env = "COLLOQUY_OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub(crate) base_url: BaseUrl,

    /// API key, sent as `Authorization: Bearer <key>`; local servers need none.
    /// Prefer the environment (COLLOQUY_OPENAI_API_KEY, else OPENAI_API_KEY) to the flag,
    /// which other users of the machine can see.
    #[arg(
        long = "openai-api-key",
        env = "COLLOQUY_OPENAI_API_KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<ApiKey>,

    /// Model name, as the server knows it.
    #[arg(
        long = "openai-model",
        env = "COLLOQUY_OPENAI_MODEL",
        default_value = "gpt-4o-mini"
    )]
    pub(crate) model_name: String,

    /// Sampling temperature (the server's default when unset).
    #[arg(long = "openai-temperature", env = "COLLOQUY_OPENAI_TEMPERATURE")]
    pub(crate) temperature: Option<f32>,

    /// Most tokens in an answer, passed to the model as `max_tokens` (the server's
    /// default when unset). Also bounds how far a token budget can be overshot.
    #[arg(
        long = "max-answer-tokens",
        visible_alias = "openai-max-tokens",
        env = "COLLOQUY_MAX_ANSWER_TOKENS"
    )]
    pub(crate) max_tokens: Option<u32>,

    /// System prompt, sent first, ahead of the session's own messages.
    #[arg(long = "openai-system-prompt", env = "COLLOQUY_OPENAI_SYSTEM_PROMPT")]
    pub(crate) system_prompt: Option<String>,

    /// Extra request header NAME:VALUE (repeat the flag; in the variable, one per line).
    #[arg(
        long = "openai-header",
        env = "COLLOQUY_OPENAI_HEADERS",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub(crate) headers: Vec<Header>,

    /// Ask streamed answers to report token usage (`stream_options.include_usage`);
    /// set to false for a server that rejects `stream_options`.
    #[arg(long = "openai-include-usage", env = "COLLOQUY_OPENAI_INCLUDE_USAGE", default_value_t = true, action = ArgAction::Set)]
    pub(crate) include_usage: bool,

    /// Deadline for opening the connection.
    #[arg(long = "openai-connect-timeout", env = "COLLOQUY_OPENAI_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub(crate) connect_timeout: Duration,

    /// Deadline for the first chunk of a streamed answer, or a whole non-streamed one.
    #[arg(long = "openai-first-chunk-timeout", env = "COLLOQUY_OPENAI_FIRST_CHUNK_TIMEOUT", default_value = "60s", value_parser = duration::parse)]
    pub(crate) first_chunk_timeout: Duration,

    /// Longest silence between two chunks of a streamed answer.
    #[arg(long = "openai-chunk-timeout", env = "COLLOQUY_OPENAI_CHUNK_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    pub(crate) chunk_timeout: Duration,

    /// Deadline for a whole answer, retries included.
    #[arg(long = "openai-total-timeout", env = "COLLOQUY_OPENAI_TOTAL_TIMEOUT", default_value = "5m", value_parser = duration::parse)]
    pub(crate) total_timeout: Duration,

    /// Attempts per answer (1 = no retries). Only connection failures, 429 and 5xx
    /// are retried, and only before the first chunk.
    #[arg(long = "openai-max-attempts", env = "COLLOQUY_OPENAI_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = RangedU64ValueParser::<u32>::new().range(1..=20))]
    pub(crate) max_attempts: u32,

    /// Delay before the first retry; doubles for each later one (with jitter).
    #[arg(long = "openai-backoff", env = "COLLOQUY_OPENAI_BACKOFF", default_value = "250ms", value_parser = duration::parse)]
    pub(crate) backoff: Duration,

    /// Longest delay between retries.
    #[arg(long = "openai-max-backoff", env = "COLLOQUY_OPENAI_MAX_BACKOFF", default_value = "4s", value_parser = duration::parse)]
    pub(crate) max_backoff: Duration,

    /// Longest `Retry-After` honoured; a 429 asking for more is not retried.
    #[arg(long = "openai-max-retry-after", env = "COLLOQUY_OPENAI_MAX_RETRY_AFTER", default_value = "30s", value_parser = duration::parse)]
    pub(crate) max_retry_after: Duration,
}

impl OpenAiArgs {
    /// The adapter's configuration; the key falls back to `OPENAI_API_KEY`.
    pub(crate) fn config(&self) -> OpenAiConfig {
        let api_key = self
            .api_key
            .as_ref()
            .map(|k| k.0.clone())
            .or_else(|| std::env::var("OPENAI_API_KEY").ok())
            .filter(|k| !k.trim().is_empty());
        OpenAiConfig {
            base_url: self.base_url.0.clone(),
            api_key,
            model: self.model_name.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            system_prompt: self.system_prompt.clone().filter(|p| !p.is_empty()),
            extra_headers: self
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            include_usage: self.include_usage,
            timeouts: Timeouts {
                connect: self.connect_timeout,
                first_chunk: self.first_chunk_timeout,
                between_chunks: self.chunk_timeout,
                total: self.total_timeout,
            },
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                base_backoff: self.backoff,
                max_backoff: self.max_backoff,
                max_retry_after: self.max_retry_after,
                ..RetryPolicy::default()
            },
        }
    }
}

impl OpenAiArgs {
    /// The model, logged with its URL (password hidden); an invalid base URL is an
    /// error that shows it with the password hidden too.
    pub(crate) fn build(&self) -> Result<OpenAiModel, ConfigError> {
        let model = OpenAiModel::new(self.config()).map_err(|e| match e {
            ConfigError::BaseUrl { url, reason } => ConfigError::BaseUrl {
                url: redact(&url),
                reason,
            },
            other => other,
        })?;
        tracing::info!(
            url = %redact(model.url().as_str()),
            model = %model.config().model,
            "OpenAI-compatible model"
        );
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        openai: OpenAiArgs,
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("colloquy").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn defaults_are_the_adapters() {
        let config = parse(&[]).openai.config();
        let defaults = OpenAiConfig::default();
        assert_eq!(
            OpenAiConfig {
                api_key: None,
                ..config
            },
            defaults
        );
    }

    #[test]
    fn flags_reach_the_config_and_secrets_stay_hidden() {
        let cli = parse(&[
            "--openai-base-url",
            "http://localhost:11434/v1",
            "--openai-api-key",
            "sk-secret",
            "--openai-model",
            "llama3.2",
            "--openai-temperature",
            "0.3",
            "--openai-max-tokens",
            "256",
            "--openai-system-prompt",
            "Be brief.",
            "--openai-header",
            "X-Team: blue",
            "--openai-include-usage",
            "false",
            "--openai-first-chunk-timeout",
            "2m",
            "--openai-max-attempts",
            "1",
        ]);
        assert!(!format!("{cli:?}").contains("sk-secret"));
        assert!(!format!("{cli:?}").contains("blue"));
        let config = cli.openai.config();
        assert_eq!(config.base_url, "http://localhost:11434/v1");
        assert_eq!(config.api_key.as_deref(), Some("sk-secret"));
        assert_eq!(config.model, "llama3.2");
        assert_eq!(config.temperature, Some(0.3));
        assert_eq!(config.max_tokens, Some(256));
        assert_eq!(config.system_prompt.as_deref(), Some("Be brief."));
        assert_eq!(
            config.extra_headers,
            [("X-Team".to_owned(), "blue".to_owned())]
        );
        assert!(!config.include_usage);
        assert_eq!(config.timeouts.first_chunk, Duration::from_secs(120));
        assert_eq!(config.retry.max_attempts, 1);
    }

    #[test]
    fn a_password_in_the_base_url_is_never_shown() {
        let cli = parse(&["--openai-base-url", "http://me:hunter2@127.0.0.1:1/v1"]);
        assert!(!format!("{cli:?}").contains("hunter2"));
        assert_eq!(
            cli.openai.base_url.to_string(),
            "http://me:***@127.0.0.1:1/v1"
        );
        assert_eq!(
            cli.openai.config().base_url,
            "http://me:hunter2@127.0.0.1:1/v1"
        );
        cli.openai.build().expect("a valid URL");

        let cli = parse(&["--openai-base-url", "ftp://me:hunter2@host/v1"]);
        let e = cli.openai.build().expect_err("not http");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("ftp://me:***@host"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--openai-header", "no colon"][..],
            &["--openai-max-attempts", "0"],
            &["--openai-temperature", "warm"],
            &["--openai-chunk-timeout", "soon"],
        ] {
            let all = std::iter::once("colloquy").chain(args.iter().copied());
            assert!(Cli::try_parse_from(all).is_err(), "{args:?}");
        }
    }
}
