//! What an end-to-end run needs besides the image: configurations built from the example, the
//! secrets they carry (which no log may show), signing, and host ports for publishing.

use std::net::TcpListener;
use std::path::Path;

use enclave::config::signature::{self, PrivateKey};
use serde_json::{json, Value};

use crate::common::{dev_private_key_path, example_path, read_json, repo};

/// Nodes in the example configuration (node 1 the bootstrap, 2..=5 the oracles).
pub const NODES: u32 = 5;

/// The container ports scripts/run-docker.sh publishes for the example's port layout.
pub fn published_ports() -> Vec<u16> {
    let mut ports = vec![3000, 3002, 3003];
    ports.extend((1..=NODES).map(|i| 6600 + i as u16));
    ports
}

/// An offset such that every published port + offset is free on 127.0.0.1 (20000..32000, below
/// the ephemeral range).
pub fn free_port_offset() -> u16 {
    for _ in 0..200 {
        let offset = 17_000 + fastrand::u16(..8_000);
        let held: Vec<_> = published_ports()
            .into_iter()
            .map_while(|p| TcpListener::bind(("127.0.0.1", p + offset)).ok())
            .collect();
        if held.len() == published_ports().len() {
            return offset;
        }
    }
    panic!("no free range of host ports to publish on");
}

/// Values that only the configuration knows and that must never show up in a log or a metric.
pub struct Secrets {
    pub binance_api_key: String,
    pub metrics_password: String,
}

impl Secrets {
    pub fn new() -> Self {
        let random = || {
            (0..24)
                .map(|_| fastrand::alphanumeric())
                .collect::<String>()
        };
        Self {
            binance_api_key: format!("e2eApiKey{}", random()),
            metrics_password: format!("e2ePassword{}", random()),
        }
    }
}

/// The example configuration (its `solution`, unsigned) made to run against host-side
/// services (reached as `host.docker.internal`): one Binance-format price server for every
/// feed, fast consensus, and `edit` on top.
pub fn solution(price_server_port: u16, secrets: &Secrets, edit: impl FnOnce(&mut Value)) -> Value {
    let mut document = read_json(&example_path());
    let mut s = document["solution"].take();
    s.as_object_mut().expect("object").remove("signature");
    s["chainlinkNodeName"] = json!("enclave-e2e");
    // The dev chain's id: a private chain, so the fast consensus timings below are allowed.
    s["chainlinkChainId"] = json!(1337);
    s["supervisor"] = json!({"restartBackoffInitialMs": 100, "restartBackoffMaxMs": 1000});
    s["consensus"] = json!({"deltaProgressMs": 3000, "deltaResendMs": 1000, "deltaRoundMs": 1000,
                            "deltaGraceMs": 200, "deltaStageMs": 2000, "rMax": 3});
    s["telemetry"]["targets"] = json!([]);
    s["priceAggregatorConfig"]["metricsPush"]["enabled"] = json!(false);
    s["priceAggregatorConfig"]["metricsPush"]["basicAuth"]["password"] =
        json!(secrets.metrics_password);
    s["priceAggregatorConfig"]["pairsTtl"] = json!([]);
    s["priceAggregatorConfig"]["sources"] = json!({
        "binance": {
            "baseUrl": format!("http://host.docker.internal:{price_server_port}"),
            "apiKey": secrets.binance_api_key,
            "ttl": 1000, "rps": null, "refetch": true,
        }
    });
    let feeds = [
        (
            "BTC-USD",
            "BTC",
            "0x00000000000000000000000000000000000b7c01",
        ),
        (
            "ETH-USD",
            "ETH",
            "0x00000000000000000000000000000000000e7c02",
        ),
    ];
    s["feeds"] = feeds
        .iter()
        .map(|(name, base, address)| {
            json!({"name": name, "decimals": 8, "contractAddress": address,
                   "alphaPPB": 5_000_000, "heartbeatMs": 60_000,
                   "legs": [{"source": "binance", "base": base, "quote": "USDT"}]})
        })
        .collect();
    edit(&mut s);
    s
}

/// Writes `{"solution": solution}` to `path`, signed with the development key when `sign`.
pub fn write_config(path: &Path, solution: &Value, sign: bool) {
    let mut solution = solution.clone();
    if sign {
        let key_text = std::fs::read_to_string(dev_private_key_path()).expect("dev key");
        let key = PrivateKey::from_pkcs8_text(&key_text).expect("dev key parses");
        let signed = signature::sign(&solution, &key).expect("sign");
        solution["signature"] = Value::String(signed.signature_b64);
    }
    let text = serde_json::to_string_pretty(&json!({ "solution": solution })).expect("JSON");
    std::fs::write(path, text).expect("write the configuration");
}

/// Where scripts/run-docker.sh keeps the signed copy for container `name`.
pub fn run_docker_workdir(name: &str) -> std::path::PathBuf {
    repo().join(".local/docker").join(name)
}
