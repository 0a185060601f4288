//! The P2P counters as Prometheus metrics, read from the network's own counters at scrape time.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use crate::node::p2p::{InboundClose, NetworkHandle, NetworkStats};
use crate::telemetry::sample;

type Reading = fn(&NetworkStats) -> u64;

const COUNTERS: &[(&str, &str, Reading)] = &[
    (
        "enclave_node_p2p_frames_received_total",
        "Frames received from peers.",
        |s| s.frames_in,
    ),
    (
        "enclave_node_p2p_bytes_received_total",
        "Bytes received from peers.",
        |s| s.bytes_in,
    ),
    (
        "enclave_node_p2p_frames_sent_total",
        "Frames sent to peers.",
        |s| s.frames_out,
    ),
    (
        "enclave_node_p2p_bytes_sent_total",
        "Bytes sent to peers.",
        |s| s.bytes_out,
    ),
    (
        "enclave_node_p2p_frames_dropped_total",
        "Outgoing frames dropped: peer not connected or its queue full.",
        |s| s.dropped_out,
    ),
    (
        "enclave_node_p2p_inbound_dropped_total",
        "Incoming frames dropped.",
        |s| s.dropped_in,
    ),
    (
        "enclave_node_p2p_handshake_refusals_total",
        "TLS handshakes refused: the peer's key is not in the oracle set, not the peer dialed, its handshake signature does not verify, or (a DON across enclaves) its member is not admitted by attestation.",
        |s| s.handshake_refusals,
    ),
    (
        "enclave_node_p2p_handshake_failures_total",
        "Connections that failed before they were usable for another reason (garbage, timeout, \
         handshake slots full, evicted).",
        |s| s.handshake_failures,
    ),
    (
        "enclave_node_p2p_oversize_frames_total",
        "Connections closed for a frame over maxFrameBytes.",
        |s| s.oversize_frames,
    ),
    (
        "enclave_node_p2p_protocol_errors_total",
        "Connections closed for a framing or hello error.",
        |s| s.protocol_errors,
    ),
    (
        "enclave_node_p2p_invalid_announcements_total",
        "Discovery announcements refused (bad signature, unknown peer).",
        |s| s.invalid_announcements,
    ),
    (
        "enclave_node_p2p_dials_total",
        "Outgoing connection attempts.",
        |s| s.dials,
    ),
    (
        "enclave_node_p2p_connects_total",
        "Connections established.",
        |s| s.connects,
    ),
    (
        "enclave_node_p2p_disconnects_total",
        "Connections lost.",
        |s| s.disconnects,
    ),
];

pub struct StatsCollector {
    network: NetworkHandle,
}

impl StatsCollector {
    pub fn new(network: NetworkHandle) -> Self {
        Self { network }
    }
}

impl Collector for StatsCollector {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.network.stats();
        let family = |name: &str, help: &str| {
            let mut family = MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(help.to_owned());
            family.set_field_type(MetricType::COUNTER);
            family
        };
        let mut families: Vec<MetricFamily> = COUNTERS
            .iter()
            .map(|(name, help, read)| {
                let mut f = family(name, help);
                f.mut_metric().push(sample::metric(
                    MetricType::COUNTER,
                    Vec::new(),
                    read(&stats) as f64,
                ));
                f
            })
            .collect();
        let mut closed = family(
            "enclave_node_p2p_inbound_closed_total",
            "Inbound connections closed before the peer was authenticated, by reason \
             (slots_full, source_limit, evicted, client_hello_timeout, handshake_timeout, \
             handshake_error, refused).",
        );
        for reason in InboundClose::ALL {
            closed.mut_metric().push(sample::metric(
                MetricType::COUNTER,
                vec![sample::label("reason", reason.as_str())],
                stats.inbound_closed(reason) as f64,
            ));
        }
        families.push(closed);
        families
    }
}
