//! The OCR1 `OffchainAggregator` as the oracle sees it on chain (ocr-and-sources.md A.2.1–A.2.3,
//! A.2.5, and the Super Protocol variant of §0): the reads OCR1 transmission needs, its config
//! events, and the calldata of `transmit` and of the two `setConfig` forms.
//!
//! `latestTransmissionDetails()` only answers calls whose `msg.sender == tx.origin` ("Only
//! callable by EOA"), so it is read with an externally owned account as `from` (the
//! transmitter). `RoundRequested` is searched over long ranges (ΔC = 24 h), so it is paged.

use std::sync::Arc;

use alloy_primitives::aliases::I192;
use alloy_primitives::{Address, Bytes, FixedBytes, B256, I256, U256};
use alloy_sol_types::{SolCall, SolEvent};

use super::error::ChainError;
use super::rpc::RpcClient;
use super::types::Log;
use crate::node::ocr1::config_digest::{
    config_digest, decode_offchain_config, ConfigError, OffchainConfig,
};
use crate::node::ocr1::signature::{self, SignatureError, SIGNATURE_BYTES};
use crate::node::ocr1::types::{ConfigDigest, EpochRound};

alloy_sol_types::sol! {
    /// OCR1 `OffchainAggregator` / `AccessControlledOffchainAggregator` 4.0.0 (libocr
    /// `contract/OffchainAggregator.sol`); the Super Protocol contract shares all of it except
    /// `setConfig` (see [`ISpOffchainAggregator`]).
    #[derive(Debug, PartialEq, Eq)]
    interface IOffchainAggregator {
        event ConfigSet(uint32 previousConfigBlockNumber, uint64 configCount, address[] signers, address[] transmitters, uint8 threshold, uint64 encodedConfigVersion, bytes encoded);
        event RoundRequested(address indexed requester, bytes16 configDigest, uint32 epoch, uint8 round);
        event NewTransmission(uint32 indexed aggregatorRoundId, int192 answer, address transmitter, int192[] observations, bytes observers, bytes32 rawReportContext);
        event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
        event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
        event OraclePaid(address indexed transmitter, address indexed payee, uint256 amount, address indexed linkToken);

        function transmit(bytes _report, bytes32[] _rs, bytes32[] _ss, bytes32 _rawVs) external;
        function latestTransmissionDetails() external view returns (bytes16 configDigest, uint32 epoch, uint8 round, int192 latestAnswer, uint64 latestTimestamp);
        function latestConfigDetails() external view returns (uint32 configCount, uint32 blockNumber, bytes16 configDigest);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
        function getRoundData(uint80 _roundId) external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
        function latestAnswer() external view returns (int256);
        function latestTimestamp() external view returns (uint256);
        function latestRound() external view returns (uint256);
        function getAnswer(uint256 _roundId) external view returns (int256);
        function getTimestamp(uint256 _roundId) external view returns (uint256);
        function decimals() external view returns (uint8);
        function description() external view returns (string);
        function version() external view returns (uint256);
        function typeAndVersion() external pure returns (string);
        function transmitters() external view returns (address[]);
        function requestNewRound() external returns (uint80);
        function setPayees(address[] _transmitters, address[] _payees) external;
        function setBilling(uint32 _maximumGasPrice, uint32 _reasonableGasPrice, uint32 _microLinkPerEth, uint32 _linkGweiPerObservation, uint32 _linkGweiPerTransmission) external;
        function getBilling() external view returns (uint32 maximumGasPrice, uint32 reasonableGasPrice, uint32 microLinkPerEth, uint32 linkGweiPerObservation, uint32 linkGweiPerTransmission);
        function owedPayment(address _transmitter) external view returns (uint256);
        function linkAvailableForPayment() external view returns (int256 availableBalance);
        function getLinkToken() external view returns (address linkToken);
        function withdrawPayment(address _transmitter) external;
        function minAnswer() external view returns (int192);
        function maxAnswer() external view returns (int192);
        function hasAccess(address _user, bytes _calldata) external view returns (bool);
        function addAccess(address _user) external;
        function owner() external view returns (address);
        function setConfig(address[] _signers, address[] _transmitters, uint8 _threshold, uint64 _encodedConfigVersion, bytes _encoded) external;
    }

    /// The LINK token the contract pays with (ERC-20/677): only what the enclave reads.
    #[derive(Debug, PartialEq, Eq)]
    interface ILinkToken {
        function balanceOf(address _owner) external view returns (uint256 balance);
    }

    /// The Super Protocol contract's replacements for `setConfig` (ocr-and-sources.md §0): the
    /// offchain part of the config travels as a struct, the timing as `setConsensusConfig`,
    /// and the contract assembles the standard `encoded` blob from both.
    #[derive(Debug, PartialEq, Eq)]
    interface ISpOffchainAggregator {
        struct SharedSecretEncryptions {
            bytes32 diffieHellmanPoint;
            bytes32 sharedSecretHash;
            bytes16[] encryptions;
        }
        struct SetConfigArgs {
            address[] signers;
            address[] transmitters;
            uint8 threshold;
            uint8[] s;
            bytes32[] offchainPublicKeys;
            string peerIDs;
            SharedSecretEncryptions sharedSecretEncryptions;
        }
        function setConfig(SetConfigArgs _config) external;
        function setConsensusConfig(int64 deltaProgress, int64 deltaResend, int64 deltaRound, int64 deltaGrace, int64 deltaC, uint64 alphaPPB, int64 deltaStage, uint8 rMax, uint64 encodedConfigVersion) external;
    }
}

