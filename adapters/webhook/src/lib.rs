//! # colloquy-webhook
//!
//! Delivers the webhooks a [`ChatService`](colloquy_core::ChatService) enqueued
//! in its durable outbox ([`colloquy_core::webhooks`]): signed JSON POSTs, one
//! background task per instance, never on a request's path.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use colloquy_core::webhooks::{LocalWebhookOutbox, WebhookEventTypes, Webhooks};
//! # use colloquy_core::SystemClock;
//! use colloquy_webhook::{DeliveryConfig, Deliverer, Format, Target};
//! # async fn demo() -> Result<(), colloquy_webhook::TargetError> {
//! let outbox = Arc::new(LocalWebhookOutbox::new(Arc::new(SystemClock)));
//! let url = "https://example.com/hooks/colloquy".to_owned();
//! let webhooks = Webhooks::new(outbox, vec![url.clone()], WebhookEventTypes::default());
//! // ChatService::builder(..).webhooks(webhooks.clone()) ...
//! let target = Target::new(url, Format::Colloquy, Some("s3cret".into()))?;
//! let deliverer = Deliverer::spawn(webhooks, vec![target], DeliveryConfig::default());
//! // ... at shutdown:
//! deliverer.stop().await;
//! # Ok(()) }
//! ```
//!
//! ## The request
//!
//! `POST <url>` with `Content-Type: application/json`, the event's body
//! ([`WebhookEvent`](colloquy_core::webhooks::WebhookEvent)), and
//! - `Colloquy-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//!   keyed with the target's secret (Stripe's scheme; [`sign`], [`verify`]);
//! - `Colloquy-Event-Id: <event uuid>` (the body's `id`: deduplicate by it);
//! - `Colloquy-Event-Type: <type>`.
//!
//! [`Format::Slack`] sends `{"text": "..."}` instead (a Slack incoming webhook
//! accepts it as is), unsigned unless a secret is set.
//!
//! ## Retries
//!
//! A 2xx answer delivers the entry. Anything else (another status, a refused
//! connection, no answer within [`DeliveryConfig::timeout`]) is retried after
//! an exponential backoff with full jitter ([`backoff`]), until the entry is
//! [`DeliveryConfig::give_up_after`] old: then it is dropped, logged with its
//! event id and counted in [`DeliveryMetrics::given_up`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use colloquy_core::webhooks::{ClaimedEntry, Webhooks};
use hmac::{KeyInit, Mac};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type HmacSha256 = hmac::Hmac<sha2_011::Sha256>;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Colloquy-Signature";
/// The event id header.
pub const EVENT_ID_HEADER: &str = "Colloquy-Event-Id";
/// The event type header.
pub const EVENT_TYPE_HEADER: &str = "Colloquy-Event-Type";
/// How far a signature's `t` may be from the receiver's clock by default, in
/// either direction, before [`verify`] rejects it as a replay.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The lowercase hex of HMAC-SHA256(`secret`, `"<t>.<body>"`).
#[must_use]
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The `Colloquy-Signature` header value of `body` sent at `t` (unix seconds).
#[must_use]
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

/// Why [`verify`] rejected a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<digits>,v1=<hex>[,v1=...]`.
    #[error("malformed Colloquy-Signature header")]
    Malformed,
    /// `t` is further from now than the tolerance: a replay, or a skewed clock.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` matches the body and the secret.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks a `Colloquy-Signature` header as a receiver should: `t` within
