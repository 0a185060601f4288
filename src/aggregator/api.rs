//! The aggregator's HTTP API: the reference's routes with their JSON shapes (so jobs written for
//! it keep working) and the batch API the nodes use. Every bad request is a 4xx with a JSON body
//! naming what is wrong, and registers nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::aggregate::{aggregate, Leg, LegState, Policy};
use super::cache::{Cache, CacheError};
use super::market_data::MarketData;
use super::metrics::AggregatorMetrics;
use super::pair::Pair;
use super::refresh::ttl_for;
use super::sources::{Source, SourceError};
use crate::config::schema::aggregator::AggregatorConfig;
use crate::config::schema::feeds::FeedConfig;
use crate::config::schema::sources::SourceId;
use crate::net::http_server;
use crate::telemetry::encode;

/// Everything the handlers share.
#[derive(Clone)]
pub struct Api {
    pub cache: Cache,
    pub sources: Arc<BTreeMap<SourceId, Arc<dyn Source>>>,
    pub config: Arc<AggregatorConfig>,
    /// Feeds by name: their legs answer `/quotes/batch` for the feed's pair.
    pub feeds: Arc<BTreeMap<String, FeedConfig>>,
    pub registry: prometheus::Registry,
    /// API request counts and latencies, when the service measures itself.
    pub metrics: Option<AggregatorMetrics>,
    pub market_data: MarketData,
}

pub fn router(api: Api) -> Router {
    let measured = api.metrics.clone();
    let routes = Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/quote/pairs/all", get(pairs_all))
        .route("/quote/pairs/{source}", get(pairs_of_source))
        .route("/quote/{source}/{base}/{quote}", get(quote))
        .route("/quotes/batch", get(quotes_batch))
        .route("/market-data/global", get(market_global))
        .route("/market-data/global/status", get(market_status))
        .fallback(not_found)
        .with_state(api);
    match measured {
        Some(m) => routes.layer(axum::middleware::from_fn_with_state(m, measure)),
        None => routes,
    }
}

/// Counts and times every request by its route template (never the raw path: no label explosion).
async fn measure(
    State(metrics): State<AggregatorMetrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Anyone can send any method: a made-up one must not become a series of its own.
    let method = http_server::method_label(request.method());
    let started = std::time::Instant::now();
    metrics.http_in_flight.inc();
    let response = next.run(request).await;
    metrics.http_in_flight.dec();
    let status = response.status().as_u16().to_string();
    metrics
        .http_requests
        .with_label_values(&[&route, method, &status])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[&route, method])
        .observe(started.elapsed().as_secs_f64());
    response
}

fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A refused request: the reference's error shape, plus `error` (the status' name) and, for
/// bad input, `field`.
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "statusCode": self.status.as_u16(),
            "timestamp": iso(SystemTime::now()),
            // The batch API's contract is {"error": "...", "field": "..."}; the reference's
            // clients read "message" and "statusCode". Both carry the description.
            "error": self.message,
            "message": self.message,
        });
        if let Some(f) = self.field {
            body["field"] = Value::from(f);
        }
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<&'static str>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        field,
    }
}

async fn root() -> Json<Value> {
    Json(json!({"message": "Price Proxy Service is running", "timestamp": iso(SystemTime::now())}))
}

async fn not_found(request: axum::extract::Request) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!("Cannot {} {}", request.method(), request.uri().path()),
        None,
    )
}

async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        encode::text(&api.registry),
    )
        .into_response()
}

/// An enabled source by its URL name, or the reference's 404.
fn source_named(api: &Api, name: &str) -> Result<Arc<dyn Source>, ApiError> {
    let Some(id) = SourceId::parse(name) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("Adapter not found for source: {}", excerpt(name)),
            Some("source"),
        ));
    };
    api.sources.get(&id).cloned().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("Adapter {} is disabled", id.name()),
            Some("source"),
        )
    })
}

/// At most 64 characters of client input in a message.
fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

async fn quote(
    State(api): State<Api>,
    Path((source, base, quote)): Path<(String, String, String)>,
) -> Response {
    let source = match source_named(&api, &source) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let pair = match Pair::new(&base, &quote) {
        Ok(p) => p,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, e.to_string(), Some("pair")).into_response()
        }
    };
    let ttl = ttl_for(&api.config, source.id(), &pair);
    match api
        .cache
        .get(source.clone(), &pair, ttl, api.config.quote_request_timeout)
        .await
    {
        Ok(q) => Json(json!({
            "source": source.id().name(),
            "pair": [pair.base, pair.quote],
            "price": q.price.to_string(),
            "receivedAt": iso(q.received_at),
        }))
        .into_response(),
        Err(e) => {
            cache_error(&e, source.id(), &pair, api.config.quote_request_timeout).into_response()
        }
    }
}