/// Blocks per eth_getLogs request: BSC/opBNB public endpoints refuse more than 5000.
pub const DEFAULT_MAX_LOG_RANGE: u64 = 5_000;

/// `latestTransmissionDetails()`: what the contract last accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransmissionDetails {
    pub digest: ConfigDigest,
    pub epoch: u32,
    pub round: u8,
    pub latest_answer: I192,
    /// Block timestamp of the latest transmission (0 before the first).
    pub latest_timestamp: u64,
}

impl TransmissionDetails {
    pub fn epoch_round(&self) -> EpochRound {
        EpochRound::new(self.epoch, self.round)
    }
}

/// `latestConfigDetails()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDetails {
    pub config_count: u32,
    /// Block of the latest `setConfig` (0 if never configured): where its `ConfigSet` is.
    pub block_number: u32,
    pub digest: ConfigDigest,
}

/// `latestRoundData()` (Chainlink `AggregatorV3Interface`); all zeros before the first report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundData {
    pub round_id: u128,
    pub answer: I256,
    pub started_at: u64,
    pub updated_at: u64,
    pub answered_in_round: u128,
}

/// A decoded `ConfigSet` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSetEvent {
    pub previous_config_block_number: u32,
    pub config_count: u64,
    pub signers: Vec<Address>,
    pub transmitters: Vec<Address>,
    pub threshold: u8,
    pub encoded_config_version: u64,
    pub encoded: Bytes,
    pub block_number: Option<u64>,
    pub transaction_hash: Option<B256>,
}

impl ConfigSetEvent {
    /// The digest the contract computed for this configuration (at `contract`).
    pub fn digest(&self, contract: Address) -> ConfigDigest {
        config_digest(
            contract,
            self.config_count,
            &self.signers,
            &self.transmitters,
            self.threshold,
            self.encoded_config_version,
            &self.encoded,
        )
    }

    /// The version-1 offchain config inside `encoded`.
    pub fn offchain_config(&self) -> Result<OffchainConfig, ConfigError> {
        decode_offchain_config(&self.encoded)
    }
}

/// A decoded `RoundRequested` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRequestedEvent {
    pub requester: Address,
    pub digest: ConfigDigest,
    pub epoch: u32,
    pub round: u8,
    pub block_number: Option<u64>,
}

/// The `RoundRequested` events of a block range, and the last block scanned (to continue from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRequestedScan {
    pub events: Vec<RoundRequestedEvent>,
    pub to_block: u64,
}

#[derive(Clone)]
pub struct AggregatorContract {
    rpc: Arc<RpcClient>,
    address: Address,
    max_log_range: u64,
}

impl std::fmt::Debug for AggregatorContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorContract")
            .field("address", &self.address)
            .field("endpoint", &self.rpc.endpoint())
            .finish_non_exhaustive()
    }
}

