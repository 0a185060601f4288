//! Sending notifications: one task per channel with a bounded queue, so a slow or failing
//! channel delays only itself and never the evaluation. Each notification is retried with
//! exponential backoff and jitter ([`crate::backoff::Backoff`]) after a connection error, a timeout, a 408, a 429
//! or a 5xx, waiting what the service asks for (`Retry-After`, Discord's and Telegram's
//! `retry_after`) instead when it says; other 4xx answers are final. Webhook URLs and bot
//! tokens never reach a log line, an error or a metric: errors carry only the channel's kind,
//! index and origin, and answer bodies are scrubbed of the secrets before they are quoted.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::engine::Notification;
use super::message;
use super::metrics::AlertMetrics;
use crate::backoff::Backoff;
use crate::config::schema::alerts::{ChannelConfig, ChannelKind, ChannelTarget};

/// Notifications waiting per channel; beyond this the newest is dropped (and counted).
pub const QUEUE: usize = 256;
/// Characters of an answer body quoted in an error.
const BODY_EXCERPT: usize = 200;

/// Retry n (0-based) waits in `[step, 2·step]`, `step = min_delay · 2ⁿ` capped at `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// A service asking to wait longer than this is waited for this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 1 s doubling to 60 s, 8 retries: about 3 minutes before a notification is given up.
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retries: 8,
            max_retry_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{why}")]
    Retryable {
        why: String,
        retry_after: Option<Duration>,
    },
    #[error("{0}")]
    Final(String),
}

impl RetryPolicy {
    /// The shared backoff with the jitter above the step (as before: `[step, 2·step]`): its step
    /// is twice ours and half of that is jitter. Zero delays are raised to 1 ms, so any policy
    /// gives valid settings.
    fn backoff(&self) -> Backoff {
        let first = self
            .min_delay
            .max(Duration::from_millis(1))
            .saturating_mul(2);
        let cap = self.max_delay.saturating_mul(2).max(first);
        Backoff::constant(first, cap, 0.5)
    }
}

impl SendError {
    fn retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }
}

/// One configured channel, ready to send.
pub struct Channel {
    /// `slack#0`: the kind and the index in `alerts.channels`, for logs.
    pub name: String,
    pub config: ChannelConfig,
    instance: String,
    http: reqwest::Client,
    retry: RetryPolicy,
    metrics: Arc<AlertMetrics>,
}