fn cache_error(e: &CacheError, source: SourceId, pair: &Pair, wait: Duration) -> ApiError {
    match e {
        // The client asked for more distinct pairs than may be tracked: its request, not our
        // failure, hence a 4xx.
        CacheError::Full(n) => error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {n} pairs can be tracked; try again when unused pairs have expired"),
            None,
        ),
        CacheError::Waiting(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "Quote request timeout after {}ms for {source} {pair}",
                wait.as_millis()
            ),
            None,
        ),
        CacheError::Source(s) => match s {
            SourceError::PairNotFound { .. } => error(
                StatusCode::NOT_FOUND,
                format!("No price found for {pair} from {source}"),
                None,
            ),
            SourceError::Refused { .. } => error(StatusCode::UNAUTHORIZED, s.to_string(), None),
            SourceError::RateLimited { .. } => {
                error(StatusCode::TOO_MANY_REQUESTS, s.to_string(), None)
            }
            SourceError::Timeout { .. } => error(StatusCode::GATEWAY_TIMEOUT, s.to_string(), None),
            _ => error(
                StatusCode::BAD_GATEWAY,
                format!("API error from {source}: {s}"),
                None,
            ),
        },
    }
}

async fn market_global(State(api): State<Api>) -> Response {
    match api.market_data.global() {
        Some(data) => Json(data).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "Global market data not available yet. Please try again in a few moments.",
            None,
        )
        .into_response(),
    }
}

async fn market_status(State(api): State<Api>) -> Json<Value> {
    Json(api.market_data.status())
}

async fn pairs_all(State(api): State<Api>) -> Json<Value> {
    Json(json!({ "pairs": pair_rows(&api, None) }))
}

