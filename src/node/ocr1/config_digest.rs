//! The OCR1 config digest and the version-1 `encoded` offchain config it covers.
//!
//! Verified against libocr `offchainreporting/internal/config/config_digest.go` (`ConfigDigest`:
//! keccak256 of the ABI-encoded arguments of `exposedConfigDigestFromConfigData`, first 16
//! bytes), `encode.go` (`setConfigEncodedComponents`, peer IDs comma-joined, durations as int64
//! nanoseconds, 20,000-byte bound) and `abiencode.go` (the tuple's field types). The deployed
//! contract builds the same `encoded` bytes from `setConfig` + `setConsensusConfig` with
//! `abi.encode(ConsensusConfig)` (ocr-and-sources.md §0).

use alloy_primitives::{keccak256, Address, Bytes, FixedBytes, B256};
use alloy_sol_types::{sol_data, SolType, SolValue};

use super::types::ConfigDigest;

/// `encodedConfigVersion` of the layout below.
pub const ENCODED_CONFIG_VERSION: u64 = 1;

/// libocr refuses to encode or decode a larger `encoded` blob (`configSizeBound`).
pub const MAX_ENCODED_CONFIG_BYTES: usize = 20_000;

alloy_sol_types::sol! {
    struct SharedSecretEncryptionsAbi {
        bytes32 diffieHellmanPoint;
        bytes32 sharedSecretHash;
        bytes16[] encryptions;
    }

    /// libocr `setConfigEncodedComponentsABI`; field names as in abiencode.go (which calls
    /// alphaPPB "alpha"; names do not affect the encoding).
    struct SetConfigEncodedComponents {
        int64 deltaProgress;
        int64 deltaResend;
        int64 deltaRound;
        int64 deltaGrace;
        int64 deltaC;
        uint64 alpha;
        int64 deltaStage;
        uint8 rMax;
        uint8[] s;
        bytes32[] offchainPublicKeys;
        string peerIDs;
        SharedSecretEncryptionsAbi sharedSecretEncryptions;
    }
}

/// The shared secret, encrypted to each oracle's config key (see ocr-and-sources.md A.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SharedSecretEncryptions {
    /// The dealer's X25519 public point.
    pub diffie_hellman_point: [u8; 32],
    /// keccak256 of the 16-byte shared secret, so oracles can check their decryption.
    pub shared_secret_hash: [u8; 32],
    /// One AES-128 block per oracle, in oracle order.
    pub encryptions: Vec<[u8; 16]>,
}

/// The version-1 offchain config, field for field. Durations are Go `time.Duration` values,
/// i.e. signed nanoseconds, because that is what goes on chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffchainConfig {
    pub delta_progress_ns: i64,
    pub delta_resend_ns: i64,
    pub delta_round_ns: i64,
    pub delta_grace_ns: i64,
    pub delta_c_ns: i64,
    pub alpha_ppb: u64,
    pub delta_stage_ns: i64,
    pub r_max: u8,
    /// Transmission schedule: how many oracles transmit in each stage.
    pub s: Vec<u8>,
    /// Ed25519 observation-signing keys, in oracle order.
    pub offchain_public_keys: Vec<[u8; 32]>,
    /// libp2p-form peer IDs (`12D3KooW…`), in oracle order; joined with commas on chain.
    pub peer_ids: Vec<String>,
    pub shared_secret_encryptions: SharedSecretEncryptions,
}

impl OffchainConfig {
    /// The peer ids as the contract stores them: one comma-joined string, so an id that itself
    /// contains a comma is refused.
    pub fn joined_peer_ids(&self) -> Result<String, ConfigError> {
        if let Some(index) = self.peer_ids.iter().position(|p| p.contains(',')) {
            return Err(ConfigError::CommaInPeerId(index));
        }
        Ok(self.peer_ids.join(","))
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("peer id #{0} contains a comma, which would split it in the comma-joined peerIDs")]
    CommaInPeerId(usize),
    #[error(
        "encoded offchain config is {0} bytes; libocr accepts at most {MAX_ENCODED_CONFIG_BYTES}"
    )]
    TooLarge(usize),
    #[error("encoded offchain config does not ABI-decode as the version-1 tuple: {0}")]
    Malformed(String),
}

/// `bytes16(keccak256(abi.encode(address(this), configCount, signers, transmitters, threshold,
/// encodedConfigVersion, encoded)))`, as `OffchainAggregator._configDigestFromConfigData`.
pub fn config_digest(
    contract: Address,
    config_count: u64,
    signers: &[Address],
    transmitters: &[Address],
    threshold: u8,
    encoded_config_version: u64,
    encoded: &[u8],
) -> ConfigDigest {
    // Spelled as Solidity types because a bare `u8` is ambiguous to alloy (uint8 or a byte).
    type Preimage = (
        sol_data::Address,
        sol_data::Uint<64>,
        sol_data::Array<sol_data::Address>,
        sol_data::Array<sol_data::Address>,
        sol_data::Uint<8>,
        sol_data::Uint<64>,
        sol_data::Bytes,
    );
    let preimage = Preimage::abi_encode_params(&(
        contract,
        config_count,
        signers.to_vec(),
        transmitters.to_vec(),
        threshold,
        encoded_config_version,
        Bytes::copy_from_slice(encoded),
    ));
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&keccak256(preimage)[..16]);
    ConfigDigest(digest)
}

