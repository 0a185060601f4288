//! One node's public keys as the identity document and the key birth records state them, and
//! the RFC 3339 form of their instants: below both `identity` and `birth`, which each use it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::order_certificate::MAX_RFC3339_SECS;
use crate::config::schema::nodes::role;
use crate::keys::NodePublicKeys;

/// One node's public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeIdentity {
    pub node: u32,
    /// `bootstrap` (node 1) or `oracle`.
    pub role: String,
    pub peer_id: String,
    /// Ed25519, hex: signs observations (and is the P2P identity).
    pub offchain_public_key: String,
    /// EIP-55 address of the key that signs reports (the contract's `signers[]`).
    pub onchain_signing_address: String,
    /// EIP-55 address of the account that sends transactions (`transmitters[]`).
    pub transmitter_address: String,
    /// X25519, hex: decrypts the shared secret of the on-chain configuration.
    pub config_public_key: String,
}

impl From<&NodePublicKeys> for NodeIdentity {
    fn from(p: &NodePublicKeys) -> Self {
        Self {
            node: p.node,
            role: role(p.node).to_owned(),
            peer_id: p.peer_id.to_string(),
            offchain_public_key: hex::encode(p.offchain_public_key),
            onchain_signing_address: p.onchain_signing_address.to_checksum(None),
            transmitter_address: p.transmitter_address.to_checksum(None),
            config_public_key: hex::encode(p.config_public_key),
        }
    }
}

/// RFC 3339 seconds, UTC; an instant outside humantime's range (not a real clock) as seconds.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if secs > MAX_RFC3339_SECS {
        return secs.to_string();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