/// `tolerance` of `now` (unix seconds), and one `v1` equal, compared in
/// constant time, to the HMAC of `"<t>.<body>"`. The body must be the raw bytes
/// received, not re-serialized JSON.
///
/// # Errors
/// [`VerifyError`] saying why.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    use subtle::ConstantTimeEq;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() => {
                t = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed)?);
            }
            Some(("v1", v)) => candidates.push(v.to_owned()),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.abs_diff(t) > tolerance.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let expected = signature(secret, t, body);
    let matched = candidates.iter().fold(0u8, |acc, c| {
        acc | c.as_bytes().ct_eq(expected.as_bytes()).unwrap_u8()
    });
    if matched == 1 {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The body format of a target (`--webhook-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The event JSON, signed.
    #[default]
    Colloquy,
    /// `{"text": "..."}`, for a Slack (or Mattermost, Discord `/slack`)
    /// incoming webhook.
    Slack,
}

/// A target that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The URL is not `http://` or `https://` with a host.
    #[error("webhook URL {0:?} is not an http(s) URL with a host")]
    Url(String),
    /// The `colloquy` format is signed: it needs a secret.
    #[error("webhook {0:?} uses the colloquy format, which is signed: set --webhook-secret")]
    NoSecret(String),
}

/// One receiver: its URL (as configured: the outbox names targets by it), body
/// format and signing secret.
#[derive(Clone)]
pub struct Target {
    url: String,
    format: Format,
    secret: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &redact_url(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The URL without its query and user info (Slack's secret is its path; the
/// path is kept short): for logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid url>".to_owned(),
    }
}

impl Target {
    /// A target; the `colloquy` format needs a secret.
    ///
    /// # Errors
    /// [`TargetError`] for a URL that is not http(s), or a missing secret.
    pub fn new(url: String, format: Format, secret: Option<String>) -> Result<Self, TargetError> {
        let parsed = reqwest::Url::parse(&url).map_err(|_| TargetError::Url(redact_url(&url)))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(TargetError::Url(redact_url(&url)));
        }
        let secret = secret.filter(|s| !s.is_empty());
        if format == Format::Colloquy && secret.is_none() {
            return Err(TargetError::NoSecret(redact_url(&url)));
        }
        Ok(Self {
            url,
            format,
            secret: secret.map(|s| Arc::from(s.into_bytes())),
        })
    }

    /// The URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The delivery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Longest one POST may take (connect, send, answer).
    pub timeout: Duration,
    /// How long a claim hides its entries from other instances; longer than
    /// `timeout`, so an entry is not sent twice while its POST is in flight.
    pub lease: Duration,
    /// Entries claimed at once (and POSTed concurrently).
    pub batch: usize,
    /// How often the outbox is polled for entries other instances enqueued (or
    /// whose retry fell due); this instance's own are sent at once.
    pub poll: Duration,
    /// First retry delay; doubled for each further attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// An entry this old (since enqueued) is given up after its failed attempt.
    pub give_up_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            batch: 16,
            poll: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15 * 60),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The delay before retrying after failed attempt number `attempt` (1-based):
/// a uniformly random time in `[d/2, d]` where `d = min(base · 2^(attempt-1),
/// max)` ("equal jitter": instances retrying one receiver spread out, and no
/// retry comes sooner than half the exponential delay).
#[must_use]
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    let d = base.saturating_mul(exp).min(max);
    let random =
        (uuid::Uuid::new_v4().as_u128() & u128::from(u32::MAX)) as f64 / f64::from(u32::MAX);
    d / 2 + d.mul_f64(random / 2.0)
}

/// Counters of one deliverer (the server exports them as Prometheus series).
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    /// Entries delivered (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed (each retried or given up).
    pub failed: AtomicU64,
    /// Entries given up after [`DeliveryConfig::give_up_after`].
    pub given_up: AtomicU64,
    /// Entries in the outbox at the last count (all instances').
    pub pending: AtomicU64,
}

impl DeliveryMetrics {
    /// The series in the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP colloquy_webhooks_delivered_total Webhook deliveries answered 2xx.\n# TYPE colloquy_webhooks_delivered_total counter\ncolloquy_webhooks_delivered_total {}\n\
             # HELP colloquy_webhooks_failed_total Webhook attempts that failed (retried later, or given up).\n# TYPE colloquy_webhooks_failed_total counter\ncolloquy_webhooks_failed_total {}\n\
             # HELP colloquy_webhooks_given_up_total Webhooks dropped undelivered after the give-up time.\n# TYPE colloquy_webhooks_given_up_total counter\ncolloquy_webhooks_given_up_total {}\n\
             # HELP colloquy_webhooks_pending Webhook deliveries waiting in the outbox (every instance's).\n# TYPE colloquy_webhooks_pending gauge\ncolloquy_webhooks_pending {}\n",
            get(&self.delivered),
            get(&self.failed),
            get(&self.given_up),
            get(&self.pending),
        )
    }
}