async fn pairs_of_source(State(api): State<Api>, Path(source): Path<String>) -> Response {
    match source_named(&api, &source) {
        Ok(s) => Json(json!({"source": s.id().name(), "pairs": pair_rows(&api, Some(s.id()))}))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Tracked pairs with their cached prices; tokio instants shown as wall-clock times.
fn pair_rows(api: &Api, only: Option<SourceId>) -> Vec<Value> {
    let now = tokio::time::Instant::now();
    let wall =
        |at: tokio::time::Instant| iso(SystemTime::now() - now.saturating_duration_since(at));
    let mut rows: Vec<Value> = api
        .cache
        .snapshot()
        .into_iter()
        .filter(|((source, _), _)| only.is_none_or(|o| o == *source))
        .map(|((source, pair), entry)| {
            let mut row = json!({
                "pair": [pair.base, pair.quote],
                "source": source.name(),
                "lastRequestAt": wall(entry.last_requested),
            });
            if let Some(at) = entry.last_attempt {
                row["lastFetchAt"] = Value::from(wall(at));
            }
            if let Some((q, at)) = &entry.quote {
                row["cachedPrice"] = Value::from(q.price.to_string());
                row["receivedAt"] = Value::from(iso(q.received_at));
                row["cachedAt"] = Value::from(wall(*at));
            }
            row
        })
        .collect();
    rows.sort_by_key(|row| row.to_string());
    rows
}

#[derive(Debug, Deserialize)]
struct BatchQuery {
    pairs: Option<String>,
    sources: Option<String>,
}

/// One requested pair and the legs that price it.
struct Request {
    name: String,
    legs: Vec<(Arc<dyn Source>, Pair)>,
}

async fn quotes_batch(State(api): State<Api>, Query(query): Query<BatchQuery>) -> Response {
    let requests = match plan_batch(&api, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let policy = Policy {
        min_sources: api.config.aggregation.min_sources,
        max_deviation_ppb: api.config.aggregation.max_deviation_ppb,
    };
    let wait = api.config.quote_request_timeout;
    let answers = requests.into_iter().map(|request| {
        let api = api.clone();
        async move {
            let legs =
                futures_util::future::join_all(request.legs.into_iter().map(|(source, pair)| {
                    let api = api.clone();
                    async move { leg(&api, source, pair, wait).await }
                }))
                .await;
            let result = aggregate(&legs, policy, SystemTime::now());
            (request.name, batch_entry(&result))
        }
    });
    let quotes: serde_json::Map<String, Value> = futures_util::future::join_all(answers)
        .await
        .into_iter()
        .collect();
    Json(json!({ "quotes": quotes })).into_response()
}

/// Validates the whole request before anything touches the cache.
fn plan_batch(api: &Api, query: &BatchQuery) -> Result<Vec<Request>, ApiError> {
    let bad =
        |message: String, field: &'static str| error(StatusCode::BAD_REQUEST, message, Some(field));
    let pairs_text = query
        .pairs
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            bad(
                "pairs is required, e.g. pairs=BTC-USD,ETH-USD".into(),
                "pairs",
            )
        })?;
    let names: Vec<&str> = pairs_text.split(',').map(str::trim).collect();
    let max = api.config.max_pairs_per_request;
    if names.len() > max {
        return Err(bad(format!("at most {max} pairs per request"), "pairs"));
    }
    let only: Option<Vec<SourceId>> =
        match query.sources.as_deref().filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|name| {
                        let name = name.trim();
                        SourceId::parse(name)
                            .filter(|id| api.sources.contains_key(id))
                            .ok_or_else(|| {
                                bad(
                                    format!("unknown or disabled source {:?}", excerpt(name)),
                                    "sources",
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
    let allowed = |id: &SourceId| only.as_ref().is_none_or(|o| o.contains(id));
    let mut requests = Vec::new();
    for name in names {
        let legs: Vec<(Arc<dyn Source>, Pair)> = match api.feeds.get(name) {
            Some(feed) => feed
                .legs
                .iter()
                .filter(|l| allowed(&l.source))
                .filter_map(|l| {
                    let source = api.sources.get(&l.source)?.clone();
                    Some((source, Pair::new(&l.base, &l.quote).ok()?))
                })
                .collect(),
            None => {
                let pair = Pair::parse(name)
                    .map_err(|e| bad(format!("{}: {e}", excerpt(name)), "pairs"))?;
                api.sources
                    .iter()
                    .filter(|(id, _)| allowed(id))
                    .map(|(_, s)| (s.clone(), pair.clone()))
                    .collect()
            }
        };
        requests.push(Request {
            name: name.to_owned(),
            legs,
        });
    }
    Ok(requests)
}

async fn leg(api: &Api, source: Arc<dyn Source>, pair: Pair, wait: Duration) -> Leg {
    let id = source.id();
    let symbol = source.symbol(&pair);
    let ttl = ttl_for(&api.config, id, &pair);
    let state = match api.cache.get(source, &pair, ttl, wait).await {
        Ok(q) => LegState::Fresh {
            price: q.price,
            received_at: q.received_at,
        },
        Err(e) => {
            // A stale quote is shown (never used) next to why there is no fresh one.
            match api
                .cache
                .entry(&(id, pair.clone()))
                .and_then(|entry| entry.quote)
            {
                Some((q, _)) => LegState::Stale {
                    price: q.price,
                    received_at: q.received_at,
                },
                None => LegState::Missing { reason: reason(&e) },
            }
        }
    };
    Leg {
        source: id,
        symbol,
        state,
    }
}

fn reason(e: &CacheError) -> String {
    match e {
        CacheError::Source(s) => s.kind().to_owned(),
        CacheError::Full(_) => "tracked_pair_limit".to_owned(),
        CacheError::Waiting(_) => "timeout".to_owned(),
    }
}

fn batch_entry(a: &super::aggregate::Aggregate) -> Value {
    let sources: Vec<Value> = a
        .sources
        .iter()
        .map(|v| {
            let mut s = json!({
                "source": v.source.name(),
                "symbol": v.symbol,
                "used": v.used,
            });
            if let Some(p) = v.price {
                s["price"] = Value::from(p.to_string());
            }
            if let Some(at) = v.received_at {
                s["receivedAt"] = Value::from(iso(at));
            }
            if let Some(age) = v.age {
                s["ageMs"] = Value::from(age.as_millis() as u64);
            }
            if let Some(r) = &v.reason {
                s["reason"] = Value::from(r.clone());
            }
            s
        })
        .collect();
    let mut entry = json!({
        "status": if a.price.is_some() { "ok" } else { "unavailable" },
        "sources": sources,
    });
    if let Some(p) = a.price {
        entry["price"] = Value::from(p.to_string());
    }
    if let Some(at) = a.updated_at {
        entry["updatedAt"] = Value::from(iso(at));
    }
    if let Some(r) = &a.reason {
        entry["reason"] = Value::from(r.clone());
    }
    entry
}