/// The `encoded` argument of `setConfig` (version 1): `abi.encode` of the single tuple, so it
/// starts with the tuple's offset word 0x20, as Go's `abi.Arguments.Pack` and Solidity's
/// `abi.encode(struct)` both produce.
pub fn encode_offchain_config(config: &OffchainConfig) -> Result<Vec<u8>, ConfigError> {
    let peer_ids = config.joined_peer_ids()?;
    let sse = &config.shared_secret_encryptions;
    let encoded = SetConfigEncodedComponents {
        deltaProgress: config.delta_progress_ns,
        deltaResend: config.delta_resend_ns,
        deltaRound: config.delta_round_ns,
        deltaGrace: config.delta_grace_ns,
        deltaC: config.delta_c_ns,
        alpha: config.alpha_ppb,
        deltaStage: config.delta_stage_ns,
        rMax: config.r_max,
        s: config.s.clone(),
        offchainPublicKeys: config
            .offchain_public_keys
            .iter()
            .map(|k| B256::from(*k))
            .collect(),
        peerIDs: peer_ids,
        sharedSecretEncryptions: SharedSecretEncryptionsAbi {
            diffieHellmanPoint: B256::from(sse.diffie_hellman_point),
            sharedSecretHash: B256::from(sse.shared_secret_hash),
            encryptions: sse
                .encryptions
                .iter()
                .map(|e| FixedBytes::from(*e))
                .collect(),
        },
    }
    .abi_encode();
    if encoded.len() > MAX_ENCODED_CONFIG_BYTES {
        return Err(ConfigError::TooLarge(encoded.len()));
    }
    Ok(encoded)
}

