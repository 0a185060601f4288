//! The node's HTTP API on 127.0.0.1:6600+i: `/health`, `/v1/feeds`, `/v1/feeds/{name}/latest`,
//! `/v1/rounds`, `/metrics`. Every error is a JSON body naming what was wrong.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alloy_primitives::aliases::I192;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::schema::feeds::FeedConfig;
use crate::node::feed::observe::Observer;
use crate::node::feed::shared::Shared;
use crate::node::ocr1::signature::recover_signer;
use crate::node::ocr1::types::ConfigDigest;
use crate::node::store::Store;

pub const MAX_ROUNDS: usize = 1000;
const DEFAULT_ROUNDS: usize = 50;
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/health` needs to know beyond the shared feed state.
#[derive(Clone)]
pub struct Api {
    pub node: u32,
    /// `None` on the bootstrap node, which runs no consensus.
    pub oracle: Option<Arc<OracleApi>>,
    pub network: crate::node::p2p::NetworkHandle,
    /// The oracles' peers (the bootstrap's connection does not count towards a quorum).
    pub oracle_peers: Arc<std::collections::HashSet<crate::keys::peer_id::PeerId>>,
    pub peers_expected: usize,
    /// Peers needed for a quorum with ourselves (2f); 0 on the bootstrap.
    pub peers_needed: usize,
    pub registry: prometheus::Registry,
}

pub struct OracleApi {
    pub shared: Arc<Shared>,
    /// The database and the observer themselves (the feed tasks see them through their seams):
    /// `/health` checks the one and shows the other's counters.
    pub store: Store,
    pub observer: Arc<Observer>,
    /// The feeds whose protocol instance runs, with their config digest (with a chain, a feed
    /// starts once its contract's configuration is read).
    pub feeds: std::sync::RwLock<Vec<(FeedConfig, ConfigDigest)>>,
    /// Every configured feed, started or not.
    pub configured: Vec<FeedConfig>,
}

impl OracleApi {
    pub fn running(&self) -> Vec<(FeedConfig, ConfigDigest)> {
        self.feeds.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/feeds", get(feeds))
        .route("/v1/feeds/{name}/latest", get(latest))
        .route("/v1/rounds", get(rounds))
        .fallback(not_found)
        .with_state(api)
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let message = message.into();
    let mut body = json!({ "statusCode": status.as_u16(), "error": message, "message": message });
    if let Some(field) = field {
        body["field"] = Value::from(field);
    }
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: see /health, /v1/feeds, /v1/feeds/{name}/latest, /v1/rounds, /metrics",
        None,
    )
}

fn bootstrap_only(api: &Api) -> Result<&Arc<OracleApi>, Box<Response>> {
    api.oracle.as_ref().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("node {} is the bootstrap node: it takes no part in consensus; ask an oracle (nodes 2..N)", api.node),
            None,
        ))
    })
}

async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::encode::text(&api.registry),
    )
        .into_response()
}

async fn health(State(api): State<Api>) -> Response {
    let connected = api
        .network
        .connected()
        .iter()
        .filter(|p| api.oracle_peers.contains(p))
        .count();
    let mut reasons = Vec::new();
    if connected < api.peers_needed {
        reasons.push(format!(
            "{connected} of {} peers connected, {} needed for a quorum",
            api.peers_expected, api.peers_needed
        ));
    }
    let mut body = json!({
        "node": api.node,
        "role": if api.oracle.is_some() { "oracle" } else { "bootstrap" },
        "live": true,
        "peersConnected": connected,
        "peersExpected": api.peers_expected,
    });
    if let Some(oracle) = &api.oracle {
        let (aggregator, problem) = aggregator_health(oracle);
        body["aggregator"] = aggregator;
        reasons.extend(problem);
        let running = oracle.running();
        for feed in &oracle.configured {
            if !running.iter().any(|(f, _)| f.name == feed.name) {
                let why = oracle
                    .shared
                    .status
                    .waiting_for(&feed.name)
                    .unwrap_or_else(|| "waiting for its contract configuration".to_owned());
                reasons.push(format!("feed {}: {why}", feed.name));
            }
        }
        body["feeds"] = feeds_health(oracle, &running);
        let database = tokio::time::timeout(
            DB_CHECK_TIMEOUT,
            crate::postgres::db::health(oracle.store.pool(), api.node),
        )
        .await;
        match database {
            Ok(Ok(())) => body["database"] = Value::from("ok"),
            Ok(Err(e)) => {
                body["database"] = Value::from("error");
                reasons.push(format!("database: {e}"));
            }
            Err(_) => {
                body["database"] = Value::from("timeout");
                reasons.push("database: no answer within 2 s".to_owned());
            }
        }
        // It may answer reads and still refuse writes (a full disk).
        let writes = oracle.shared.writes.problems();
        if !writes.is_empty() {
            body["database"] = Value::from("write_failing");
            reasons.extend(writes);
        }
    }
    let ready = reasons.is_empty();
    body["ready"] = Value::from(ready);
    body["reasons"] = Value::from(reasons);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Per feed: `status` (`starting`, `ok`, `stale`, `waiting`), `reason` when not ok, and
/// `lastReportMsAgo` (null before this node saw one). Readiness does not depend on it: a feed
/// can be stale for reasons outside the node (every price source down).
fn feeds_health(oracle: &OracleApi, running: &[(FeedConfig, ConfigDigest)]) -> Value {
    let health = oracle.shared.status.health();
    let mut feeds = serde_json::Map::new();
    for feed in &oracle.configured {
        let entry = match health.get(&feed.name) {
            Some((h, last_report)) if running.iter().any(|(f, _)| f.name == feed.name) => {
                let mut entry = json!({
                    "status": h.as_str(),
                    "lastReportMsAgo": last_report
                        .and_then(|t| t.elapsed().ok())
                        .map(|d| d.as_millis() as u64),
                });
                if let Some(reason) = h.reason() {
                    entry["reason"] = Value::from(reason);
                }
                entry
            }
            _ => json!({
                "status": "waiting",
                "reason": "waiting for its contract configuration",
                "lastReportMsAgo": null,
            }),
        };
        feeds.insert(feed.name.clone(), entry);
    }
    Value::Object(feeds)
}

fn aggregator_health(oracle: &OracleApi) -> (Value, Option<String>) {
    let status = oracle.observer.status();
    let ago = |at: Option<Instant>| at.map(|t| t.elapsed().as_millis() as u64);
    let value = json!({
        "requests": status.requests,
        "failures": status.failures,
        "lastSuccessMsAgo": ago(status.last_success),
        "lastError": status.last_error,
    });
    // No request yet is not a failure: rounds may simply not have started.
    let problem = status
        .last_error
        .as_ref()
        .map(|e| format!("price aggregator: {e}"));
    (value, problem)
}

async fn feeds(State(api): State<Api>) -> Response {
    let oracle = match bootstrap_only(&api) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let status = oracle.shared.status.feeds();
    let mut out = Vec::new();
    for (feed, digest) in &oracle.running() {
        let position = status.get(&feed.name);
        let latest = oracle
            .shared
            .contract
            .latest(&feed.name)
            .await
            .ok()
            .flatten();
        out.push(json!({
            "name": feed.name,
            "decimals": feed.decimals,
            "contractAddress": feed.contract_address.to_string(),
            "alphaPPB": feed.alpha_ppb,
            "heartbeatMs": feed.heartbeat.as_millis() as u64,
            "configDigest": digest.to_string(),
            "epoch": position.map(|p| p.epoch),
            "leader": position.map(|p| p.leader),
            // With a chain, `latest` is what the contract holds; without, the DON's report.
            "latestOnChain": oracle.shared.transmissions.is_some(),
            "latest": latest.map(|l| json!({
                "answer": format_decimal(l.answer, feed.decimals),
                "answerInt192": l.answer.to_string(),
                "epoch": l.epoch,
                "round": l.round,
                "finalizedAtMs": ms(l.timestamp),
            })),
        }));
    }
    Json(json!({ "feeds": out })).into_response()
}

async fn latest(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let oracle = match bootstrap_only(&api) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let running = oracle.running();
    let Some((feed, digest)) = running.iter().find(|(f, _)| f.name == name) else {
        if oracle.configured.iter().any(|f| f.name == name) {
            return error(
                StatusCode::NOT_FOUND,
                format!("feed {name} has not started: its contract configuration is not read yet"),
                None,
            );
        }
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown feed {:?}", excerpt(&name)),
            Some("name"),
        );
    };
    let report = match oracle.store.latest_finalized(&feed.name, *digest).await {
        Ok(Some(report)) => report,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("feed {} has no finalized report yet", feed.name),
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the latest report");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node's database is unavailable",
                None,
            );
        }
    };
    let node_of = |i: u8| oracle.shared.nodes.get(usize::from(i)).copied();
    let observations: Vec<Value> = report
        .observations
        .iter()
        .map(|o| {
            json!({
                "oracle": o.observer,
                "node": node_of(o.observer),
                "value": format_decimal(o.value, feed.decimals),
                "valueInt192": o.value.to_string(),
            })
        })
        .collect();
    let signers: Vec<Value> = report
        .signatures
        .iter()
        .map(|s| {
            recover_signer(&report.report, s)
                .map(|a| Value::from(a.to_string()))
                .unwrap_or(Value::Null)
        })
        .collect();
    Json(json!({
        "feed": feed.name,
        "configDigest": digest.to_string(),
        "epoch": report.epoch,
        "round": report.round,
        "answer": format_decimal(report.answer, feed.decimals),
        "answerInt192": report.answer.to_string(),
        "decimals": feed.decimals,
        "observations": observations,
        "signers": signers,
        "signatures": report.signatures.iter().map(|s| format!("0x{}", hex::encode(s))).collect::<Vec<_>>(),
        "report": format!("0x{}", hex::encode(&report.report)),
        "finalizedAtMs": ms(report.finalized_at),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct RoundsQuery {
    feed: Option<String>,
    limit: Option<String>,
}

async fn rounds(State(api): State<Api>, Query(query): Query<RoundsQuery>) -> Response {
    let oracle = match bootstrap_only(&api) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_ROUNDS,
        Some(Ok(n)) if (1..=MAX_ROUNDS).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be an integer from 1 to {MAX_ROUNDS}"),
                Some("limit"),
            )
        }
    };
    let feed = query.feed.as_deref().filter(|f| !f.is_empty());
    if let Some(name) = feed {
        if !oracle.configured.iter().any(|f| f.name == name) {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown feed {:?}", excerpt(name)),
                Some("feed"),
            );
        }
    }
    let rounds = oracle.shared.status.rounds(feed, limit);
    Json(json!({ "rounds": rounds })).into_response()
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// At most 64 characters of client input go back into an error message.
fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

/// An int192 with `decimals` implied decimal places, exactly (`123456789`, 8 → `1.23456789`).
pub fn format_decimal(value: I192, decimals: u8) -> String {
    let text = value.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", text.as_str()),
    };
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = decimals + 1);
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int192_answers_print_as_exact_decimals() {
        let v = |x: i64| I192::try_from(x).unwrap();
        assert_eq!(format_decimal(v(123456789), 8), "1.23456789");
        assert_eq!(format_decimal(v(5), 8), "0.00000005");
        assert_eq!(format_decimal(v(-150000000), 8), "-1.5");
        assert_eq!(format_decimal(v(42), 0), "42");
        assert_eq!(format_decimal(v(0), 2), "0");
        assert_eq!(
            format_decimal(I192::MAX, 18),
            "3138550867693340381917894711603833208051.177722232017256447"
        );
    }
}
