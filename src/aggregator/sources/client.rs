//! The HTTP side every REST adapter shares: one pooled keep-alive client per source (rustls),
//! its proxy, its request rate (any positive rps, fractions included), its concurrency cap, and
//! retries with exponential backoff and jitter that honour `Retry-After` — never an immediate
//! retry of a 429.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::SourceError;
use crate::backoff::Backoff;
use crate::config::schema::sources::{SourceConfig, SourceId, UseProxy};
use crate::config::values::RedactedUrl;

/// Retries wait `250 ms · 2ⁿ` plus up to half of it (at most 8 doublings): the step is the top
/// of that range and a third of it is jitter, so attempt n waits in `[250 ms · 2ⁿ, 375 ms · 2ⁿ]`
/// (the first retry waits 375 ms, the shared type never going below its first delay).
const RETRY_BACKOFF: Backoff = Backoff::constant(
    Duration::from_millis(375),
    Duration::from_millis(375 << 8),
    1.0 / 3.0,
);
/// A `Retry-After` longer than this is not waited for inside a request: the error goes back to
/// the cache, which schedules the pair for later.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// An HTTP response that arrived: status and body (errors in it are the adapter's to read).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Response {
    /// The body as `T`, read before the status is judged: for the sources that send their errors
    /// in the same envelope on a 200 and on a 4xx, whose error part decides first. A body that is
    /// not `T` is `HTTP <status>` on a failure status, else `Malformed` (the parse error,
    /// clipped).
    pub(crate) fn envelope<'a, T: Deserialize<'a>>(
        &'a self,
        from: SourceId,
    ) -> Result<T, SourceError> {
        self.envelope_or(from, |e| {
            SourceError::malformed_clipped(from, e.to_string())
        })
    }

    /// [`Response::envelope`], with `malformed` making the error for a success whose body is
    /// not `T`.
    pub(crate) fn envelope_or<'a, T: Deserialize<'a>>(
        &'a self,
        from: SourceId,
        malformed: impl FnOnce(serde_json::Error) -> SourceError,
    ) -> Result<T, SourceError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            if self.status.is_success() {
                malformed(e)
            } else {
                SourceError::http_status(from, self.status)
            }
        })
    }

    /// `HTTP <status>` for a failure status (once the body's own error, if any, is read).
    pub(crate) fn require_success(&self, from: SourceId) -> Result<(), SourceError> {
        if self.status.is_success() {
            Ok(())
        } else {
            Err(SourceError::http_status(from, self.status))
        }
    }
}

pub struct SourceClient {
    id: SourceId,
    http: reqwest::Client,
    base_url: Url,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    concurrency: Arc<Semaphore>,
    timeout: Duration,
    max_retries: u32,
}

impl SourceClient {
    /// `default_base` is the public endpoint; `baseUrl` in the configuration replaces it.
    pub fn new(
        id: SourceId,
        config: &SourceConfig,
        default_base: &str,
        global_proxy: Option<&RedactedUrl>,
    ) -> Result<Self, SourceError> {
        let unreachable = |reason: String| SourceError::Unreachable { from: id, reason };
        let base_url = match &config.base_url {
            Some(url) => url.expose().clone(),
            None => Url::parse(default_base)
                .map_err(|e| unreachable(format!("bad default URL: {e}")))?,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!(
                "enclave-price-aggregator/",
                env!("CARGO_PKG_VERSION")
            ));
        let proxy = match &config.use_proxy {
            UseProxy::None => None,
            UseProxy::Global => global_proxy,
            UseProxy::Own(url) => Some(url),
        };
        builder = match proxy {
            Some(url) => builder.proxy(
                reqwest::Proxy::all(url.expose().clone())
                    .map_err(|_| unreachable(format!("unusable proxy {url}")))?,
            ),
            None => builder.no_proxy(),
        };
        let http = builder
            .build()
            .map_err(|e| unreachable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            id,
            http,
            base_url,
            limiter: config
                .rps
                .map(|rps| Arc::new(RateLimiter::direct(quota(rps)))),
            concurrency: Arc::new(Semaphore::new(config.max_concurrent.max(1) as usize)),
            timeout: config.timeout,
            max_retries: config.max_retries,
        })
    }

    pub fn id(&self) -> SourceId {
        self.id
    }

    /// `path` joined to the base URL (a base with a path prefix keeps it).
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        url
    }

    /// GET with the source's limits and retries. Statuses are returned, not judged, except
    /// 429/5xx which are retried first and then reported as errors.
    pub async fn get(&self, url: Url, headers: HeaderMap) -> Result<Response, SourceError> {
        let mut attempt = 0;
        loop {
            let outcome = self.get_once(url.clone(), headers.clone()).await;
            let wait = match &outcome {
                Err(SourceError::RateLimited { retry_after, .. }) => match retry_after {
                    Some(d) if *d > MAX_RETRY_AFTER => return outcome,
                    Some(d) => Some(*d),
                    None => Some(RETRY_BACKOFF.delay(attempt)),
                },
                Err(
                    SourceError::Upstream { .. }
                    | SourceError::Timeout { .. }
                    | SourceError::Unreachable { .. },
                ) => Some(RETRY_BACKOFF.delay(attempt)),
                _ => None,
            };
            match wait {
                Some(delay) if attempt < self.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                _ => return outcome,
            }
        }
    }

    async fn get_once(&self, url: Url, headers: HeaderMap) -> Result<Response, SourceError> {
        let _permit = self
            .concurrency
            .acquire()
            .await
            .map_err(|_| SourceError::Unreachable {
                from: self.id,
                reason: "the client is shutting down".into(),
            })?;
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let response = self
            .http
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        match status {
            StatusCode::TOO_MANY_REQUESTS => Err(SourceError::RateLimited {
                from: self.id,
                retry_after,
            }),
            s if s.is_server_error() => Err(SourceError::Upstream {
                from: self.id,
                reason: format!("HTTP {s}"),
            }),
            StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS => Err(SourceError::Refused {
                from: self.id,
                reason: format!("HTTP {status}"),
            }),
            _ => Ok(Response { status, body }),
        }
    }

    /// A transport failure, described without the URL (its query may carry an API key).
    fn transport_error(&self, e: &reqwest::Error) -> SourceError {
        if e.is_timeout() {
            return SourceError::Timeout {
                from: self.id,
                timeout: self.timeout,
            };
        }
        let detail = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "request failed".into());
        SourceError::Unreachable {
            from: self.id,
            reason: detail.split(" for url").next().unwrap_or("").to_owned(),
        }
    }
}

