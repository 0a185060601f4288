//! Gathers a [`Snapshot`]: files read on the blocking pool, every HTTP request at once, each
//! bounded by the collector's timeout, so one silent service costs one timeout, not the picture.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::Value;

use super::prom_text::samples;
use super::{
    Answer, AttestationView, Balance, FeedHealthView, FeedInfo, FeedQuote, MemberView, NodeFeed,
    NodeHealth, NodeView, Report, Role, ServiceView, Snapshot, SourceQuote,
};
use crate::attestation::boot::read_document;
use crate::attestation::identity_file;
use crate::config::schema::nodes::BOOTSTRAP_NODE;
use crate::config::Config;
use crate::paths::Root;
use crate::service::state::{ServiceState, StateDir};

const CPU: &str = "enclave_service_cpu_usage_cores";
const MEMORY: &str = "enclave_service_resident_memory_bytes";
const BALANCE: &str = "enclave_chain_transmitter_balance_wei";
/// Latest-report requests in flight per node.
const REPORTS_IN_FLIGHT: usize = 4;
/// Larger answers are not ours; a local endpoint never sends that much.
const MAX_BODY_BYTES: usize = 4 << 20;

pub struct Collector {
    root: Root,
    config: Arc<Config>,
    http: reqwest::Client,
    /// The nodes this enclave runs: in a DON across enclaves, its member's only (the others'
    /// APIs are not here).
    nodes: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create the HTTP client: {0}")]
pub struct CollectorError(String);

impl Collector {
    /// `timeout` bounds each request to a local endpoint.
    pub fn new(root: Root, config: Arc<Config>, timeout: Duration) -> Result<Self, CollectorError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| CollectorError(e.without_url().to_string()))?;
        // Without the operator key (an outsider's `enclave status`), every node is asked.
        let member = crate::attestation::member_key::Membership::of(config.don.as_ref())
            .ok()
            .flatten();
        let nodes =
            crate::attestation::member_key::Membership::nodes_here(member.as_ref(), &config);
        Ok(Self {
            root,
            config,
            http,
            nodes,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub async fn collect(&self) -> Snapshot {
        let root = self.root.clone();
        let files =
            tokio::task::spawn_blocking(move || (read_services(&root), read_attestation(&root)));
        let config = &self.config;
        let resources = self.get(self.local(config.ports.process_metrics), "/metrics");
        let aggregator = self.aggregator();
        let nodes = join_all(self.nodes.iter().map(|n| self.node(*n)));
        let balances = async {
            if config.chain_options.enabled {
                Some(self.balances().await)
            } else {
                None
            }
        };
        let members = async {
            match &config.don {
                Some(_) => Some(self.members().await),
                None => None,
            }
        };
        let (files, resources, aggregator, nodes, balances, members) =
            tokio::join!(files, resources, aggregator, nodes, balances, members);
        let (services, attestation) = files.unwrap_or_else(|e| {
            let reason = format!("reading the state files failed: {e}");
            (Err(reason.clone()), Err(reason))
        });
        let (services, resources_error) = with_resources(services, resources);
        Snapshot {
            taken_at: SystemTime::now(),
            services,
            resources_error,
            attestation,
            aggregator,
            nodes,
            balances,
            feeds: config
                .feeds
                .iter()
                .map(|f| FeedInfo {
                    name: f.name.clone(),
                    heartbeat: f.heartbeat,
                })
                .collect(),
            members,
        }
    }

    /// The other members' standing from the supervisor's metrics (configured names only).
    async fn members(&self) -> Result<BTreeMap<String, MemberView>, String> {
        let text = self
            .get(self.local(self.config.ports.supervisor), "/metrics")
            .await?;
        let names = [
            "enclave_don_member_admitted",
            "enclave_don_member_unreachable",
        ];
        let configured: Vec<&str> = self
            .config
            .don
            .iter()
            .flat_map(|d| d.members.iter().map(|m| m.name.as_str()))
            .collect();
        let mut out: BTreeMap<String, MemberView> = BTreeMap::new();
        for sample in samples(&text, &names) {
            let Some(member) = sample.labels.get("member") else {
                continue;
            };
            if !configured.contains(&member.as_str()) {
                continue;
            }
            let view = out.entry(member.clone()).or_insert(MemberView {
                admitted: false,
                unreachable: false,
            });
            match sample.name.as_str() {
                "enclave_don_member_admitted" => view.admitted = sample.value == 1.0,
                _ => view.unreachable = sample.value == 1.0,
            }
        }
        Ok(out)
    }

    fn local(&self, port: u16) -> SocketAddr {
        SocketAddr::new(reachable(self.config.ports.listen_host), port)
    }

    /// The body of a 2xx answer (or of a 503 from `/health`, which carries the reasons).
    async fn get(&self, addr: SocketAddr, path: &str) -> Result<String, String> {
        let response = self
            .http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        let readable = status.is_success()
            || (path == "/health" && status == reqwest::StatusCode::SERVICE_UNAVAILABLE);
        if !readable {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(describe)?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err("answer too large".to_owned());
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn get_json(&self, addr: SocketAddr, path: &str) -> Result<Value, String> {
        let text = self.get(addr, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("malformed answer: {e}"))
    }

    async fn aggregator(&self) -> Result<BTreeMap<String, FeedQuote>, String> {
        let config = &self.config;
        let addr = SocketAddr::new(reachable(config.aggregator.host), config.aggregator.port);
        let names: Vec<&str> = config.feeds.iter().map(|f| f.name.as_str()).collect();
        let mut out = BTreeMap::new();
        for chunk in names.chunks(config.aggregator.max_pairs_per_request.max(1)) {
            let path = format!("/quotes/batch?pairs={}", chunk.join(","));
            let body = self.get_json(addr, &path).await?;
            for name in chunk {
                if let Some(quote) = body["quotes"].get(*name).map(feed_quote) {
                    out.insert((*name).to_owned(), quote);
                }
            }
        }
        Ok(out)
    }

    async fn node(&self, node: u32) -> NodeView {
        let addr = self.local(self.config.ports.node_api_base + node as u16);
        let role = if node == BOOTSTRAP_NODE {
            Role::Bootstrap
        } else {
            Role::Oracle
        };
        let health = async {
            self.get_json(addr, "/health")
                .await
                .map(|v| node_health(&v))
        };
        let feeds = async {
            match role {
                Role::Bootstrap => Ok(BTreeMap::new()),
                Role::Oracle => self.node_feeds(addr).await,
            }
        };
        let (health, feeds) = tokio::join!(health, feeds);
        NodeView {
            node,
            role,
            health,
            feeds,
        }
    }

    async fn node_feeds(&self, addr: SocketAddr) -> Result<BTreeMap<String, NodeFeed>, String> {
        let list = self.get_json(addr, "/v1/feeds").await?;
        let running: Vec<&Value> = list["feeds"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        // A node reads each report from its database and recovers its signers: a few at a time.
        let reports: Vec<_> = futures_util::stream::iter(running.iter().map(|f| async move {
            let name = f["name"].as_str().unwrap_or_default();
            if !self.config.feeds.iter().any(|c| c.name == name) {
                return None;
            }
            // 404 before the first report: no report, not an error.
            let report = self
                .get_json(addr, &format!("/v1/feeds/{name}/latest"))
                .await
                .ok()
                .and_then(|v| report(&v));
            Some((name.to_owned(), node_feed(f, report)))
        }))
        .buffer_unordered(REPORTS_IN_FLIGHT)
        .collect()
        .await;
        Ok(reports.into_iter().flatten().collect())
    }

    async fn balances(&self) -> Result<Vec<Balance>, String> {
        let addr = self.local(self.config.ports.node_api_base + BOOTSTRAP_NODE as u16);
        let text = self.get(addr, "/metrics").await?;
        Ok(samples(&text, &[BALANCE])
            .into_iter()
            .filter_map(|s| {
                Some(Balance {
                    node: s.labels.get("node")?.parse().ok()?,
                    address: s.labels.get("address")?.clone(),
                    wei: s.value,
                })
            })
            .collect())
    }
}

/// A wildcard bind address is reached through loopback.
fn reachable(host: IpAddr) -> IpAddr {
    if host.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        "not answering (connection refused)".to_owned()
    } else {
        format!("unreachable: {}", e.without_url())
    }
}

fn read_services(root: &Root) -> Result<Vec<ServiceState>, String> {
    StateDir::new(root)
        .load()
        .map(|(states, _page)| states)
        .map_err(|e| e.to_string())
}

fn read_attestation(root: &Root) -> Result<Option<AttestationView>, String> {
    let path = identity_file(root);
    match read_document(&path) {
        Ok(None) => Ok(None),
        Ok(Some(document)) => Ok(Some(AttestationView {
            status: document.attestation.status.as_str().to_owned(),
            reason: document.attestation.reason.clone(),
            quote_sha256: document
                .attestation
                .quote
                .as_ref()
                .map(|q| q.sha256.clone()),
        })),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn with_resources(
    services: Result<Vec<ServiceState>, String>,
    metrics: Result<String, String>,
) -> (Result<Vec<ServiceView>, String>, Option<String>) {
    let (text, error) = match metrics {
        Ok(text) => (text, None),
        Err(e) => (String::new(), Some(format!("process-metrics: {e}"))),
    };
    let all = samples(&text, &[CPU, MEMORY]);
    let value = |name: &str, service: &str| {
        all.iter()
            .find(|s| {
                s.name == name && s.labels.get("service").map(String::as_str) == Some(service)
            })
            .map(|s| s.value)
    };
    let services = services.map(|states| {
        states
            .into_iter()
            .map(|state| ServiceView {
                cpu_cores: value(CPU, &state.name),
                memory_bytes: value(MEMORY, &state.name),
                state,
            })
            .collect()
    });
    (services, error)
}

fn decimal(v: &Value) -> Option<Decimal> {
    let text = v.as_str()?;
    Decimal::from_str(text).ok()
}

fn feed_quote(v: &Value) -> FeedQuote {
    FeedQuote {
        status: v["status"].as_str().unwrap_or("unknown").to_owned(),
        price: decimal(&v["price"]),
        reason: v["reason"].as_str().map(str::to_owned),
        sources: v["sources"]
            .as_array()
            .map(|sources| {
                sources
                    .iter()
                    .map(|s| SourceQuote {
                        source: s["source"].as_str().unwrap_or("?").to_owned(),
                        used: s["used"].as_bool().unwrap_or(false),
                        reason: s["reason"].as_str().map(str::to_owned),
                        age_ms: s["ageMs"].as_u64(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn node_health(v: &Value) -> NodeHealth {
    let feeds = v["feeds"]
        .as_object()
        .map(|feeds| {
            feeds
                .iter()
                .map(|(name, f)| {
                    (
                        name.clone(),
                        FeedHealthView {
                            status: f["status"].as_str().unwrap_or("unknown").to_owned(),
                            reason: f["reason"].as_str().map(str::to_owned),
                            last_report_ms_ago: f["lastReportMsAgo"].as_u64(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    NodeHealth {
        ready: v["ready"].as_bool().unwrap_or(false),
        reasons: v["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        peers_connected: v["peersConnected"].as_u64().unwrap_or(0),
        peers_expected: v["peersExpected"].as_u64().unwrap_or(0),
        feeds,
    }
}

fn answer(v: &Value, at_field: &str) -> Option<Answer> {
    Some(Answer {
        answer: decimal(&v["answer"])?,
        epoch: u32::try_from(v["epoch"].as_u64()?).ok()?,
        round: u8::try_from(v["round"].as_u64()?).ok()?,
        at_ms: v[at_field].as_u64()?,
    })
}

fn report(v: &Value) -> Option<Report> {
    let mut observations: Vec<Decimal> = v["observations"]
        .as_array()?
        .iter()
        .filter_map(|o| decimal(&o["value"]))
        .collect();
    observations.sort();
    Some(Report {
        answer: answer(v, "finalizedAtMs")?,
        observations,
    })
}

fn node_feed(v: &Value, report: Option<Report>) -> NodeFeed {
    NodeFeed {
        epoch: v["epoch"].as_u64().and_then(|e| u32::try_from(e).ok()),
        leader: v["leader"].as_u64().and_then(|l| u32::try_from(l).ok()),
        latest_on_chain: v["latestOnChain"].as_bool().unwrap_or(false),
        latest: answer(&v["latest"], "finalizedAtMs"),
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_answers_are_read_into_the_snapshot_model() {
        let health = node_health(&json!({
            "node": 2, "role": "oracle", "live": true, "ready": false,
            "reasons": ["0 of 3 peers connected, 2 needed for a quorum"],
            "peersConnected": 0, "peersExpected": 3,
            "feeds": {"BTC-USD": {"status": "stale", "reason": "no report for 90 s: x", "lastReportMsAgo": null}}
        }));
        assert!(!health.ready);
        assert_eq!(health.peers_expected, 3);
        assert_eq!(health.feeds["BTC-USD"].status, "stale");
        assert_eq!(
            health.feeds["BTC-USD"].reason.as_deref(),
            Some("no report for 90 s: x")
        );
        let r = report(&json!({
            "answer": "67123.45", "epoch": 3, "round": 2, "finalizedAtMs": 1_700_000_000_000_u64,
            "observations": [{"value": "67124"}, {"value": "67120.1"}, {"value": "67123.45"}]
        }))
        .expect("report");
        assert_eq!(r.answer.answer, Decimal::from_str("67123.45").unwrap());
        assert_eq!(
            r.observations,
            ["67120.1", "67123.45", "67124"].map(|s| Decimal::from_str(s).unwrap())
        );
        let feed = node_feed(
            &json!({"name": "BTC-USD", "epoch": 3, "leader": 4, "latestOnChain": true,
                    "latest": {"answer": "67000", "epoch": 2, "round": 1, "finalizedAtMs": 5}}),
            Some(r),
        );
        assert!(feed.latest_on_chain);
        assert_eq!(feed.latest.as_ref().map(|a| a.round), Some(1));
        let quote = feed_quote(
            &json!({"status": "unavailable", "reason": "0 usable source(s)",
            "sources": [{"source": "binance", "used": false, "reason": "unreachable"}]}),
        );
        assert_eq!(quote.price, None);
        assert_eq!(quote.sources[0].reason.as_deref(), Some("unreachable"));
    }
}
