//! One node's key bundle (ocr-and-sources.md A.3.1): the private keys in their files and the
//! public parts derived from them, published in `public.json`.

use std::fmt;
use std::io;
use std::path::Path;

use alloy_primitives::{keccak256, Address};
use serde::{Deserialize, Serialize};

use super::error::KeyError;
use super::files::{self, Missing, PUBLIC_FILE_MODE};
use super::peer_id::PeerId;

/// Ed25519 seed (RFC 8032 private key): the P2P identity and the OCR off-chain signing key.
pub const OFFCHAIN_KEY_FILE: &str = "offchain.key";
/// secp256k1 scalar: signs reports; its address goes in the contract's `signers[]`.
pub const ONCHAIN_KEY_FILE: &str = "onchain.key";
/// secp256k1 scalar: the account that sends transactions; its address goes in `transmitters[]`.
pub const TRANSMITTER_KEY_FILE: &str = "transmitter.key";
/// X25519 secret: decrypts the shared secret in the chain's configuration.
pub const CONFIG_KEY_FILE: &str = "config.key";
/// The public parts, readable by anyone (0644).
pub const PUBLIC_FILE: &str = "public.json";

/// The private keys of one node. `Debug` and `Display` show only public parts; every key type
/// here zeroes its memory on drop.
pub struct OracleKeys {
    offchain: ed25519_dalek::SigningKey,
    onchain: k256::ecdsa::SigningKey,
    transmitter: k256::ecdsa::SigningKey,
    config: x25519_dalek::StaticSecret,
    public: NodePublicKeys,
}

/// What other nodes and the operator need to know about a node: `<node dir>/public.json`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePublicKeys {
    pub node: u32,
    /// The Ed25519 public key in libp2p form; the same key as `offchain_public_key`.
    pub peer_id: PeerId,
    #[serde(with = "hex32")]
    pub offchain_public_key: [u8; 32],
    #[serde(with = "eip55")]
    pub onchain_signing_address: Address,
    #[serde(with = "eip55")]
    pub transmitter_address: Address,
    #[serde(with = "hex32")]
    pub config_public_key: [u8; 32],
}

impl OracleKeys {
    /// P2P identity and observation signing.
    pub fn offchain(&self) -> &ed25519_dalek::SigningKey {
        &self.offchain
    }

    /// Report signing.
    pub fn onchain(&self) -> &k256::ecdsa::SigningKey {
        &self.onchain
    }

    /// Transaction sending.
    pub fn transmitter(&self) -> &k256::ecdsa::SigningKey {
        &self.transmitter
    }

    /// Decrypting the shared secret of the chain's configuration.
    pub fn config(&self) -> &x25519_dalek::StaticSecret {
        &self.config
    }

    pub fn public(&self) -> &NodePublicKeys {
        &self.public
    }

    pub fn node(&self) -> u32 {
        self.public.node
    }

    pub fn peer_id(&self) -> PeerId {
        self.public.peer_id
    }

    /// Loads node `node`'s keys from `dir`, generating the missing ones unless `public.json`
    /// shows they were generated before, then checks `public.json` against them (writing it if
    /// missing). `dir` must exist.
    pub(super) fn load_or_generate(dir: &Path, node: u32) -> Result<Self, KeyError> {
        let public_path = dir.join(PUBLIC_FILE);
        let published = read_public(&public_path, node)?;
        let missing = match published {
            Some(_) => Missing::Refuse(&public_path),
            None => Missing::Generate,
        };
        let offchain = files::load_or_generate(
            &dir.join(OFFCHAIN_KEY_FILE),
            missing,
            "Ed25519 private key",
            |seed| Ok(ed25519_dalek::SigningKey::from_bytes(seed)),
        )?;
        let onchain = files::load_or_generate(
            &dir.join(ONCHAIN_KEY_FILE),
            missing,
            "secp256k1 private key",
            parse_secp256k1,
        )?;
        let transmitter = files::load_or_generate(
            &dir.join(TRANSMITTER_KEY_FILE),
            missing,
            "secp256k1 private key",
            parse_secp256k1,
        )?;
        let config = files::load_or_generate(
            &dir.join(CONFIG_KEY_FILE),
            missing,
            "X25519 private key",
            |bytes| Ok(x25519_dalek::StaticSecret::from(*bytes)),
        )?;
        let public = NodePublicKeys::derive(node, &offchain, &onchain, &transmitter, &config);
        let published = match published {
            Some(published) => published,
            None => write_public(&public_path, &public)?,
        };
        let fields = public.differences(&published);
        if !fields.is_empty() {
            return Err(KeyError::PublicMismatch {
                path: public_path,
                fields: fields.join(", "),
            });
        }
        Ok(Self {
            offchain,
            onchain,
            transmitter,
            config,
            public,
        })
    }
}

fn parse_secp256k1(bytes: &[u8; 32]) -> Result<k256::ecdsa::SigningKey, &'static str> {
    k256::ecdsa::SigningKey::from_bytes(bytes.into())
        .map_err(|_| "not a secp256k1 private key (it must be non-zero and below the curve order)")
}

impl fmt::Debug for OracleKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OracleKeys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for OracleKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} ({})", self.public.node, self.public.peer_id)
    }
}

impl NodePublicKeys {
    pub fn derive(
        node: u32,
        offchain: &ed25519_dalek::SigningKey,
        onchain: &k256::ecdsa::SigningKey,
        transmitter: &k256::ecdsa::SigningKey,
        config: &x25519_dalek::StaticSecret,
    ) -> Self {
        let offchain_public_key = offchain.verifying_key().to_bytes();
        Self {
            node,
            peer_id: PeerId(offchain_public_key),
            offchain_public_key,
            onchain_signing_address: ethereum_address(onchain.verifying_key()),
            transmitter_address: ethereum_address(transmitter.verifying_key()),
            config_public_key: x25519_dalek::PublicKey::from(config).to_bytes(),
        }
    }