impl AggregatorContract {
    pub fn new(rpc: Arc<RpcClient>, address: Address) -> Self {
        Self {
            rpc,
            address,
            max_log_range: DEFAULT_MAX_LOG_RANGE,
        }
    }

    /// Blocks per eth_getLogs request (at least 1).
    pub fn with_max_log_range(mut self, blocks: u64) -> Self {
        self.max_log_range = blocks.max(1);
        self
    }

    pub fn rpc(&self) -> &Arc<RpcClient> {
        &self.rpc
    }

    pub fn address(&self) -> Address {
        self.address
    }

    async fn read<C: SolCall>(
        &self,
        from: Option<Address>,
        call: C,
    ) -> Result<C::Return, ChainError> {
        let answer = self
            .rpc
            .call(from, self.address, call.abi_encode().into())
            .await?;
        C::abi_decode_returns(&answer).map_err(|e| ChainError::Malformed {
            method: C::SIGNATURE,
            reason: if answer.is_empty() {
                format!("empty answer: is {} an OffchainAggregator?", self.address)
            } else {
                format!("cannot decode the return value: {e}")
            },
        })
    }

    /// Must be called `from` an EOA (the transmitter): the contract refuses contract callers
    /// and eth_calls whose `from` is not `tx.origin`.
    pub async fn latest_transmission_details(
        &self,
        from: Address,
    ) -> Result<TransmissionDetails, ChainError> {
        let r = self
            .read(
                Some(from),
                IOffchainAggregator::latestTransmissionDetailsCall {},
            )
            .await?;
        Ok(TransmissionDetails {
            digest: ConfigDigest(r.configDigest.0),
            epoch: r.epoch,
            round: r.round,
            latest_answer: r.latestAnswer,
            latest_timestamp: r.latestTimestamp,
        })
    }

    pub async fn latest_config_details(&self) -> Result<ConfigDetails, ChainError> {
        let r = self
            .read(None, IOffchainAggregator::latestConfigDetailsCall {})
            .await?;
        Ok(ConfigDetails {
            config_count: r.configCount,
            block_number: r.blockNumber,
            digest: ConfigDigest(r.configDigest.0),
        })
    }

    pub async fn latest_round_data(&self) -> Result<RoundData, ChainError> {
        let r = self
            .read(None, IOffchainAggregator::latestRoundDataCall {})
            .await?;
        Ok(RoundData {
            round_id: r.roundId.to(),
            answer: r.answer,
            started_at: r.startedAt.saturating_to(),
            updated_at: r.updatedAt.saturating_to(),
            answered_in_round: r.answeredInRound.to(),
        })
    }

    pub async fn transmitters(&self) -> Result<Vec<Address>, ChainError> {
        self.read(None, IOffchainAggregator::transmittersCall {})
            .await
    }

    /// `(minAnswer, maxAnswer)`: a report whose median is outside is refused by `transmit`.
    pub async fn answer_bounds(&self) -> Result<(I192, I192), ChainError> {
        let min = self
            .read(None, IOffchainAggregator::minAnswerCall {})
            .await?;
        let max = self
            .read(None, IOffchainAggregator::maxAnswerCall {})
            .await?;
        Ok((min, max))
    }

    /// `getBilling()`, in `setBilling`'s argument order.
    pub async fn billing(&self) -> Result<[u32; 5], ChainError> {
        let b = self
            .read(None, IOffchainAggregator::getBillingCall {})
            .await?;
        Ok([
            b.maximumGasPrice,
            b.reasonableGasPrice,
            b.microLinkPerEth,
            b.linkGweiPerObservation,
            b.linkGweiPerTransmission,
        ])
    }

    /// LINK (in juels, 10^-18 LINK) the contract owes `transmitter`'s oracle.
    pub async fn owed_payment(&self, transmitter: Address) -> Result<U256, ChainError> {
        self.read(
            None,
            IOffchainAggregator::owedPaymentCall {
                _transmitter: transmitter,
            },
        )
        .await
    }

    /// The contract's LINK balance minus everything it owes (negative: it cannot pay).
    pub async fn link_available_for_payment(&self) -> Result<I256, ChainError> {
        self.read(None, IOffchainAggregator::linkAvailableForPaymentCall {})
            .await
    }

