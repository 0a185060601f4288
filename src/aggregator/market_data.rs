//! Global market data (CoinGecko `/api/v3/global`), refreshed every `refreshIntervalMs` when
//! `marketData.coingeckoGlobal` is enabled, served by `GET /market-data/global` in the
//! reference's shape.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::sources::client::SourceClient;
use super::sources::SourceError;
use crate::config::schema::aggregator::AggregatorConfig;
use crate::config::schema::sources::{SourceConfig, SourceId, UseProxy};

pub const DEFAULT_BASE_URL: &str = "https://api.coingecko.com/api/v3";

/// The last good reading and when it arrived.
#[derive(Debug, Clone, Default)]
struct Reading {
    data: Option<(Value, SystemTime)>,
}

#[derive(Clone)]
pub struct MarketData {
    enabled: bool,
    reading: Arc<Mutex<Reading>>,
}

impl MarketData {
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            reading: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reference's `/market-data/global` body, or `None` before the first load.
    pub fn global(&self) -> Option<Value> {
        self.lock().data.as_ref().map(|(v, _)| v.clone())
    }

    /// The reference's `/market-data/global/status` body.
    pub fn status(&self) -> Value {
        let reading = self.lock();
        let at = reading.data.as_ref().map(|(_, at)| *at);
        json!({
            "enabled": self.enabled,
            "available": at.is_some(),
            "dataAgeMs": at.and_then(|t| SystemTime::now().duration_since(t).ok()).map(|d| d.as_millis() as u64),
            "lastUpdateAt": at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        })
    }

    /// Starts refreshing when enabled; the source's client (proxy, limits) is CoinGecko's own:
    /// 1 request per second at most, 3 retries, 10 s timeout, as the reference's.
    pub fn start(
        config: &AggregatorConfig,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Self, SourceError> {
        let global = &config.coingecko_global;
        if !global.enabled {
            return Ok(Self::disabled());
        }
        let mut client_config: SourceConfig = config
            .sources
            .get(&SourceId::CoinGecko)
            .cloned()
            .unwrap_or_else(default_coingecko);
        client_config.use_proxy = if global.use_proxy {
            UseProxy::Global
        } else {
            UseProxy::None
        };
        client_config.rps = Some(1.0);
        client_config.max_retries = 3;
        client_config.timeout = Duration::from_secs(10);
        let client = SourceClient::new(
            SourceId::CoinGecko,
            &client_config,
            DEFAULT_BASE_URL,
            config.proxy.as_ref(),
        )?;
        let this = Self {
            enabled: true,
            reading: Arc::default(),
        };
        tasks.spawn(
            this.clone()
                .refresh_loop(client, global.refresh_interval, stop),
        );
        Ok(this)
    }

    async fn refresh_loop(self, client: SourceClient, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        // Cancellation also ends a fetch in progress, not only the wait between two.
        let refresh = async {
            loop {
                tick.tick().await;
                match fetch(&client).await {
                    Ok(value) => self.lock().data = Some((value, SystemTime::now())),
                    Err(e) => tracing::warn!(error = %e, "global market data refresh failed"),
                }
            }
        };
        stop.run_until_cancelled(refresh).await;
    }
}

fn default_coingecko() -> SourceConfig {
    SourceConfig {
        enabled: true,
        api_key: None,
        ttl: Duration::from_secs(60),
        max_concurrent: 1,
        timeout: Duration::from_secs(10),
        rps: Some(1.0),
        use_proxy: UseProxy::None,
        max_retries: 3,
        refetch: false,
        stale_trigger_before_expiry: None,
        stream: None,
        base_url: None,
        max_batch_size: None,
    }
}

async fn fetch(client: &SourceClient) -> Result<Value, SourceError> {
    let malformed = |reason: &str| SourceError::Malformed {
        from: SourceId::CoinGecko,
        reason: reason.to_owned(),
    };
    let response = client.get(client.url("global"), HeaderMap::new()).await?;
    if !response.status.is_success() {
        return Err(SourceError::Upstream {
            from: SourceId::CoinGecko,
            reason: format!("HTTP {}", response.status),
        });
    }
    let body: Value = serde_json::from_slice(&response.body).map_err(|_| malformed("not JSON"))?;
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| malformed("no data object"))?;
    let updated = data.get("updated_at").and_then(Value::as_u64).map(|s| {
        humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
            .to_string()
    });
    Ok(json!({
        "totalMarketCap": data.get("total_market_cap").cloned().unwrap_or(Value::Null),
        "totalVolume": data.get("total_volume").cloned().unwrap_or(Value::Null),
        "marketCapPercentage": data.get("market_cap_percentage").cloned().unwrap_or(Value::Null),
        "marketCapChangePercentage24h": data.get("market_cap_change_percentage_24h_usd").cloned().unwrap_or(Value::Null),
        "activeCryptocurrencies": data.get("active_cryptocurrencies").cloned().unwrap_or(Value::Null),
        "markets": data.get("markets").cloned().unwrap_or(Value::Null),
        "updatedAt": updated,
    }))
}