/// The running deliverer; [`Deliverer::stop`] ends it.
#[derive(Debug)]
pub struct Deliverer {
    stop: CancellationToken,
    task: JoinHandle<()>,
    metrics: Arc<DeliveryMetrics>,
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    Failed(String),
}

struct Worker {
    webhooks: Webhooks,
    targets: HashMap<String, Target>,
    config: DeliveryConfig,
    client: reqwest::Client,
    metrics: Arc<DeliveryMetrics>,
    stop: CancellationToken,
}

impl Deliverer {
    /// Starts delivering `webhooks`' outbox to `targets` in a background task.
    #[must_use]
    pub fn spawn(webhooks: Webhooks, targets: Vec<Target>, config: DeliveryConfig) -> Self {
        let stop = CancellationToken::new();
        let metrics = Arc::new(DeliveryMetrics::default());
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("colloquy-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let worker = Worker {
            webhooks,
            targets: targets.into_iter().map(|t| (t.url.clone(), t)).collect(),
            config,
            client,
            metrics: Arc::clone(&metrics),
            stop: stop.clone(),
        };
        let task = tokio::spawn(worker.run());
        Self {
            stop,
            task,
            metrics,
        }
    }

    /// The deliverer's counters.
    #[must_use]
    pub fn metrics(&self) -> &Arc<DeliveryMetrics> {
        &self.metrics
    }

    /// Stops claiming, lets the POSTs in flight finish (each within the
    /// timeout), records their outcome, and returns. Entries still claimed by a
    /// POST cut short are due again after their lease, on any instance.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the webhook deliverer ended abnormally");
        }
    }
}