    /// The camelCase names of the fields in which `other` differs.
    fn differences(&self, other: &Self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        let mut check = |differs: bool, name| {
            if differs {
                fields.push(name);
            }
        };
        check(self.node != other.node, "node");
        check(self.peer_id != other.peer_id, "peerId");
        check(
            self.offchain_public_key != other.offchain_public_key,
            "offchainPublicKey",
        );
        check(
            self.onchain_signing_address != other.onchain_signing_address,
            "onchainSigningAddress",
        );
        check(
            self.transmitter_address != other.transmitter_address,
            "transmitterAddress",
        );
        check(
            self.config_public_key != other.config_public_key,
            "configPublicKey",
        );
        fields
    }
}

impl fmt::Debug for NodePublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodePublicKeys")
            .field("node", &self.node)
            .field("peer_id", &format_args!("{}", self.peer_id))
            .field(
                "offchain_public_key",
                &format_args!("{}", hex::encode(self.offchain_public_key)),
            )
            .field(
                "onchain_signing_address",
                &format_args!("{}", self.onchain_signing_address),
            )
            .field(
                "transmitter_address",
                &format_args!("{}", self.transmitter_address),
            )
            .field(
                "config_public_key",
                &format_args!("{}", hex::encode(self.config_public_key)),
            )
            .finish()
    }
}

/// The Ethereum address of a secp256k1 key: the last 20 bytes of keccak256 of the uncompressed
/// public key without its 0x04 prefix.
pub fn ethereum_address(key: &k256::ecdsa::VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..])
}

/// `public.json` of node `node`, or `None` if it does not exist. It must be well-formed,
/// belong to `node` and name the same Ed25519 key as peer id and off-chain key.
pub(super) fn read_public(path: &Path, node: u32) -> Result<Option<NodePublicKeys>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyError::io("cannot read", path)(e)),
    };
    let malformed = |reason: String| KeyError::PublicMalformed {
        path: path.to_owned(),
        reason,
    };
    let public: NodePublicKeys =
        serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    if public.node != node {
        return Err(malformed(format!(
            "it says node {}, but it is node {node}'s",
            public.node
        )));
    }
    if public.peer_id.0 != public.offchain_public_key {
        return Err(malformed(
            "peerId and offchainPublicKey differ, but one Ed25519 key serves both".into(),
        ));
    }
    Ok(Some(public))
}

/// Writes `public` to `path` unless it exists; returns what the file holds afterwards (another
/// process may have written it first).
fn write_public(path: &Path, public: &NodePublicKeys) -> Result<NodePublicKeys, KeyError> {
    let mut text = serde_json::to_vec_pretty(public).map_err(|e| KeyError::PublicMalformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    text.push(b'\n');
    if files::write_new(path, &text, PUBLIC_FILE_MODE)? {
        return Ok(public.clone());
    }
    read_public(path, public.node)?.ok_or_else(|| KeyError::NotGenerated {
        path: path.to_owned(),
    })
}

/// 32 bytes as 64 lowercase hex digits without `0x`.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes).map_err(|_| {
            serde::de::Error::custom(format!(
                "expected 64 hexadecimal characters, found {text:?}"
            ))
        })?;
        Ok(bytes)
    }
}

/// An address as `0x` and 40 hex digits, written with the EIP-55 checksum; any case is read.
mod eip55 {
    use alloy_primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&address.to_checksum(None))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("not an address: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secp256k1(hex_key: &str) -> k256::ecdsa::SigningKey {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).expect("hex");
        parse_secp256k1(&bytes).expect("valid key")
    }

    #[test]
    fn the_address_of_private_key_one_is_the_known_one() {
        // The generator point's address, a well-known vector (e.g. Ethereum tooling's tests).
        let key = secp256k1("0000000000000000000000000000000000000000000000000000000000000001");
        let address = ethereum_address(key.verifying_key());
        assert_eq!(
            address.to_checksum(None),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn the_peer_id_of_the_rfc8032_test_1_key_is_its_public_key() {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            &mut seed,
        )
        .expect("hex");
        let offchain = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key = secp256k1("0000000000000000000000000000000000000000000000000000000000000002");
        let config = x25519_dalek::StaticSecret::from([9u8; 32]);
        let public = NodePublicKeys::derive(3, &offchain, &key, &key, &config);
        assert_eq!(
            hex::encode(public.peer_id.0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(public.offchain_public_key, public.peer_id.0);
        assert!(public.peer_id.to_string().starts_with("12D3KooW"));
    }

    #[test]
    fn invalid_secp256k1_scalars_are_refused() {
        assert!(parse_secp256k1(&[0u8; 32]).is_err());
        assert!(parse_secp256k1(&[0xFF; 32]).is_err());
    }

    #[test]
    fn public_keys_serialise_in_camel_case_with_hex_and_eip55() {
        let offchain = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        let key = secp256k1("0000000000000000000000000000000000000000000000000000000000000001");
        let config = x25519_dalek::StaticSecret::from([2u8; 32]);
        let public = NodePublicKeys::derive(2, &offchain, &key, &key, &config);
        let json = serde_json::to_value(&public).expect("json");
        assert_eq!(json["node"], 2);
        assert_eq!(
            json["onchainSigningAddress"],
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        assert_eq!(
            json["offchainPublicKey"],
            hex::encode(offchain.verifying_key().to_bytes())
        );
        assert_eq!(json["peerId"], public.peer_id.to_string());
        let back: NodePublicKeys = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, public);
    }
}
