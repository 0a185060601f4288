//! `enclave keys init | show`: every node's keys and the OCR shared secret (oneshot
//! `node-keys`), and what an operator registers on-chain.

use serde::Serialize;

use super::{Cli, KeysCommand};
use crate::attestation::birth::{ensure_keys, log_missing};
use crate::attestation::boot::random_boot_id;
use crate::attestation::evidence::Provider;
use crate::attestation::member_key::Membership;
use crate::attestation::tsm::Kernel;
use crate::attestation::AttestationPaths;
use crate::config::schema::nodes::role;
use crate::exit;
use crate::keys::peer_id::PeerId;
use crate::keys::{KeyStore, NodePublicKeys};

pub fn run(cli: &Cli, command: &KeysCommand) -> anyhow::Result<u8> {
    let root = cli.root();
    let verified = cli.service_config()?;
    let config = verified.config;
    let store = KeyStore::from_config(&root, &config);
    // Both commands generate what is missing first, so `show` never reports keys that a later
    // `init` would replace. Keys made now get birth evidence from the configured provider
    // (the keys module makes keys; taking evidence is attestation's, orchestrated here).
    let provider = Provider::choose(&config.attestation, &AttestationPaths::from_env(&root));
    let boot_id = hex::encode(random_boot_id());
    // In a DON across enclaves, this member's nodes only: the others' keys are born in their
    // own enclaves.
    let member = Membership::of(config.don.as_ref())?;
    let nodes = Membership::nodes_here(member.as_ref(), &config);
    let (publics, births) = ensure_keys(&store, &nodes, &provider, &Kernel, &boot_id)?;
    log_missing(&births);
    match command {
        KeysCommand::Init => {
            tracing::info!(
                nodes = publics.len(),
                dir = %store.dir().display(),
                "node keys ready"
            );
        }
        KeysCommand::Show => {
            let shown = Shown {
                shared_secret_file: store.shared_secret_file().display().to_string(),
                nodes: publics.iter().map(ShownNode::from).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
    }
    Ok(exit::OK)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shown {
    shared_secret_file: String,
    nodes: Vec<ShownNode>,
}

/// A node's public keys with its role, in the order an operator reads them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShownNode {
    node: u32,
    role: &'static str,
    peer_id: PeerId,
    offchain_public_key: String,
    onchain_signing_address: String,
    transmitter_address: String,
    config_public_key: String,
}

impl From<&NodePublicKeys> for ShownNode {
    fn from(p: &NodePublicKeys) -> Self {
        Self {
            node: p.node,
            role: role(p.node),
            peer_id: p.peer_id,
            offchain_public_key: hex::encode(p.offchain_public_key),
            onchain_signing_address: p.onchain_signing_address.to_checksum(None),
            transmitter_address: p.transmitter_address.to_checksum(None),
            config_public_key: hex::encode(p.config_public_key),
        }
    }
}
