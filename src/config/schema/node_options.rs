//! `node`: how the consensus nodes run (not what they agree on, which is `consensus`): where
//! P2P listens and what it announces, how long an observation may take, how long history is kept.

use std::net::IpAddr;
use std::time::Duration;

use super::LISTEN_HOST_MESSAGE;
use crate::config::defaults::{node, ports};
use crate::config::reader::{Fields, Report};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// Finalized reports, signed rounds and dropped transmissions older than this are deleted.
    pub retention: Duration,
    /// libocr's DataSourceTimeout: past it, this oracle just does not observe this round.
    pub observation_timeout: Duration,
    /// Address the P2P listeners bind (port 9900+i comes from `ports.nodeP2pBase`).
    pub listen_host: IpAddr,
    /// Host name or address other oracles dial (announced through the bootstrap); `listen_host`
    /// when absent.
    pub announce_host: Option<String>,
    /// `host:port` of the bootstrap node when it runs elsewhere; node 1 of this enclave otherwise.
    pub bootstrap_address: Option<String>,
    pub max_frame_bytes: usize,
}

/// What an absent `node` section means: the defaults, read the one way they are read.
impl Default for NodeOptions {
    fn default() -> Self {
        read_node_options(&mut Report::default(), None)
    }
}

pub fn read_node_options(r: &mut Report, f: Option<Fields<'_>>) -> NodeOptions {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.node"));
    let days = f.integer_or(r, "retentionDays", 1, 3650, node::RETENTION_DAYS);
    // libocr's LocalConfig bounds for DataSourceTimeout.
    let timeout = f.integer_or(
        r,
        "observationTimeoutMs",
        1_000,
        20_000,
        node::OBSERVATION_TIMEOUT_MS,
    );
    let listen_host = f.ip_addr(r, "listenHost", ports::LISTEN_HOST, LISTEN_HOST_MESSAGE);
    let announce_host = f.string(r, "announceHost").map(str::to_owned);
    if let Some(host) = &announce_host {
        if host.is_empty()
            || host.contains(['/', ' ', '@'])
            || host.contains(':') && !host.starts_with('[')
        {
            r.error(
                f.path_of("announceHost"),
                "must be a host name or IP address (without port); IPv6 in [brackets]",
            );
        }
    }
    let bootstrap_address = f.string(r, "bootstrapAddress").map(str::to_owned);
    if let Some(address) = &bootstrap_address {
        if !is_host_port(address) {
            r.error(
                f.path_of("bootstrapAddress"),
                "must be host:port, such as 10.0.0.5:9901",
            );
        }
    }
    let max_frame = f.integer_or(
        r,
        "maxFrameBytes",
        64 * 1024,
        16 << 20,
        node::MAX_FRAME_BYTES,
    );
    f.finish(r, &[]);
    NodeOptions {
        retention: Duration::from_secs(days * 86_400),
        observation_timeout: Duration::from_millis(timeout),
        listen_host,
        announce_host,
        bootstrap_address,
        max_frame_bytes: max_frame as usize,
    }
}

fn is_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(['/', ' ', '@'])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: serde_json::Value) -> (NodeOptions, Report) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "solution.node", &value);
        let options = read_node_options(&mut r, f);
        (options, r)
    }

    #[test]
    fn an_absent_section_gives_the_documented_defaults() {
        let mut r = Report::default();
        let options = read_node_options(&mut r, None);
        assert!(r.is_ok());
        assert_eq!(options, NodeOptions::default());
        assert_eq!(options.retention, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn every_field_is_read() {
        let (o, r) = read(json!({"retentionDays": 2, "observationTimeoutMs": 3000,
            "listenHost": "0.0.0.0", "announceHost": "oracle-a.example", "bootstrapAddress": "10.0.0.5:9901",
            "maxFrameBytes": 131072}));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(o.retention, Duration::from_secs(2 * 86_400));
        assert_eq!(o.observation_timeout, Duration::from_secs(3));
        assert_eq!(o.listen_host, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(o.announce_host.as_deref(), Some("oracle-a.example"));
        assert_eq!(o.bootstrap_address.as_deref(), Some("10.0.0.5:9901"));
        assert_eq!(o.max_frame_bytes, 131072);
    }

    #[test]
    fn bad_values_are_errors_naming_the_field() {
        for (value, field) in [
            (json!({"retentionDays": 0}), "solution.node.retentionDays"),
            (
                json!({"observationTimeoutMs": 50}),
                "solution.node.observationTimeoutMs",
            ),
            (
                json!({"listenHost": "localhost"}),
                "solution.node.listenHost",
            ),
            (json!({"announceHost": "a:1"}), "solution.node.announceHost"),
            (
                json!({"bootstrapAddress": "nohost"}),
                "solution.node.bootstrapAddress",
            ),
            (
                json!({"bootstrapAddress": "h:0"}),
                "solution.node.bootstrapAddress",
            ),
            (json!({"maxFrameBytes": 10}), "solution.node.maxFrameBytes"),
            (json!({"retention": 1}), "solution.node.retention"),
        ] {
            let (_, r) = read(value.clone());
            assert!(!r.is_ok(), "{value} accepted");
            assert!(format!("{r:?}").contains(field), "{value}: {r:?}");
        }
    }
}
