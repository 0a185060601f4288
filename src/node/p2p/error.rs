use std::net::SocketAddr;

use super::announcement::AnnouncementError;

/// Why the network could not start. Once started, nothing a peer does is an error of the node:
/// failures end that connection and are counted.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("cannot listen for peers on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid P2P configuration: {0}")]
    Config(String),
    #[error("announce addresses: {0}")]
    Announce(#[from] AnnouncementError),
    #[error("cannot make the node's TLS certificate: {0}")]
    Certificate(String),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
}
