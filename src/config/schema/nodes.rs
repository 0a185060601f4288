//! The node set (`totalNodes`, `bootstrapNodes`, `nodesList`, `primaryNodes`) and the ports
//! derived from it.
//!
//! Node 1 is the bootstrap (peer discovery, no consensus); nodes 2..N are the oracles, so N-1 is
//! OCR's n and must be at least 4 (n >= 3f+1 with f >= 1) and at most 31.

use serde_json::Value;

use super::consensus::MAX_ORACLES;
use super::LISTEN_HOST_MESSAGE;
use crate::config::defaults::ports;
use crate::config::reader::{unsigned, Fields, Report};

pub const BOOTSTRAP_NODE: u32 = 1;

/// A node's role as the identity document and `enclave keys` state it.
pub fn role(node: u32) -> &'static str {
    if node == BOOTSTRAP_NODE {
        "bootstrap"
    } else {
        "oracle"
    }
}
pub const MIN_ORACLES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodesConfig {
    /// N: node 1 plus the oracles.
    pub total: u32,
    /// `nodesList` as given (validated to be exactly 1..=N).
    pub list: Vec<u32>,
    /// `primaryNodes` as given (validated to be a subset of the nodes); kept for compatibility,
    /// it has no effect.
    pub primary: Vec<u32>,
}

impl NodesConfig {
    /// Node numbers that take part in consensus: 2..=N.
    pub fn oracles(&self) -> Vec<u32> {
        (BOOTSTRAP_NODE + 1..=self.total).collect()
    }

    /// Every node number: 1..=N.
    pub fn all(&self) -> Vec<u32> {
        (1..=self.total).collect()
    }
}

/// Local ports. The node API of node i is `node_api_base + i`, its P2P port `node_p2p_base + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortsConfig {
    /// The address the supervisor's, the process-metrics exporter's and the node APIs' HTTP
    /// endpoints bind (127.0.0.1 unless configured; 0.0.0.0 lets Docker publish them).
    pub listen_host: std::net::IpAddr,
    /// The supervisor's own /metrics and /healthz.
    pub supervisor: u16,
    pub process_metrics: u16,
    /// The alerter's own /metrics and /healthz.
    pub alerts: u16,
    pub node_api_base: u16,
    pub node_p2p_base: u16,
}

pub fn read_nodes(r: &mut Report, f: &mut Fields<'_>) -> (NodesConfig, PortsConfig) {
    let total = read_total(r, f);
    let bootstrap = f
        .get("bootstrapNodes")
        .and_then(|v| index_list(r, &f.path_of("bootstrapNodes"), v));
    let list = f
        .get("nodesList")
        .and_then(|v| index_list(r, &f.path_of("nodesList"), v));
    let primary = f
        .get("primaryNodes")
        .and_then(|v| index_list(r, &f.path_of("primaryNodes"), v));
    let all: Vec<u32> = (1..=total.unwrap_or(0)).collect();
    if let Some(b) = &bootstrap {
        if b.as_slice() != [BOOTSTRAP_NODE] {
            r.error(
                f.path_of("bootstrapNodes"),
                "must be \"1\": node 1 is the bootstrap node, nodes 2..N are oracles",
            );
        }
    }
    if let (Some(list), Some(total)) = (&list, total) {
        check_list_is_all_nodes(r, &f.path_of("nodesList"), list, total);
    }
    // Checked against 1..=N rather than nodesList, so a bad nodesList is reported once, not twice.
    if let (Some(primary), Some(total)) = (&primary, total) {
        check_subset(r, &f.path_of("primaryNodes"), primary, total);
    }
    let list = list.unwrap_or_else(|| all.clone());
    let ports = f.object(r, "ports");
    let ports = read_ports(r, ports);
    let nodes = NodesConfig {
        total: total.unwrap_or(0),
        primary: primary.unwrap_or_else(|| list.clone()),
        list,
    };
    (nodes, ports)
}

fn read_total(r: &mut Report, f: &mut Fields<'_>) -> Option<u32> {
    let path = f.path_of("totalNodes");
    let Some(value) = f.get("totalNodes") else {
        r.error(path, "is required");
        return None;
    };
    let n = unsigned(r, &path, value)?;
    let min = MIN_ORACLES as u128 + 1;
    let max = MAX_ORACLES as u128 + 1;
    if n < min {
        r.error(path, format!("must be at least {min}: node 1 is the bootstrap and OCR needs at least {MIN_ORACLES} oracles (n >= 3f+1, f >= 1)"));
        None
    } else if n > max {
        r.error(
            path,
            format!("must be at most {max}: OCR allows at most {MAX_ORACLES} oracles"),
        );
        None
    } else {
        u32::try_from(n).ok()
    }
}

/// Node numbers as the reference writes them (`"1 2 3"`), or as a number or JSON array.
fn index_list(r: &mut Report, path: &str, value: &Value) -> Option<Vec<u32>> {
    let parsed: Option<Vec<u32>> = match value {
        Value::String(s) => s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<u32>().ok().filter(|n| *n >= 1))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n >= 1)
            })
            .collect(),
        Value::Number(_) => unsigned(&mut Report::default(), path, value)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .map(|n| vec![n]),
        _ => None,
    };
    match parsed {
        Some(list) if !list.is_empty() => Some(list),
        _ => {
            r.error(
                path,
                "must be node numbers separated by spaces, such as \"1 2 3 4 5\"",
            );
            None
        }
    }
}

fn check_list_is_all_nodes(r: &mut Report, path: &str, list: &[u32], total: u32) {
    let mut seen = std::collections::BTreeSet::new();
    for &n in list {
        if n > total {
            r.error(path, format!("node {n} is beyond totalNodes ({total})"));
        } else if !seen.insert(n) {
            r.error(path, format!("node {n} is listed twice"));
        }
    }
    let missing: Vec<String> = (1..=total)
        .filter(|n| !seen.contains(n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        r.error(
            path,
            format!(
                "must list every node 1..{total} (totalNodes); missing {}",
                missing.join(" ")
            ),
        );
    }
}

fn check_subset(r: &mut Report, path: &str, subset: &[u32], total: u32) {
    let mut seen = std::collections::BTreeSet::new();
    for &n in subset {
        if n > total {
            r.error(
                path,
                format!("node {n} is not in nodesList (nodes are 1..{total})"),
            );
        } else if !seen.insert(n) {
            r.error(path, format!("node {n} is listed twice"));
        }
    }
}

fn read_ports(r: &mut Report, f: Option<Fields<'_>>) -> PortsConfig {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.ports"));
    let listen_host = f.ip_addr(r, "listenHost", ports::LISTEN_HOST, LISTEN_HOST_MESSAGE);
    let ports = PortsConfig {
        listen_host,
        supervisor: f.port(r, "supervisor", ports::SUPERVISOR),
        process_metrics: f.port(r, "processMetrics", ports::PROCESS_METRICS),
        alerts: f.port(r, "alerts", ports::ALERTS),
        node_api_base: f.port(r, "nodeApiBase", ports::NODE_API_BASE),
        node_p2p_base: f.port(r, "nodeP2pBase", ports::NODE_P2P_BASE),
    };
    f.finish(r, &[]);
    ports
}