impl Channel {
    pub fn new(
        index: usize,
        config: ChannelConfig,
        instance: &str,
        retry: RetryPolicy,
        metrics: Arc<AlertMetrics>,
    ) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // A redirect would carry the secret URL's answer elsewhere; webhooks do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                SendError::Final(format!(
                    "cannot create the HTTP client: {}",
                    e.without_url()
                ))
            })?;
        Ok(Self {
            name: format!("{}#{index}", config.kind()),
            config,
            instance: instance.to_owned(),
            http,
            retry,
            metrics,
        })
    }

    pub fn kind(&self) -> ChannelKind {
        self.config.kind()
    }

    /// The host the channel sends to (no path, no token): safe to log.
    pub fn origin(&self) -> String {
        match &self.config.target {
            ChannelTarget::Slack { webhook_url } | ChannelTarget::Discord { webhook_url } => {
                webhook_url.origin().to_owned()
            }
            ChannelTarget::Webhook { url, .. } => url.origin().to_owned(),
            ChannelTarget::Telegram { api_url, .. } => url::Url::parse(api_url)
                .ok()
                .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")))
                .unwrap_or_default(),
        }
    }

    /// Strings that must never appear in anything this channel reports.
    fn secrets(&self) -> Vec<String> {
        let url_parts = |url: &str| {
            let mut parts = vec![url.to_owned()];
            if let Ok(u) = url::Url::parse(url) {
                // The path alone is the credential of a Slack or Discord webhook.
                if u.path().len() > 1 {
                    parts.push(u.path().to_owned());
                }
                parts.extend(
                    u.path()
                        .rsplit('/')
                        .next()
                        .filter(|token| token.len() >= 8)
                        .map(str::to_owned),
                );
                parts.extend(u.query().filter(|q| !q.is_empty()).map(str::to_owned));
            }
            parts
        };
        match &self.config.target {
            ChannelTarget::Slack { webhook_url } | ChannelTarget::Discord { webhook_url } => {
                url_parts(webhook_url.expose())
            }
            ChannelTarget::Telegram { bot_token, .. } => vec![bot_token.expose().clone()],
            ChannelTarget::Webhook { url, headers } => {
                let mut s = url_parts(url.expose());
                s.extend(headers.values().map(|v| v.expose().clone()));
                s
            }
        }
    }

    fn request(&self, n: &Notification) -> reqwest::RequestBuilder {
        let instance = &self.instance;
        let (url, body, headers) = match &self.config.target {
            ChannelTarget::Slack { webhook_url } => (
                webhook_url.expose().to_owned(),
                message::slack_body(n, instance),
                HeaderMap::new(),
            ),
            ChannelTarget::Discord { webhook_url } => (
                webhook_url.expose().to_owned(),
                message::discord_body(n, instance),
                HeaderMap::new(),
            ),
            ChannelTarget::Telegram {
                api_url,
                bot_token,
                chat_id,
            } => (
                format!("{api_url}/bot{}/sendMessage", bot_token.expose()),
                message::telegram_body(n, instance, chat_id),
                HeaderMap::new(),
            ),
            ChannelTarget::Webhook { url, headers } => {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    // Validated at configuration time; a bad one is skipped rather than sent.
                    if let (Ok(name), Ok(mut value)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(value.expose()),
                    ) {
                        value.set_sensitive(true);
                        map.insert(name, value);
                    }
                }
                (
                    url.expose().to_owned(),
                    message::webhook_body(n, instance),
                    map,
                )
            }
        };
        self.http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .headers(headers)
            .body(body.to_string())
    }

    async fn send_once(&self, n: &Notification) -> Result<(), SendError> {
        let response = self.request(n).send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "no answer in time".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                format!("request failed: {}", e.without_url())
            };
            SendError::Retryable {
                why: self.scrub(&why),
                retry_after: None,
            }
        })?;
        let status = response.status();
        let header_wait = retry_after_header(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            // Telegram answers {"ok": false, …} for what it refuses.
            if self.kind() == ChannelKind::Telegram
                && json.as_ref().and_then(|v| v["ok"].as_bool()) == Some(false)
            {
                return Err(SendError::Final(self.scrub(&format!(
                    "refused: {}",
                    excerpt(&String::from_utf8_lossy(&body))
                ))));
            }
            return Ok(());
        }
        let body_wait = json.as_ref().and_then(body_retry_after);
        let why = self.scrub(&format!(
            "HTTP {}: {}",
            status.as_u16(),
            excerpt(&String::from_utf8_lossy(&body))
        ));
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            Err(SendError::Retryable {
                why,
                retry_after: header_wait.or(body_wait),
            })
        } else {
            Err(SendError::Final(why))
        }
    }

    /// Sends with retries; the error is the last attempt's.
    pub async fn deliver(&self, n: &Notification) -> Result<(), SendError> {
        let mut retries = self.retry.backoff().attempts();
        loop {
            let error = match self.send_once(n).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // Final answers and the last allowed attempt end here, whatever the service asks.
            if !error.retryable() || retries.count() as usize >= self.retry.max_retries {
                return Err(error);
            }
            let backoff = retries.next_delay();
            let wait = match &error {
                SendError::Retryable {
                    retry_after: Some(asked),
                    ..
                } => (*asked).min(self.retry.max_retry_after),
                _ => backoff,
            };
            self.metrics
                .retries
                .with_label_values(&[self.kind().as_str()])
                .inc();
            tracing::info!(
                channel = %self.name, origin = %self.origin(), alert = %n.key.alert,
                error = %error, retry_in_ms = wait.as_millis() as u64,
                "alert notification not delivered yet; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let mut secrets = self.secrets();
        // Longest first, so a token inside a URL does not leave the rest of the URL behind.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            if !secret.is_empty() {
                out = out.replace(&secret, "***");
            }
        }
        out
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(empty answer)".to_owned();
    }
    message::truncate(&text.replace(['\n', '\r'], " "), BODY_EXCERPT)
}

/// `Retry-After` in seconds (an HTTP date is rare from these services and treated as absent).
fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = text.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Discord: `{"retry_after": 1.5}` (seconds); Telegram: `{"parameters": {"retry_after": 5}}`.
fn body_retry_after(v: &Value) -> Option<Duration> {
    let secs = v["retry_after"]
        .as_f64()
        .or_else(|| v["parameters"]["retry_after"].as_f64())?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Starts the channel's task; the sender is its queue.
pub fn spawn(
    channel: Channel,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> mpsc::Sender<Notification> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tracker.spawn(run(channel, rx, stop));
    tx
}

async fn run(channel: Channel, mut queue: mpsc::Receiver<Notification>, stop: CancellationToken) {
    let kind = channel.kind().as_str();
    loop {
        let n = tokio::select! {
            n = queue.recv() => match n {
                Some(n) => n,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let result = tokio::select! {
            r = channel.deliver(&n) => r,
            _ = stop.cancelled() => return,
        };
        let alert = n.key.alert.as_str();
        match result {
            Ok(()) => {
                channel
                    .metrics
                    .notifications
                    .with_label_values(&[kind, alert, "sent"])
                    .inc();
                tracing::info!(channel = %channel.name, alert, subject = %n.key.subject,
                    state = n.state.as_str(), "alert notification sent");
            }
            Err(e) => {
                channel
                    .metrics
                    .notifications
                    .with_label_values(&[kind, alert, "failed"])
                    .inc();
                tracing::warn!(channel = %channel.name, origin = %channel.origin(), alert,
                    subject = %n.key.subject, state = n.state.as_str(), error = %e,
                    "alert notification failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
