//! Rules that span sections: ports, feeds against sources, consensus against the node set and
//! the chain. Each rule reports at the path of the field to change.

use std::collections::BTreeMap;

use super::reader::Report;
use super::schema::attestation::ProviderChoice;
use super::schema::consensus::chain_minimums;
use super::schema::Config;

pub fn check(r: &mut Report, c: &Config) {
    check_ports(r, c);
    check_feeds(r, c);
    check_consensus(r, c);
    check_alerts(r, c);
    check_don(r, c);
    if c.telemetry.targets.is_empty() && c.aggregator.metrics_push.is_none() {
        r.warn(
            "solution.telemetry.targets",
            "no push target: inside a TEE nothing can be scraped, so no metrics will leave the enclave",
        );
    }
}

fn check_ports(r: &mut Report, c: &Config) {
    let mut used: BTreeMap<u32, String> = BTreeMap::new();
    let mut claim = |r: &mut Report, port: u32, path: &str, what: String| {
        if port == 0 || port > 65535 {
            r.error(
                path,
                format!("{what} would be port {port}, outside 1..65535"),
            );
        } else if let Some(other) = used.get(&port) {
            r.error(
                path,
                format!("{what} uses port {port}, already used by {other}"),
            );
        } else {
            used.insert(port, what);
        }
    };
    // The fixed ports first, in this order, so that a clash names the earlier service.
    let fixed = [
        (c.postgres.port, "solution.pgPort", "PostgreSQL"),
        (
            c.aggregator.port,
            "solution.priceAggregatorConfig.port",
            "the price aggregator",
        ),
        (
            c.ports.supervisor,
            "solution.ports.supervisor",
            "the supervisor",
        ),
        (
            c.ports.process_metrics,
            "solution.ports.processMetrics",
            "the process-metrics exporter",
        ),
        (c.ports.alerts, "solution.ports.alerts", "the alerter"),
    ];
    for (port, path, what) in fixed {
        claim(r, u32::from(port), path, what.into());
    }
    for i in c.nodes.all() {
        let api = u32::from(c.ports.node_api_base) + i;
        claim(
            r,
            api,
            "solution.ports.nodeApiBase",
            format!("node {i}'s API"),
        );
    }
    for i in c.nodes.all() {
        let p2p = u32::from(c.ports.node_p2p_base) + i;
        let what = format!("node {i}'s P2P listener");
        claim(r, p2p, "solution.ports.nodeP2pBase", what);
    }
}

fn check_feeds(r: &mut Report, c: &Config) {
    let minimums = chain_minimums(c.chain.chain_id);
    let mut names = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for (i, feed) in c.feeds.iter().enumerate() {
        let path = format!("solution.feeds[{i}]");
        if let Some(first) = names.insert(feed.name.clone(), i) {
            r.error(
                format!("{path}.name"),
                format!("repeats the name of feeds[{first}]"),
            );
        }
        if let Some(first) = addresses.insert(feed.contract_address, i) {
            r.error(
                format!("{path}.contractAddress"),
                format!("is also the contract of feeds[{first}]; each feed needs its own aggregator contract"),
            );
        }
        let min = c.aggregator.aggregation.min_sources;
        if !feed.legs.is_empty() && feed.legs.len() < min {
            r.error(
                format!("{path}.legs"),
                format!(
                    "has {} leg(s) but priceAggregatorConfig.aggregation.minSources is {min}: the feed could never be priced",
                    feed.legs.len()
                ),
            );
        }
        for (j, leg) in feed.legs.iter().enumerate() {
            let enabled = c
                .aggregator
                .sources
                .get(&leg.source)
                .is_some_and(|s| s.enabled);
            if !enabled {
                r.error(
                    format!("{path}.legs[{j}].source"),
                    format!(
                        "{} is not enabled in priceAggregatorConfig.sources",
                        leg.source
                    ),
                );
            }
        }
        if !c.consensus.skip_chain_specific_checks && feed.heartbeat < minimums.delta_c {
            r.error(
                format!("{path}.heartbeatMs"),
                format!(
                    "must be >= {} ms on chain {} ({}); set consensus.skipChainSpecificChecks for dev chains",
                    minimums.delta_c.as_millis(),
                    c.chain.chain_id,
                    minimums.name
                ),
            );
        }
    }
}