/// A REST adapter's struct `$name` and its `new`, taking what every adapter's constructor takes:
/// the HTTP client of `$id` with `$default_base` as the public endpoint, then each further field
/// made from the configuration (named by `|config|`), e.g.
/// `rest_adapter!(Okx, ID, DEFAULT_BASE_URL, |config| max_batch: usize = batch_size(config, ID, 1))`.
macro_rules! rest_adapter {
    (
        $name:ident, $id:expr, $default_base:expr
        $(, |$config:ident| $($(#[$meta:meta])* $field:ident: $ty:ty = $init:expr),+)? $(,)?
    ) => {
        pub struct $name {
            client: $crate::aggregator::sources::client::SourceClient,
            $($($(#[$meta])* $field: $ty,)+)?
        }

        impl $name {
            pub fn new(
                config: &$crate::config::schema::sources::SourceConfig,
                global_proxy: Option<&$crate::config::values::RedactedUrl>,
            ) -> Result<Self, $crate::aggregator::sources::SourceError> {
                let client = $crate::aggregator::sources::client::SourceClient::new(
                    $id,
                    config,
                    $default_base,
                    global_proxy,
                )?;
                $(let $config = config;)?
                Ok(Self {
                    client,
                    $($($field: $init,)+)?
                })
            }
        }
    };
}
pub(crate) use rest_adapter;

/// `rps` requests per second with a burst of one second's worth; below 1 rps, one request per
/// `1/rps` seconds (the reference's limiter deadlocked there).
fn quota(rps: f64) -> Quota {
    if rps >= 1.0 {
        let per_second = NonZeroU32::new(rps.floor() as u32).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(per_second)
    } else {
        let period = Duration::from_secs_f64(1.0 / rps.max(1e-4));
        Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from APIs and treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_read_before_the_status_is_judged() {
        let from = SourceId::Bybit;
        let answer = |status: u16, body: &'static str| Response {
            status: StatusCode::from_u16(status).expect("status"),
            body: bytes::Bytes::from_static(body.as_bytes()),
        };
        // An error envelope on a 4xx is read; the status is judged afterwards.
        let error = answer(400, "[1]");
        assert_eq!(error.envelope::<Vec<u32>>(from), Ok(vec![1]));
        let http_400 = SourceError::http_status(from, StatusCode::BAD_REQUEST);
        assert_eq!(error.require_success(from), Err(http_400.clone()));
        // A body that is not the envelope: the status on a failure, else malformed.
        assert_eq!(
            answer(400, "<html>").envelope::<Vec<u32>>(from),
            Err(http_400)
        );
        let e = serde_json::from_slice::<Vec<u32>>(b"<html>").unwrap_err();
        assert_eq!(
            answer(200, "<html>").envelope::<Vec<u32>>(from),
            Err(SourceError::malformed_clipped(from, e.to_string()))
        );
        assert_eq!(
            answer(200, "<html>")
                .envelope_or::<Vec<u32>>(from, |_| SourceError::malformed(from, "x")),
            Err(SourceError::malformed(from, "x"))
        );
        assert_eq!(answer(200, "[]").require_success(from), Ok(()));
    }

    #[test]
    fn fractional_rates_become_periods() {
        // 0.5 rps: one request every two seconds, not a deadlock.
        let q = quota(0.5);
        assert_eq!(q.replenish_interval(), Duration::from_secs(2));
        let q = quota(10.0);
        assert_eq!(q.replenish_interval(), Duration::from_millis(100));
    }

    #[test]
    fn retries_wait_between_the_doubled_step_and_half_as_much_again() {
        let first = Duration::from_millis(250);
        for attempt in 1..12 {
            let base = first * (1 << attempt.min(8));
            for u in [0.0, 0.5, 0.999] {
                let d = RETRY_BACKOFF.delay_with(attempt, u);
                assert!(d >= base && d <= base + base / 2, "{attempt} {u}: {d:?}");
            }
        }
        assert_eq!(RETRY_BACKOFF.delay_with(0, 0.7), Duration::from_millis(375));
    }
}