    pub async fn link_token(&self) -> Result<Address, ChainError> {
        self.read(None, IOffchainAggregator::getLinkTokenCall {})
            .await
    }

    /// The contract's balance of `token` (its LINK token).
    pub async fn token_balance(&self, token: Address) -> Result<U256, ChainError> {
        let call = ILinkToken::balanceOfCall {
            _owner: self.address,
        };
        let answer = self.rpc.call(None, token, call.abi_encode().into()).await?;
        ILinkToken::balanceOfCall::abi_decode_returns(&answer).map_err(|e| ChainError::Malformed {
            method: ILinkToken::balanceOfCall::SIGNATURE,
            reason: format!("token {token}: cannot decode the return value: {e}"),
        })
    }

    /// Whether the contract would accept `setPayees(transmitters, payees)` from `from` (an
    /// eth_call: nothing is sent). The revert tells why not.
    pub async fn simulate_set_payees(
        &self,
        from: Address,
        transmitters: &[Address],
        payees: &[Address],
    ) -> Result<(), ChainError> {
        self.rpc
            .call(
                Some(from),
                self.address,
                set_payees_calldata(transmitters, payees),
            )
            .await
            .map(drop)
    }

    /// Whether `from` may call `withdrawPayment(transmitter)` (an eth_call), which only
    /// `transmitter`'s payee may: the contract has no getter for payees.
    pub async fn simulate_withdraw_payment(
        &self,
        from: Address,
        transmitter: Address,
    ) -> Result<(), ChainError> {
        let data = IOffchainAggregator::withdrawPaymentCall {
            _transmitter: transmitter,
        }
        .abi_encode();
        self.rpc
            .call(Some(from), self.address, data.into())
            .await
            .map(drop)
    }

    /// The `ConfigSet` logged at `block` (the `block_number` of `latestConfigDetails()`); the
    /// last one if several configurations were set in that block.
    pub async fn config_set_at(&self, block: u64) -> Result<Option<ConfigSetEvent>, ChainError> {
        let logs = self
            .rpc
            .get_logs_paged(
                self.address,
                IOffchainAggregator::ConfigSet::SIGNATURE_HASH,
                block,
                block,
                1,
            )
            .await?;
        logs.last().map(decode_config_set).transpose()
    }

    /// `RoundRequested` events in `from..=to`, paged.
    pub async fn round_requested_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<RoundRequestedEvent>, ChainError> {
        let logs = self
            .rpc
            .get_logs_paged(
                self.address,
                IOffchainAggregator::RoundRequested::SIGNATURE_HASH,
                from,
                to,
                self.max_log_range,
            )
            .await?;
        logs.iter().map(decode_round_requested).collect()
    }

    /// `RoundRequested` events from `from_block` to the current block.
    pub async fn round_requested_since(
        &self,
        from_block: u64,
    ) -> Result<RoundRequestedScan, ChainError> {
        let to_block = self.rpc.block_number().await?;
        let events = self.round_requested_between(from_block, to_block).await?;
        Ok(RoundRequestedScan { events, to_block })
    }
}

fn malformed_log(event: &'static str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Malformed {
        method: event,
        reason: format!("undecodable log: {e}"),
    }
}

pub fn decode_config_set(log: &Log) -> Result<ConfigSetEvent, ChainError> {
    let e = IOffchainAggregator::ConfigSet::decode_raw_log(log.topics.iter().copied(), &log.data)
        .map_err(|e| malformed_log(IOffchainAggregator::ConfigSet::SIGNATURE, e))?;
    Ok(ConfigSetEvent {
        previous_config_block_number: e.previousConfigBlockNumber,
        config_count: e.configCount,
        signers: e.signers,
        transmitters: e.transmitters,
        threshold: e.threshold,
        encoded_config_version: e.encodedConfigVersion,
        encoded: e.encoded,
        block_number: log.block_number,
        transaction_hash: log.transaction_hash,
    })
}

pub fn decode_round_requested(log: &Log) -> Result<RoundRequestedEvent, ChainError> {
    let e =
        IOffchainAggregator::RoundRequested::decode_raw_log(log.topics.iter().copied(), &log.data)
            .map_err(|e| malformed_log(IOffchainAggregator::RoundRequested::SIGNATURE, e))?;
    Ok(RoundRequestedEvent {
        requester: e.requester,
        digest: ConfigDigest(e.configDigest.0),
        epoch: e.epoch,
        round: e.round,
        block_number: log.block_number,
    })
}