fn check_consensus(r: &mut Report, c: &Config) {
    let k = &c.consensus;
    let n = c.nodes.oracles().len();
    let at = |field: &str| format!("solution.consensus.{field}");
    if n > 0 && 3 * k.f >= n {
        r.error(
            at("f"),
            format!(
                "must satisfy 3f < n: with {n} oracles f can be at most {}",
                (n - 1) / 3
            ),
        );
    }
    if k.delta_grace >= k.delta_round {
        r.error(at("deltaGraceMs"), "must be less than deltaRoundMs");
    }
    if k.delta_round >= k.delta_progress {
        r.error(at("deltaRoundMs"), "must be less than deltaProgressMs");
    }
    let s = &k.transmission_schedule;
    if s.is_empty() || s.len() >= 1000 {
        r.error(
            at("transmissionSchedule"),
            "must have between 1 and 999 stages",
        );
    } else if s.iter().all(|&x| x == 0) {
        r.error(
            at("transmissionSchedule"),
            "must schedule at least one transmitter",
        );
    }
    for (i, &x) in s.iter().enumerate() {
        if n > 0 && usize::from(x) > n {
            r.error(
                format!("{}[{i}]", at("transmissionSchedule")),
                format!("must be at most n = {n} oracles"),
            );
        }
    }
    if !k.skip_chain_specific_checks {
        check_chain_minimums(r, c);
    }
}

fn check_chain_minimums(r: &mut Report, c: &Config) {
    let m = chain_minimums(c.chain.chain_id);
    let k = &c.consensus;
    for (field, value, min) in [
        ("deltaStageMs", k.delta_stage, m.delta_stage),
        ("deltaRoundMs", k.delta_round, m.delta_round),
        ("deltaProgressMs", k.delta_progress, m.delta_progress),
        ("deltaResendMs", k.delta_resend, m.delta_resend),
    ] {
        if value < min {
            r.error(
                format!("solution.consensus.{field}"),
                format!(
                    "must be >= {} ms on chain {} ({}); set consensus.skipChainSpecificChecks for dev chains",
                    min.as_millis(),
                    c.chain.chain_id,
                    m.name
                ),
            );
        }
    }
}

fn check_alerts(r: &mut Report, c: &Config) {
    for (i, pegged) in c.alerts.pegged.iter().enumerate() {
        if !c.feeds.iter().any(|f| f.name == pegged.feed) {
            r.error(
                format!("solution.alerts.pegged[{i}].feed"),
                "is not the name of a configured feed",
            );
        }
    }
    if !c.alerts.enabled() && !c.alerts.pegged.is_empty() {
        r.warn(
            "solution.alerts.channels",
            "no channel: the pegged feeds are not watched and no alert is sent",
        );
    }
}

/// A DON across enclaves admits each member by its evidence (docs/design/don-across-tees.md):
/// there must be evidence, and measurements to hold it against.
fn check_don(r: &mut Report, c: &Config) {
    if c.don.is_none() {
        return;
    }
    let provider = c.attestation.provider;
    if provider == ProviderChoice::None {
        r.error(
            "solution.attestation.provider",
            "is none, but the members of a DON across enclaves admit each other by their evidence: choose auto, tdx, superprotocol (or simulated on a dev chain)",
        );
    }
    if c.attestation.allowed_measurements.is_empty() {
        r.error(
            "solution.attestation.allowedMeasurements",
            "is required with `don`: the members admit each other only from these TDs (with the simulated provider too: its quotes have registers and the identity a binary)",
        );
    }
    if !c.chain_options.enabled {
        r.error(
            "solution.chain.enabled",
            "is false, but a DON across enclaves needs the chain: its oracles learn their configuration and the shared secret node 1 dealt them from each feed's contract (each enclave has a secret of its own)",
        );
    } else if !c.chain_options.configure_contracts {
        r.error(
            "solution.chain.configureContracts",
            "is false, but in a DON across enclaves only node 1 can configure the contracts: it alone knows every admitted member's keys and deals the shared secret",
        );
    }
    if c.node.listen_host.is_loopback() {
        r.warn(
            "solution.node.listenHost",
            "is a loopback address: the other members of the DON cannot reach this enclave's nodes",
        );
    }
}
