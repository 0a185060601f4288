//! Node i's settings, derived once from the verified configuration when the node starts: each
//! task receives the part it needs (its addresses, timings and limits) instead of digging it out
//! of the whole [`Config`]. The contract modules keep the configuration itself, because an
//! OCR1 contract configuration is computed from all of it (`enclave don-config` does the same).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::schema::nodes::BOOTSTRAP_NODE;
use crate::config::Config;
use crate::node::feed::health::stale_after;
use crate::node::runtime::error::NodeError;

/// The longest pause between attempts to check the RPC endpoint's chain id.
pub const CHAIN_ID_RETRY_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub node: u32,
    /// Nodes in the enclave (the bootstrap and the oracles).
    pub total: u32,
    /// The node's HTTP API.
    pub api: SocketAddr,
    pub p2p: P2pSettings,
    /// Oracle peers that must be connected for a feed to report (2f; 0 on the bootstrap).
    pub peers_needed: usize,
    /// A feed with no completed round for this long is reported as stopped.
    pub stale_after: Duration,
    pub observer: ObserverSettings,
    /// Finalized reports and signed rounds older than this are deleted.
    pub retention: Duration,
    /// `None` with `chain.enabled: false`.
    pub chain: Option<ChainSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P2pSettings {
    pub listen: SocketAddr,
    /// `host:port` announced to the others through the bootstrap (empty: the listen address).
    pub announce: Vec<String>,
    /// Where the bootstrap is dialled (`None` on the bootstrap itself).
    pub bootstrap_address: Option<String>,
    pub max_frame_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverSettings {
    /// The price aggregator's base URL (loopback when it listens on every address).
    pub aggregator: url::Url,
    pub max_pairs_per_request: usize,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSettings {
    pub chain_id: u64,
    /// How often contracts are read (configuration, balances, billing).
    pub poll: Duration,
    /// Pause between attempts to check the RPC endpoint's chain id.
    pub chain_id_retry: Duration,
    /// Node 1 puts every feed's configuration on its contract (`chain.configureContracts`).
    pub configure_contracts: bool,
}

impl NodeSettings {
    /// Node `node`'s settings; an error when the configuration has no such node.
    pub fn derive(config: &Config, node: u32) -> Result<Self, NodeError> {
        let total = config.nodes.total;
        if node == 0 || node > total {
            return Err(NodeError::UnknownNode { node, total });
        }
        let options = &config.node;
        let p2p_port = config.ports.node_p2p_base + node as u16;
        let bootstrap = node == BOOTSTRAP_NODE;
        // A DON across enclaves says where each node is reached; the node options say it for
        // one enclave.
        let don_address = |n: u32| {
            config
                .don
                .as_ref()
                .and_then(|don| don.member_of(n))
                .and_then(|m| m.address_of(n))
                .map(str::to_owned)
        };
        Ok(Self {
            node,
            total,
            api: SocketAddr::new(
                config.ports.listen_host,
                config.ports.node_api_base + node as u16,
            ),
            p2p: P2pSettings {
                listen: SocketAddr::new(options.listen_host, p2p_port),
                announce: match don_address(node) {
                    Some(address) => vec![address],
                    None => options
                        .announce_host
                        .iter()
                        .map(|host| format!("{host}:{p2p_port}"))
                        .collect(),
                },
                bootstrap_address: (!bootstrap).then(|| {
                    let configured =
                        don_address(BOOTSTRAP_NODE).or_else(|| options.bootstrap_address.clone());
                    configured.unwrap_or_else(|| {
                        format!(
                            "127.0.0.1:{}",
                            config.ports.node_p2p_base + BOOTSTRAP_NODE as u16
                        )
                    })
                }),
                max_frame_bytes: options.max_frame_bytes,
            },
            peers_needed: if bootstrap { 0 } else { 2 * config.consensus.f },
            stale_after: stale_after(&config.consensus, options.observation_timeout),
            observer: ObserverSettings {
                aggregator: aggregator_url(config.aggregator.host, config.aggregator.port),
                max_pairs_per_request: config.aggregator.max_pairs_per_request,
                timeout: options.observation_timeout,
            },
            retention: options.retention,
            chain: config.chain_options.enabled.then(|| ChainSettings {
                chain_id: config.chain.chain_id,
                poll: config.chain_options.contract_poll_interval,
                chain_id_retry: config
                    .chain_options
                    .contract_poll_interval
                    .min(CHAIN_ID_RETRY_MAX),
                configure_contracts: config.chain_options.configure_contracts,
            }),
        })
    }
}

/// The aggregator as a node reaches it: loopback when it listens on every address.
fn aggregator_url(host: IpAddr, port: u16) -> url::Url {
    let host = if host.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host
    };
    let base = format!("http://{}/", SocketAddr::new(host, port));
    // A SocketAddr always forms a valid URL.
    base.parse()
        .unwrap_or_else(|_| url::Url::parse("http://127.0.0.1:3000/").expect("static URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        let document = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configuration.example.json"),
            )
            .expect("example"),
        )
        .expect("json");
        crate::config::validate_document(&document)
            .expect("valid")
            .config
    }

    #[test]
    fn only_the_configured_nodes_have_settings() {
        let config = example();
        let total = config.nodes.total;
        for (node, known) in [(0, false), (1, true), (total, true), (total + 1, false)] {
            match NodeSettings::derive(&config, node) {
                Ok(settings) => {
                    assert!(known, "node {node}");
                    assert_eq!((settings.node, settings.total), (node, total));
                }
                Err(NodeError::UnknownNode { node: n, total: t }) => {
                    assert!(!known, "node {node}");
                    assert_eq!((n, t), (node, total));
                }
                Err(e) => panic!("node {node}: {e}"),
            }
        }
    }

    #[test]
    fn addresses_follow_the_port_bases_and_the_bootstrap_is_node_1_unless_configured() {
        let mut config = example();
        config.ports.node_p2p_base = 9900;
        config.ports.node_api_base = 8100;
        config.node.announce_host = None;
        config.node.bootstrap_address = None;
        /// Node, announceHost, bootstrapAddress, announced, dialled bootstrap.
        type Case<'a> = (
            u32,
            Option<&'a str>,
            Option<&'a str>,
            Vec<&'a str>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (1, None, None, vec![], None),
            (2, None, None, vec![], Some("127.0.0.1:9901")),
            (
                3,
                Some("oracle.example"),
                None,
                vec!["oracle.example:9903"],
                Some("127.0.0.1:9901"),
            ),
            (
                2,
                None,
                Some("boot.example:7000"),
                vec![],
                Some("boot.example:7000"),
            ),
            // The bootstrap never dials itself, even where another bootstrap address is set.
            (
                1,
                Some("boot.example"),
                Some("boot.example:7000"),
                vec!["boot.example:9901"],
                None,
            ),
        ];
        for (node, announce, bootstrap, announced, dialled) in cases {
            config.node.announce_host = announce.map(str::to_owned);
            config.node.bootstrap_address = bootstrap.map(str::to_owned);
            let s = NodeSettings::derive(&config, node).expect("settings");
            assert_eq!(s.p2p.listen.port(), 9900 + node as u16, "node {node}");
            assert_eq!(s.api.port(), 8100 + node as u16, "node {node}");
            assert_eq!(s.p2p.announce, announced, "node {node}");
            assert_eq!(s.p2p.bootstrap_address.as_deref(), dialled, "node {node}");
        }
    }

    #[test]
    fn oracles_need_two_f_peers_and_the_bootstrap_none() {
        let config = example();
        let f = config.consensus.f;
        assert_eq!(NodeSettings::derive(&config, 1).expect("1").peers_needed, 0);
        assert_eq!(
            NodeSettings::derive(&config, 2).expect("2").peers_needed,
            2 * f
        );
    }

    #[test]
    fn the_aggregator_is_reached_on_loopback_when_it_listens_everywhere() {
        let cases = [
            ("0.0.0.0", "http://127.0.0.1:3000/"),
            ("::", "http://127.0.0.1:3000/"),
            ("127.0.0.1", "http://127.0.0.1:3000/"),
            ("10.1.2.3", "http://10.1.2.3:3000/"),
            ("::1", "http://[::1]:3000/"),
        ];
        for (host, url) in cases {
            let host: IpAddr = host.parse().expect("address");
            assert_eq!(aggregator_url(host, 3000).as_str(), url, "{host}");
        }
    }

    #[test]
    fn without_a_chain_there_are_no_chain_settings_and_the_chain_id_retry_is_capped() {
        let mut config = example();
        config.chain_options.enabled = false;
        assert_eq!(
            NodeSettings::derive(&config, 2).expect("settings").chain,
            None
        );
        config.chain_options.enabled = true;
        for (poll, retry) in [(2, 2), (10, 10), (60, 10)] {
            config.chain_options.contract_poll_interval = Duration::from_secs(poll);
            let chain = NodeSettings::derive(&config, 2)
                .expect("settings")
                .chain
                .expect("chain");
            assert_eq!(chain.chain_id, config.chain.chain_id);
            assert_eq!(chain.poll, Duration::from_secs(poll));
            assert_eq!(
                chain.chain_id_retry,
                Duration::from_secs(retry),
                "poll {poll}"
            );
        }
    }
}
