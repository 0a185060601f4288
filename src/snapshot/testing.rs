//! A healthy snapshot of a small enclave (two oracles, two feeds, a chain), for the tables of the
//! live view and of the alert rules; each test changes what it is about.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rust_decimal::Decimal;

use super::*;
use crate::service::state::{Exit, Kind, ServiceState, Status};

/// 2023-11-14T22:13:20Z.
pub const NOW_MS: u64 = 1_700_000_000_000;

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

pub fn service(name: &str, kind: Kind, status: Status, restarts: u64) -> ServiceView {
    let mut state = ServiceState::new(name, kind);
    state.status = status;
    state.restart_count = restarts;
    if status == Status::Up {
        state.pid = Some(1000 + name.len() as u32);
    }
    ServiceView {
        state,
        cpu_cores: (kind == Kind::Longrun).then_some(0.025),
        memory_bytes: (kind == Kind::Longrun).then_some(20.0 * 1_048_576.0),
    }
}

pub fn answer(value: &str, epoch: u32, round: u8, age_s: u64) -> Answer {
    Answer {
        answer: dec(value),
        epoch,
        round,
        at_ms: NOW_MS - age_s * 1000,
    }
}

pub fn report(value: &str, epoch: u32, round: u8, age_s: u64, observations: &[&str]) -> Report {
    Report {
        answer: answer(value, epoch, round, age_s),
        observations: observations.iter().map(|o| dec(o)).collect(),
    }
}

pub fn ok_quote(price: &str, sources: &[&str]) -> FeedQuote {
    FeedQuote {
        status: "ok".into(),
        price: Some(dec(price)),
        reason: None,
        sources: sources
            .iter()
            .map(|s| SourceQuote {
                source: (*s).into(),
                used: true,
                reason: None,
                age_ms: Some(800),
            })
            .collect(),
    }
}

fn feed_health(status: &str) -> FeedHealthView {
    FeedHealthView {
        status: status.into(),
        reason: None,
        last_report_ms_ago: Some(12_000),
    }
}

pub fn oracle(node: u32) -> NodeView {
    let feeds: BTreeMap<String, NodeFeed> = [
        ("BTC-USD", "67123.45", &["67120.1", "67123.45", "67124"][..]),
        ("USDC-USD", "1.0001", &["1", "1.0001", "1.0002"][..]),
    ]
    .into_iter()
    .map(|(name, value, observations)| {
        (
            name.to_owned(),
            NodeFeed {
                epoch: Some(3),
                leader: Some(2),
                latest_on_chain: true,
                latest: Some(answer(value, 3, 2, 10)),
                report: Some(report(value, 3, 2, 12, observations)),
            },
        )
    })
    .collect();
    NodeView {
        node,
        role: Role::Oracle,
        health: Ok(NodeHealth {
            ready: true,
            reasons: Vec::new(),
            peers_connected: 1,
            peers_expected: 1,
            feeds: [("BTC-USD", "ok"), ("USDC-USD", "ok")]
                .into_iter()
                .map(|(n, s)| (n.to_owned(), feed_health(s)))
                .collect(),
        }),
        feeds: Ok(feeds),
    }
}

pub fn sample() -> Snapshot {
    let mut postgres = service("postgres", Kind::Longrun, Status::Up, 1);
    postgres.state.last_exit = Some(Exit::Signal(9));
    postgres.state.last_restart = Some(NOW_MS / 1000 - 60);
    Snapshot {
        taken_at: UNIX_EPOCH + Duration::from_millis(NOW_MS),
        services: Ok(vec![
            service("postgres-bootstrap", Kind::Oneshot, Status::Finished, 0),
            postgres,
            service("price-aggregator", Kind::Longrun, Status::Up, 0),
            service("node-1", Kind::Longrun, Status::Up, 0),
            service("node-2", Kind::Longrun, Status::Up, 0),
            service("node-3", Kind::Longrun, Status::Up, 0),
        ]),
        resources_error: None,
        attestation: Ok(Some(AttestationView {
            status: "quoted".into(),
            reason: None,
            quote_sha256: Some("ab12".into()),
        })),
        aggregator: Ok([
            (
                "BTC-USD".to_owned(),
                ok_quote("67123.45", &["binance", "kraken"]),
            ),
            ("USDC-USD".to_owned(), ok_quote("1.0001", &["coinbase"])),
        ]
        .into_iter()
        .collect()),
        nodes: vec![
            NodeView {
                node: 1,
                role: Role::Bootstrap,
                health: Ok(NodeHealth {
                    ready: true,
                    reasons: Vec::new(),
                    peers_connected: 2,
                    peers_expected: 2,
                    feeds: BTreeMap::new(),
                }),
                feeds: Ok(BTreeMap::new()),
            },
            oracle(2),
            oracle(3),
        ],
        balances: Some(Ok(vec![
            Balance {
                node: 2,
                address: "0x00000000000000000000000000000000000000a2".into(),
                wei: 5e16,
            },
            Balance {
                node: 3,
                address: "0x00000000000000000000000000000000000000a3".into(),
                wei: 5e16,
            },
        ])),
        feeds: vec![
            FeedInfo {
                name: "BTC-USD".into(),
                heartbeat: Duration::from_secs(3600),
            },
            FeedInfo {
                name: "USDC-USD".into(),
                heartbeat: Duration::from_secs(3600),
            },
        ],
        members: None,
    }
}

pub fn at(snapshot: &mut Snapshot, unix_ms: u64) {
    snapshot.taken_at = SystemTime::UNIX_EPOCH + Duration::from_millis(unix_ms);
}