/// `transmit(report, rs, ss, rawVs)` calldata (the bit-exact OCR1 encoding of
/// [`signature::transmit_calldata`]).
pub fn transmit_calldata(
    report: &[u8],
    signatures: &[[u8; SIGNATURE_BYTES]],
) -> Result<Bytes, SignatureError> {
    signature::transmit_calldata(report, signatures).map(Bytes::from)
}

/// Standard OCR1 `setConfig(address[],address[],uint8,uint64,bytes)` calldata.
pub fn set_config_calldata(
    signers: &[Address],
    transmitters: &[Address],
    threshold: u8,
    encoded_config_version: u64,
    encoded: &[u8],
) -> Bytes {
    IOffchainAggregator::setConfigCall {
        _signers: signers.to_vec(),
        _transmitters: transmitters.to_vec(),
        _threshold: threshold,
        _encodedConfigVersion: encoded_config_version,
        _encoded: Bytes::copy_from_slice(encoded),
    }
    .abi_encode()
    .into()
}

/// `setPayees(transmitters, payees)` calldata.
pub fn set_payees_calldata(transmitters: &[Address], payees: &[Address]) -> Bytes {
    IOffchainAggregator::setPayeesCall {
        _transmitters: transmitters.to_vec(),
        _payees: payees.to_vec(),
    }
    .abi_encode()
    .into()
}

/// `setBilling(...)` calldata, `values` in the contract's argument order.
pub fn set_billing_calldata(values: [u32; 5]) -> Bytes {
    IOffchainAggregator::setBillingCall {
        _maximumGasPrice: values[0],
        _reasonableGasPrice: values[1],
        _microLinkPerEth: values[2],
        _linkGweiPerObservation: values[3],
        _linkGweiPerTransmission: values[4],
    }
    .abi_encode()
    .into()
}

/// Super Protocol `setConfig(struct)` calldata: the offchain part of `config` (schedule, keys,
/// peer IDs, shared secret). Its timing goes in [`set_consensus_config_calldata`].
pub fn sp_set_config_calldata(
    signers: &[Address],
    transmitters: &[Address],
    threshold: u8,
    config: &OffchainConfig,
) -> Result<Bytes, ConfigError> {
    let peer_ids = config.joined_peer_ids()?;
    let sse = &config.shared_secret_encryptions;
    Ok(ISpOffchainAggregator::setConfigCall {
        _config: ISpOffchainAggregator::SetConfigArgs {
            signers: signers.to_vec(),
            transmitters: transmitters.to_vec(),
            threshold,
            s: config.s.clone(),
            offchainPublicKeys: config
                .offchain_public_keys
                .iter()
                .map(|k| B256::from(*k))
                .collect(),
            peerIDs: peer_ids,
            sharedSecretEncryptions: ISpOffchainAggregator::SharedSecretEncryptions {
                diffieHellmanPoint: B256::from(sse.diffie_hellman_point),
                sharedSecretHash: B256::from(sse.shared_secret_hash),
                encryptions: sse
                    .encryptions
                    .iter()
                    .map(|e| FixedBytes::from(*e))
                    .collect(),
            },
        },
    }
    .abi_encode()
    .into())
}

/// Super Protocol `setConsensusConfig(...)` calldata: the timing part of `config` (durations
/// in nanoseconds, as on chain).
pub fn set_consensus_config_calldata(
    config: &OffchainConfig,
    encoded_config_version: u64,
) -> Bytes {
    ISpOffchainAggregator::setConsensusConfigCall {
        deltaProgress: config.delta_progress_ns,
        deltaResend: config.delta_resend_ns,
        deltaRound: config.delta_round_ns,
        deltaGrace: config.delta_grace_ns,
        deltaC: config.delta_c_ns,
        alphaPPB: config.alpha_ppb,
        deltaStage: config.delta_stage_ns,
        rMax: config.r_max,
        encodedConfigVersion: encoded_config_version,
    }
    .abi_encode()
    .into()
}

#[cfg(test)]
mod tests;
