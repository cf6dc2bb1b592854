//! `--webhook`: the site's people are told what happens (a visitor asks for a
//! person, ...) by signed POSTs from the durable outbox in the store; see
//! `colloquy_core::webhooks` and the `colloquy-webhook` crate.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::webhooks::{UnknownEventType, WebhookEventTypes, WebhookOutbox, Webhooks};
use colloquy_webhook::{DeliveryConfig, Format, Target, TargetError};

use crate::duration;

/// The `--webhook-*` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WebhookArgs {
    /// POST the selected events to this URL (repeat the flag, or comma-separate
    /// in the variable, for several receivers). Delivered at least once, from a
    /// durable outbox in the store, by every instance's background task.
    #[arg(
        long = "webhook",
        env = "COLLOQUY_WEBHOOK",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub(crate) webhook: Vec<String>,

    /// The secret each body is signed with (`Colloquy-Signature: t=..,v1=..`,
    /// HMAC-SHA256 of `<t>.<body>`). Required for the colloquy format: the server
    /// refuses to start without it. Prefer the environment variable.
    #[arg(long, env = "COLLOQUY_WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) webhook_secret: Option<String>,

    /// Which events are sent, comma-separated: handoff.requested,
    /// session.created, message.created, responder.changed, handoff.timeout, or
    /// `all`.
    #[arg(long, env = "COLLOQUY_WEBHOOK_EVENTS", default_value = "handoff.requested",
          value_parser = parse_events)]
    pub(crate) webhook_events: WebhookEventTypes,

    /// The body: `colloquy` (the event JSON, signed) or `slack` (`{"text": ...}`
    /// for a Slack incoming webhook; signed too when a secret is set).
    #[arg(long, env = "COLLOQUY_WEBHOOK_FORMAT", value_enum, default_value_t = FormatArg::Colloquy)]
    pub(crate) webhook_format: FormatArg,

    /// Longest one delivery attempt may take before it counts as failed.
    #[arg(long, env = "COLLOQUY_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub(crate) webhook_timeout: Duration,

    /// The first retry's delay; each further one doubles it (with jitter), up to
    /// 15 minutes.
    #[arg(long, env = "COLLOQUY_WEBHOOK_RETRY_BASE", default_value = "1s", value_parser = duration::parse)]
    pub(crate) webhook_retry_base: Duration,

    /// A webhook still undelivered this long after its event is dropped (logged
    /// at error level with its event id, counted in
    /// `colloquy_webhooks_given_up_total`).
    #[arg(long, env = "COLLOQUY_WEBHOOK_GIVE_UP_AFTER", default_value = "24h", value_parser = duration::parse)]
    pub(crate) webhook_give_up_after: Duration,
}

/// `--webhook-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// The event JSON, signed.
    Colloquy,
    /// `{"text": ...}`.
    Slack,
}

fn parse_events(s: &str) -> Result<WebhookEventTypes, UnknownEventType> {
    s.parse()
}

/// Webhook settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookConfigError {
    /// A target is unusable (not http(s), or no secret for the signed format).
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A zero timeout or retry delay.
    #[error("--{0} must be more than 0")]
    Zero(&'static str),
}

/// What the server needs to send webhooks.
pub(crate) struct WebhookSetup {
    /// For the service builder, and the deliverer.
    pub(crate) webhooks: Webhooks,
    /// The receivers.
    pub(crate) targets: Vec<Target>,
    /// The delivery settings.
    pub(crate) delivery: DeliveryConfig,
}

impl WebhookArgs {
    /// `None` without `--webhook`; the setup over `outbox` otherwise.
    ///
    /// # Errors
    /// [`WebhookConfigError`] for unusable settings.
    pub(crate) fn setup(
        &self,
        outbox: Arc<dyn WebhookOutbox>,
    ) -> Result<Option<WebhookSetup>, WebhookConfigError> {
        if self.webhook.is_empty() {
            return Ok(None);
        }
        for (name, value) in [
            ("webhook-timeout", self.webhook_timeout),
            ("webhook-retry-base", self.webhook_retry_base),
            ("webhook-give-up-after", self.webhook_give_up_after),
        ] {
            if value.is_zero() {
                return Err(WebhookConfigError::Zero(name));
            }
        }
        let format = match self.webhook_format {
            FormatArg::Colloquy => Format::Colloquy,
            FormatArg::Slack => Format::Slack,
        };
        let mut urls: Vec<String> = Vec::new();
        for url in self.webhook.iter().map(|u| u.trim().to_owned()) {
            if !url.is_empty() && !urls.contains(&url) {
                urls.push(url);
            }
        }
        let targets = urls
            .iter()
            .map(|url| Target::new(url.clone(), format, self.webhook_secret.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let delivery = DeliveryConfig {
            timeout: self.webhook_timeout,
            // Longer than an attempt (with margin), so no entry is sent twice while
            // its POST is in flight; a dead instance's entries are due after it.
            lease: (self.webhook_timeout * 3).max(Duration::from_secs(30)),
            backoff_base: self.webhook_retry_base,
            backoff_max: Duration::from_secs(15 * 60).max(self.webhook_retry_base),
            give_up_after: self.webhook_give_up_after,
            ..DeliveryConfig::default()
        };
        Ok(Some(WebhookSetup {
            webhooks: Webhooks::new(outbox, urls, self.webhook_events),
            targets,
            delivery,
        }))
    }
}