/// Reads `encoded` from a `ConfigSet` event. Lenient about non-canonical ABI layouts, as Go's
/// `abi.Unpack` is, since the digest is computed over the bytes as logged, not re-encoded.
/// An empty `peerIDs` string means no peers (libocr does not split it into `[""]`).
pub fn decode_offchain_config(encoded: &[u8]) -> Result<OffchainConfig, ConfigError> {
    if encoded.len() > MAX_ENCODED_CONFIG_BYTES {
        return Err(ConfigError::TooLarge(encoded.len()));
    }
    let c = <SetConfigEncodedComponents as SolValue>::abi_decode(encoded)
        .map_err(|e| ConfigError::Malformed(e.to_string()))?;
    let peer_ids = if c.peerIDs.is_empty() {
        Vec::new()
    } else {
        c.peerIDs.split(',').map(str::to_owned).collect()
    };
    let sse = c.sharedSecretEncryptions;
    Ok(OffchainConfig {
        delta_progress_ns: c.deltaProgress,
        delta_resend_ns: c.deltaResend,
        delta_round_ns: c.deltaRound,
        delta_grace_ns: c.deltaGrace,
        delta_c_ns: c.deltaC,
        alpha_ppb: c.alpha,
        delta_stage_ns: c.deltaStage,
        r_max: c.rMax,
        s: c.s,
        offchain_public_keys: c.offchainPublicKeys.into_iter().map(|k| k.0).collect(),
        peer_ids,
        shared_secret_encryptions: SharedSecretEncryptions {
            diffie_hellman_point: sse.diffieHellmanPoint.0,
            shared_secret_hash: sse.sharedSecretHash.0,
            encryptions: sse.encryptions.into_iter().map(|e| e.0).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    /// The deployed consensus config (ocr-and-sources.md §0) with made-up keys; same inputs as
    /// vectors.py.
    fn deployed_like() -> OffchainConfig {
        let secret: [u8; 16] = core::array::from_fn(|i| i as u8);
        OffchainConfig {
            delta_progress_ns: 35 * SECOND,
            delta_resend_ns: 17 * SECOND,
            delta_round_ns: 30 * SECOND,
            delta_grace_ns: 12 * SECOND,
            delta_c_ns: 86_400 * SECOND,
            alpha_ppb: 5_000_000,
            delta_stage_ns: 60 * SECOND,
            r_max: 6,
            s: vec![1, 2, 2, 2],
            offchain_public_keys: [0xa1, 0xa2, 0xa3, 0xa4].map(|b| [b; 32]).to_vec(),
            peer_ids: ["A", "B", "C", "D"]
                .iter()
                .map(|c| format!("12D3KooW{}{}", c, c.to_lowercase().repeat(43)))
                .collect(),
            shared_secret_encryptions: SharedSecretEncryptions {
                diffie_hellman_point: [0xd1; 32],
                shared_secret_hash: keccak256(secret).0,
                encryptions: (0..4u8).map(|i| [0xe0 + i; 16]).collect(),
            },
        }
    }

    /// eth_abi.encode(["(int64,…,(bytes32,bytes32,bytes16[]))"], [config]) from vectors.py.
    const ENCODED: &str = concat!(
        "0000000000000000000000000000000000000000000000000000000000000020",
        "0000000000000000000000000000000000000000000000000000000826299e00",
        "00000000000000000000000000000000000000000000000000000003f5476a00",
        "00000000000000000000000000000000000000000000000000000006fc23ac00",
        "00000000000000000000000000000000000000000000000000000002cb417800",
        "00000000000000000000000000000000000000000000000000004e94914f0000",
        "00000000000000000000000000000000000000000000000000000000004c4b40",
        "0000000000000000000000000000000000000000000000000000000df8475800",
        "0000000000000000000000000000000000000000000000000000000000000006",
        "0000000000000000000000000000000000000000000000000000000000000180",
        "0000000000000000000000000000000000000000000000000000000000000220",
        "00000000000000000000000000000000000000000000000000000000000002c0",
        "00000000000000000000000000000000000000000000000000000000000003c0",
        "0000000000000000000000000000000000000000000000000000000000000004",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "0000000000000000000000000000000000000000000000000000000000000002",
        "0000000000000000000000000000000000000000000000000000000000000002",
        "0000000000000000000000000000000000000000000000000000000000000002",
        "0000000000000000000000000000000000000000000000000000000000000004",
        "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
        "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2",
        "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3",
        "a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4",
        "00000000000000000000000000000000000000000000000000000000000000d3",
        "313244334b6f6f57416161616161616161616161616161616161616161616161",
        "61616161616161616161616161616161616161612c313244334b6f6f57426262",
        "6262626262626262626262626262626262626262626262626262626262626262",
        "6262626262626262622c313244334b6f6f574363636363636363636363636363",
        "6363636363636363636363636363636363636363636363636363636363632c31",
        "3244334b6f6f5744646464646464646464646464646464646464646464646464",
        "6464646464646464646464646464646464646400000000000000000000000000",
        "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1",
        "01aec967ba5d2a807edd3fd8942c6f72c0c62961bfeb10c1f79c756f7294b0e3",
        "0000000000000000000000000000000000000000000000000000000000000060",
        "0000000000000000000000000000000000000000000000000000000000000004",
        "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e000000000000000000000000000000000",
        "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e100000000000000000000000000000000",
        "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e200000000000000000000000000000000",
        "e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e300000000000000000000000000000000",
    );

    #[test]
    fn offchain_config_encodes_like_abi_encode_of_the_tuple() {
        let encoded = encode_offchain_config(&deployed_like()).expect("encode");
        assert_eq!(hex::encode(&encoded), ENCODED);
        assert_eq!(encoded.len(), 1248);
        assert_eq!(decode_offchain_config(&encoded), Ok(deployed_like()));
    }

    #[test]
    fn config_digest_matches_keccak_of_abi_encoded_config_data() {
        let encoded = hex::decode(ENCODED).expect("hex");
        let signers: Vec<Address> = (0..4u8).map(|i| Address::repeat_byte(0x10 + i)).collect();
        let transmitters: Vec<Address> = (0..4u8).map(|i| Address::repeat_byte(0x20 + i)).collect();
        let digest = config_digest(
            Address::repeat_byte(0xc0),
            7,
            &signers,
            &transmitters,
            1,
            ENCODED_CONFIG_VERSION,
            &encoded,
        );
        // From vectors.py.
        assert_eq!(digest.to_string(), "0x63c2d7a274a67c69d6bc56b821242a55");
        let empty = config_digest(Address::ZERO, 0, &[], &[], 0, 0, &[]);
        assert_eq!(empty.to_string(), "0xc7b308d701c261d55c18a1e93bd0c11d");
    }

    #[test]
    fn empty_peer_list_round_trips_as_no_peers() {
        let config = OffchainConfig::default();
        let encoded = encode_offchain_config(&config).expect("encode");
        assert_eq!(decode_offchain_config(&encoded), Ok(config));
    }

    #[test]
    fn unencodable_and_undecodable_configs_are_errors() {
        let mut comma = deployed_like();
        comma.peer_ids[2] = "a,b".to_owned();
        assert_eq!(
            encode_offchain_config(&comma),
            Err(ConfigError::CommaInPeerId(2))
        );

        let mut huge = deployed_like();
        huge.offchain_public_keys = vec![[7u8; 32]; 700];
        assert!(matches!(
            encode_offchain_config(&huge),
            Err(ConfigError::TooLarge(_))
        ));
        assert_eq!(
            decode_offchain_config(&vec![0u8; MAX_ENCODED_CONFIG_BYTES + 1]),
            Err(ConfigError::TooLarge(MAX_ENCODED_CONFIG_BYTES + 1))
        );

        let encoded = hex::decode(ENCODED).expect("hex");
        assert!(matches!(
            decode_offchain_config(&encoded[..encoded.len() - 32]),
            Err(ConfigError::Malformed(_))
        ));
        assert!(matches!(
            decode_offchain_config(&[]),
            Err(ConfigError::Malformed(_))
        ));
    }
}