impl Worker {
    async fn run(self) {
        let mut idle_polls = 0u32;
        while !self.stop.is_cancelled() {
            if self.webhooks.spilled() > 0 {
                match self.webhooks.flush_spilled().await {
                    Ok(n) => tracing::info!(
                        entries = n,
                        "webhooks kept during an outage are in the outbox now"
                    ),
                    Err(e) => {
                        tracing::debug!(error = %e, "the outbox still refuses the webhooks kept in memory")
                    }
                }
            }
            let claimed = match self
                .webhooks
                .outbox()
                .claim(self.config.batch, self.config.lease)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim webhooks; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                idle_polls = idle_polls.wrapping_add(1);
                if idle_polls % 10 == 1 {
                    self.count_pending().await;
                }
                tokio::select! {
                    () = self.stop.cancelled() => break,
                    () = self.webhooks.enqueued() => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                }
                continue;
            }
            let full = claimed.len() >= self.config.batch;
            futures_join_all(claimed.into_iter().map(|c| self.handle(c))).await;
            self.count_pending().await;
            if !full {
                // Nothing more due now, most likely: wait for the doorbell or the poll.
                tokio::select! {
                    () = self.stop.cancelled() => break,
                    () = self.webhooks.enqueued() => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    async fn count_pending(&self) {
        if let Ok(n) = self.webhooks.outbox().pending().await {
            self.metrics.pending.store(n, Ordering::Relaxed);
        }
    }

    async fn handle(&self, claimed: ClaimedEntry) {
        let entry = &claimed.entry;
        let outcome = match self.targets.get(&entry.target) {
            Some(target) => self.post(target, &claimed).await,
            // Another instance (a rolling deploy with new flags) may know it: leave
            // it to that one, retried like a failure, given up only when too old.
            None => Outcome::Failed("the target is not configured on this instance".to_owned()),
        };
        let outbox = self.webhooks.outbox();
        match outcome {
            Outcome::Delivered => {
                self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(event = %entry.event_id, r#type = %entry.event_type, attempt = claimed.attempt, "webhook delivered");
                if let Err(e) = outbox.finish(&claimed).await {
                    tracing::warn!(error = %e, event = %entry.event_id, "webhook delivered but not removed from the outbox; it may be sent again");
                }
            }
            Outcome::Failed(why) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                let age = (Utc::now() - entry.created_at).to_std().unwrap_or_default();
                if age >= self.config.give_up_after {
                    self.metrics.given_up.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(event = %entry.event_id, r#type = %entry.event_type, attempt = claimed.attempt, target = %redact_url(&entry.target), reason = %why, "webhook given up");
                    if let Err(e) = outbox.finish(&claimed).await {
                        tracing::warn!(error = %e, event = %entry.event_id, "could not drop a given-up webhook");
                    }
                    return;
                }
                let delay = backoff(
                    self.config.backoff_base,
                    self.config.backoff_max,
                    claimed.attempt,
                );
                tracing::warn!(event = %entry.event_id, r#type = %entry.event_type, attempt = claimed.attempt, retry_in_ms = delay.as_millis() as u64, target = %redact_url(&entry.target), reason = %why, "webhook attempt failed");
                if let Err(e) = outbox.retry(&claimed, delay).await {
                    tracing::warn!(error = %e, event = %entry.event_id, "could not reschedule a webhook; it is due again after its lease");
                }
            }
        }
    }

    async fn post(&self, target: &Target, claimed: &ClaimedEntry) -> Outcome {
        let entry = &claimed.entry;
        let body = match target.format {
            Format::Colloquy => entry.body.clone(),
            Format::Slack => slack_body(&entry.body),
        };
        let mut request = self
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .header(EVENT_ID_HEADER, entry.event_id.to_string())
            .header(EVENT_TYPE_HEADER, &entry.event_type);
        if let Some(secret) = &target.secret {
            request = request.header(
                SIGNATURE_HEADER,
                sign(secret, Utc::now().timestamp(), body.as_bytes()),
            );
        }
        let send = request.body(body).send();
        let result = tokio::time::timeout(self.config.timeout, send).await;
        match result {
            Err(_) => Outcome::Failed(format!("no answer within {:?}", self.config.timeout)),
            Ok(Err(e)) => Outcome::Failed(error_chain(&e)),
            Ok(Ok(response)) if response.status().is_success() => Outcome::Delivered,
            Ok(Ok(response)) => Outcome::Failed(format!("answered {}", response.status())),
        }
    }
}

/// Awaits every future, concurrently, on this task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Escapes `&`, `<` and `>`, as Slack's message text requires.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The longest part of a message quoted in a Slack text, in characters.
const SLACK_QUOTE_CHARS: usize = 300;

/// The Slack form of an event body: `{"text": "..."}`.
#[must_use]
pub fn slack_body(body: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let str_at = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let sid = slack_escape(str_at("/session/session_id"));
    let text = match str_at("/type") {
        "handoff.requested" => format!(":raising_hand: A visitor asked for a person in session `{sid}`."),
        "session.created" => format!(":speech_balloon: New chat session `{sid}`."),
        "responder.changed" => match str_at("/session/responder") {
            "human" => format!(":bust_in_silhouette: A person took over session `{sid}`."),
            _ => format!(":robot_face: Session `{sid}` was handed back to the assistant."),
        },
        "handoff.timeout" => format!(":hourglass: Nobody answered the handoff in session `{sid}`; the assistant answers again."),
        "message.created" => {
            let quoted: String = str_at("/message/message").chars().take(SLACK_QUOTE_CHARS).collect();
            let more = if str_at("/message/message").chars().count() > SLACK_QUOTE_CHARS { "…" } else { "" };
            let who = match str_at("/message/role") {
                "user" => "Visitor",
                "assistant" => event
                    .pointer("/message/metadata/operator")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("Assistant"),
                _ => "System",
            };
            format!("{} in `{sid}`: {}{more}", slack_escape(who), slack_escape(&quoted))
        }
        other => format!("Colloquy event `{}` in session `{sid}`.", slack_escape(other)),
    };
    serde_json::json!({ "text": text }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    #[test]
    fn the_hmac_matches_the_rfc_4231_vector() {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// A known vector of the scheme itself, computed independently with
    /// `printf '1700000000.{"id":"x"}' | openssl dgst -sha256 -hmac whsec_test`.
    #[test]
    fn the_signature_signs_t_dot_body() {
        let body = br#"{"id":"x"}"#;
        assert_eq!(
            sign(b"whsec_test", 1_700_000_000, body),
            "t=1700000000,v1=80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3"
        );
    }

    #[test]
    fn verify_accepts_its_own_and_rejects_the_rest() {
        let body = br#"{"id":"x"}"#;
        let header = sign(b"k", 1000, body);
        assert_eq!(verify(b"k", &header, body, 1000, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(b"k", &header, body, 1200, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(
            verify(b"k", &header, body, 1000 + 301, DEFAULT_TOLERANCE),
            Err(VerifyError::Stale),
            "an old signature is a replay"
        );
        assert_eq!(
            verify(b"other", &header, body, 1000, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", &header, br#"{"id":"y"}"#, 1000, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        let forged_t = header.replace("t=1000", "t=1001");
        assert_eq!(
            verify(b"k", &forged_t, body, 1000, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch),
            "t is signed"
        );
        for bad in ["", "v1=ab", "t=x,v1=ab", "t=1000"] {
            assert_eq!(
                verify(b"k", bad, body, 1000, DEFAULT_TOLERANCE),
                Err(VerifyError::Malformed),
                "{bad:?}"
            );
        }
        let rotated = format!("{header},v1=00");
        assert_eq!(
            verify(b"k", &rotated, body, 1000, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn backoff_grows_exponentially_within_its_jitter_and_cap() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 1..=12u32 {
            let d = backoff(base, max, attempt);
            let full = (base * 2u32.pow(attempt - 1)).min(max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(base, max, u32::MAX) <= max);
    }

    #[test]
    fn targets_need_http_urls_and_the_colloquy_format_a_secret() {
        assert!(Target::new(
            "https://x.test/h".into(),
            Format::Colloquy,
            Some("s".into())
        )
        .is_ok());
        assert!(matches!(
            Target::new("https://x.test/h".into(), Format::Colloquy, None),
            Err(TargetError::NoSecret(_))
        ));
        assert!(Target::new("https://hooks.slack.test/T/B/X".into(), Format::Slack, None).is_ok());
        for bad in ["ftp://x.test/", "not a url", "http://"] {
            assert!(
                matches!(
                    Target::new(bad.into(), Format::Slack, None),
                    Err(TargetError::Url(_))
                ),
                "{bad}"
            );
        }
        let debug = format!(
            "{:?}",
            Target::new(
                "https://hooks.slack.test/T/B/SECRET?x=1".into(),
                Format::Slack,
                Some("k".into())
            )
        );
        assert!(
            !debug.contains("SECRET") && !debug.contains("\"k\""),
            "{debug}"
        );
    }

    #[test]
    fn slack_texts_name_the_event_and_escape_the_visitor() {
        let body = serde_json::json!({
            "id": "x", "type": "message.created",
            "session": {"session_id": "abc", "responder": "human"},
            "message": {"message": "<b>hi</b> & bye", "role": "user", "metadata": {}}
        })
        .to_string();
        let slack: serde_json::Value = serde_json::from_str(&slack_body(&body)).expect("JSON");
        assert_eq!(
            slack["text"],
            "Visitor in `abc`: &lt;b&gt;hi&lt;/b&gt; &amp; bye"
        );
        let handoff =
            serde_json::json!({"type": "handoff.requested", "session": {"session_id": "abc"}})
                .to_string();
        let slack: serde_json::Value = serde_json::from_str(&slack_body(&handoff)).expect("JSON");
        assert!(slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("asked for a person") && t.contains("`abc`")));
    }
}
