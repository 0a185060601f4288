//! Selectors, topics, calldata and decoding against vectors.py (eth-abi / eth-utils), and the
//! reads against a scripted node.

use std::time::Duration;

use alloy_sol_types::SolError;
use serde_json::json;

use super::*;
use crate::node::evm::test_support::MockNode;
use crate::node::evm::types::quantity;
use crate::node::ocr1::config_digest::{encode_offchain_config, SharedSecretEncryptions};

/// setConfig(address[],address[],uint8,uint64,bytes) with SIGNERS, TRANSMITTERS, f = 1, version 1, ENCODED.
const SET_CONFIG_CALLDATA: &str = concat!(
    "585aa7de00000000000000000000000000000000000000000000000000000000000000a0000000000000000000000000",
    "000000000000000000000000000000000000014000000000000000000000000000000000000000000000000000000000",
    "000000010000000000000000000000000000000000000000000000000000000000000001000000000000000000000000",
    "00000000000000000000000000000000000001e000000000000000000000000000000000000000000000000000000000",
    "000000040000000000000000000000001111111111111111111111111111111111111111000000000000000000000000",
    "121212121212121212121212121212121212121200000000000000000000000013131313131313131313131313131313",
    "131313130000000000000000000000001414141414141414141414141414141414141414000000000000000000000000",
    "000000000000000000000000000000000000000400000000000000000000000021212121212121212121212121212121",
    "212121210000000000000000000000002222222222222222222222222222222222222222000000000000000000000000",
    "232323232323232323232323232323232323232300000000000000000000000024242424242424242424242424242424",
    "242424240000000000000000000000000000000000000000000000000000000000000048000000000000000000000000",
    "0000000000000000000000000000000000000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b",
    "1c1d1e1f2021222324252627000000000000000000000000000000000000000000000000",
);

/// SP setConfig(struct) with SIGNERS, TRANSMITTERS, f = 1 and sp_config().
const SP_SET_CONFIG_CALLDATA: &str = concat!(
    "67dd81f00000000000000000000000000000000000000000000000000000000000000020000000000000000000000000",
    "00000000000000000000000000000000000000e000000000000000000000000000000000000000000000000000000000",
    "000001800000000000000000000000000000000000000000000000000000000000000001000000000000000000000000",
    "000000000000000000000000000000000000022000000000000000000000000000000000000000000000000000000000",
    "000002c00000000000000000000000000000000000000000000000000000000000000360000000000000000000000000",
    "00000000000000000000000000000000000003c000000000000000000000000000000000000000000000000000000000",
    "000000040000000000000000000000001111111111111111111111111111111111111111000000000000000000000000",
    "121212121212121212121212121212121212121200000000000000000000000013131313131313131313131313131313",
    "131313130000000000000000000000001414141414141414141414141414141414141414000000000000000000000000",
    "000000000000000000000000000000000000000400000000000000000000000021212121212121212121212121212121",
    "212121210000000000000000000000002222222222222222222222222222222222222222000000000000000000000000",
    "232323232323232323232323232323232323232300000000000000000000000024242424242424242424242424242424",
    "242424240000000000000000000000000000000000000000000000000000000000000004000000000000000000000000",
    "000000000000000000000000000000000000000100000000000000000000000000000000000000000000000000000000",
    "000000020000000000000000000000000000000000000000000000000000000000000002000000000000000000000000",
    "000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000",
    "00000004a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a1a1a1a1a1a1a1a1a1a1a1a1",
    "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2",
    "a2a2a2a2a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3000000000000000000000000",
    "0000000000000000000000000000000000000027313244334b6f6f57412c313244334b6f6f57422c313244334b6f6f57",
    "432c313244334b6f6f574400000000000000000000000000000000000000000000000000d1d1d1d1d1d1d1d1d1d1d1d1",
    "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d155555555555555555555555555555555555555555555555555555555",
    "555555550000000000000000000000000000000000000000000000000000000000000060000000000000000000000000",
    "0000000000000000000000000000000000000004e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0000000000000000000000000",
    "00000000e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e100000000000000000000000000000000e2e2e2e2e2e2e2e2e2e2e2e2",
    "e2e2e2e200000000000000000000000000000000e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3000000000000000000000000",
    "00000000",
);

/// SP setConsensusConfig with the deployed defaults (35 s, 17 s, 30 s, 12 s, 24 h, 0.5 %, 60 s, 6, version 1).
const SET_CONSENSUS_CONFIG_CALLDATA: &str = concat!(
    "672228710000000000000000000000000000000000000000000000000000000826299e00000000000000000000000000",
    "00000000000000000000000000000003f5476a0000000000000000000000000000000000000000000000000000000006",
    "fc23ac0000000000000000000000000000000000000000000000000000000002cb417800000000000000000000000000",
    "00000000000000000000000000004e94914f000000000000000000000000000000000000000000000000000000000000",
    "004c4b400000000000000000000000000000000000000000000000000000000df8475800000000000000000000000000",
    "000000000000000000000000000000000000000600000000000000000000000000000000000000000000000000000000",
    "00000001",
);

/// abi.encode(bytes16 0x0011…eeff, uint32 7, uint8 3, int192 -12345678900, uint64 1700000000).
const LATEST_TRANSMISSION_DETAILS: &str = concat!(
    "00112233445566778899aabbccddeeff0000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000070000000000000000000000000000000000000000000000000000000000000003",
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffd2023e3cc00000000000000000000000000000000",
    "0000000000000000000000006553f100",
);

/// abi.encode(uint32 2, uint32 123456, bytes16 0x000a0b…18).
const LATEST_CONFIG_DETAILS: &str = concat!(
    "000000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000",
    "0000000000000000000000000001e240000a0b0c0d0e0f10111213141516171800000000000000000000000000000000",
);

/// abi.encode(uint80 17, int256 6712345678900, uint256 1700000000, uint256 1700000000, uint80 17).
const LATEST_ROUND_DATA: &str = concat!(
    "000000000000000000000000000000000000000000000000000000000000001100000000000000000000000000000000",
    "00000000000000000000061ad6fad434000000000000000000000000000000000000000000000000000000006553f100",
    "000000000000000000000000000000000000000000000000000000006553f10000000000000000000000000000000000",
    "00000000000000000000000000000011",
);

/// ConfigSet data: (100, 2, SIGNERS, TRANSMITTERS, 1, 1, ENCODED).
const CONFIG_SET_DATA: &str = concat!(
    "000000000000000000000000000000000000000000000000000000000000006400000000000000000000000000000000",
    "0000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000e0",
    "000000000000000000000000000000000000000000000000000000000000018000000000000000000000000000000000",
    "000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000001",
    "000000000000000000000000000000000000000000000000000000000000022000000000000000000000000000000000",
    "000000000000000000000000000000040000000000000000000000001111111111111111111111111111111111111111",
    "000000000000000000000000121212121212121212121212121212121212121200000000000000000000000013131313",
    "131313131313131313131313131313130000000000000000000000001414141414141414141414141414141414141414",
    "000000000000000000000000000000000000000000000000000000000000000400000000000000000000000021212121",
    "212121212121212121212121212121210000000000000000000000002222222222222222222222222222222222222222",
    "000000000000000000000000232323232323232323232323232323232323232300000000000000000000000024242424",
    "242424242424242424242424242424240000000000000000000000000000000000000000000000000000000000000048",
    "0000000000000000000000000000000000000000000000000000000000000020000102030405060708090a0b0c0d0e0f",
    "101112131415161718191a1b1c1d1e1f2021222324252627000000000000000000000000000000000000000000000000",
);

/// RoundRequested data: (bytes16 0x0011…eeff, uint32 9, uint8 2).
const ROUND_REQUESTED_DATA: &str = concat!(
    "00112233445566778899aabbccddeeff0000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000090000000000000000000000000000000000000000000000000000000000000002",
);

const NS: i64 = 1_000_000_000;

fn signers() -> Vec<Address> {
    [0x11, 0x12, 0x13, 0x14].map(Address::repeat_byte).to_vec()
}

fn transmitters() -> Vec<Address> {
    [0x21, 0x22, 0x23, 0x24].map(Address::repeat_byte).to_vec()
}

/// 31 zero bytes, 0x20, then 00 01 … 27 (vectors.py ENCODED; not a real config).
fn encoded() -> Vec<u8> {
    let mut e = vec![0u8; 31];
    e.push(0x20);
    e.extend(0u8..40);
    e
}

/// vectors.py S / OFFCHAIN_KEYS / PEER_IDS / DH / SSH / ENCRYPTIONS, with the deployed timing.
fn sp_config() -> OffchainConfig {
    OffchainConfig {
        delta_progress_ns: 35 * NS,
        delta_resend_ns: 17 * NS,
        delta_round_ns: 30 * NS,
        delta_grace_ns: 12 * NS,
        delta_c_ns: 86_400 * NS,
        alpha_ppb: 5_000_000,
        delta_stage_ns: 60 * NS,
        r_max: 6,
        s: vec![1, 2, 2, 2],
        offchain_public_keys: (0..4).map(|i| [0xa0 + i; 32]).collect(),
        peer_ids: ["A", "B", "C", "D"]
            .map(|p| format!("12D3KooW{p}"))
            .to_vec(),
        shared_secret_encryptions: SharedSecretEncryptions {
            diffie_hellman_point: [0xd1; 32],
            shared_secret_hash: [0x55; 32],
            encryptions: (0..4).map(|i| [0xe0 + i; 16]).collect(),
        },
    }
}

fn contract_address() -> Address {
    "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf"
        .parse()
        .expect("addr")
}

#[test]
fn selectors_match_the_reference_table() {
    use IOffchainAggregator as A;
    use ISpOffchainAggregator as Sp;
    let table: &[([u8; 4], &str)] = &[
        (A::transmitCall::SELECTOR, "c9807539"),
        (A::latestRoundDataCall::SELECTOR, "feaf968c"),
        (A::getRoundDataCall::SELECTOR, "9a6fc8f5"),
        (A::latestAnswerCall::SELECTOR, "50d25bcd"),
        (A::latestTimestampCall::SELECTOR, "8205bf6a"),
        (A::latestRoundCall::SELECTOR, "668a0f02"),
        (A::getAnswerCall::SELECTOR, "b5ab58dc"),
        (A::getTimestampCall::SELECTOR, "b633620c"),
        (A::decimalsCall::SELECTOR, "313ce567"),
        (A::descriptionCall::SELECTOR, "7284e416"),
        (A::versionCall::SELECTOR, "54fd4d50"),
        (A::typeAndVersionCall::SELECTOR, "181f5a77"),
        (A::latestConfigDetailsCall::SELECTOR, "81ff7048"),
        (A::latestTransmissionDetailsCall::SELECTOR, "e5fe4577"),
        (A::transmittersCall::SELECTOR, "81411834"),
        (A::setConfigCall::SELECTOR, "585aa7de"),
        (Sp::setConfigCall::SELECTOR, "67dd81f0"),
        (Sp::setConsensusConfigCall::SELECTOR, "67222871"),
        (A::requestNewRoundCall::SELECTOR, "98e5b12a"),
        (A::setPayeesCall::SELECTOR, "9c849b30"),
        (A::setBillingCall::SELECTOR, "bd824706"),
        (A::minAnswerCall::SELECTOR, "22adbc78"),
        (A::maxAnswerCall::SELECTOR, "70da2f67"),
        (A::hasAccessCall::SELECTOR, "6b14daf8"),
        (A::addAccessCall::SELECTOR, "a118f249"),
        (A::ownerCall::SELECTOR, "8da5cb5b"),
    ];
    for (selector, expected) in table {
        assert_eq!(hex::encode(selector), *expected);
    }
    assert_eq!(
        Sp::setConfigCall::SIGNATURE,
        "setConfig((address[],address[],uint8,uint8[],bytes32[],string,(bytes32,bytes32,bytes16[])))"
    );
}

#[test]
fn event_topics_match_the_reference_table() {
    use IOffchainAggregator as A;
    let table: &[(B256, &str)] = &[
        (
            A::ConfigSet::SIGNATURE_HASH,
            "25d719d88a4512dd76c7442b910a83360845505894eb444ef299409e180f8fb9",
        ),
        (
            A::RoundRequested::SIGNATURE_HASH,
            "3ea16a923ff4b1df6526e854c9e3a995c43385d70e73359e10623c74f0b52037",
        ),
        (
            A::NewTransmission::SIGNATURE_HASH,
            "f6a97944f31ea060dfde0566e4167c1a1082551e64b60ecb14d599a9d023d451",
        ),
        (
            A::AnswerUpdated::SIGNATURE_HASH,
            "0559884fd3a460db3073b7fc896cc77986f16e378210ded43186175bf646fc5f",
        ),
        (
            A::NewRound::SIGNATURE_HASH,
            "0109fc6f55cf40689f02fbaad7af7fe7bbac8a3d2186600afc7d3e10cac60271",
        ),
        (
            A::OraclePaid::SIGNATURE_HASH,
            "d0b1dac935d85bd54cf0a33b0d41d39f8cf53a968465fc7ea2377526b8ac712c",
        ),
    ];
    for (topic, expected) in table {
        assert_eq!(hex::encode(topic), *expected);
    }
}

#[test]
fn standard_set_config_calldata_matches_eth_abi() {
    let calldata = set_config_calldata(&signers(), &transmitters(), 1, 1, &encoded());
    assert_eq!(hex::encode(&calldata), SET_CONFIG_CALLDATA);
}

#[test]
fn sp_set_config_and_consensus_config_calldata_match_eth_abi() {
    let config = sp_config();
    let calldata =
        sp_set_config_calldata(&signers(), &transmitters(), 1, &config).expect("calldata");
    assert_eq!(hex::encode(&calldata), SP_SET_CONFIG_CALLDATA);
    assert_eq!(
        hex::encode(set_consensus_config_calldata(&config, 1)),
        SET_CONSENSUS_CONFIG_CALLDATA
    );
    let mut comma = config;
    comma.peer_ids[2] = "a,b".into();
    assert_eq!(
        sp_set_config_calldata(&signers(), &transmitters(), 1, &comma),
        Err(ConfigError::CommaInPeerId(2))
    );
}

/// The SP contract builds `encoded = abi.encode(ConsensusConfig)` from the arguments of its two
/// calls; that must be what libocr (and `encode_offchain_config`) produce for the same config,
/// or the oracles would compute another digest than the contract.
#[test]
fn the_two_sp_calls_carry_every_field_of_the_encoded_config() {
    let config = sp_config();
    let set = ISpOffchainAggregator::setConfigCall::abi_decode(
        &sp_set_config_calldata(&signers(), &transmitters(), 1, &config).expect("calldata"),
    )
    .expect("decode")
    ._config;
    let timing = ISpOffchainAggregator::setConsensusConfigCall::abi_decode(
        &set_consensus_config_calldata(&config, 1),
    )
    .expect("decode");
    let rebuilt = OffchainConfig {
        delta_progress_ns: timing.deltaProgress,
        delta_resend_ns: timing.deltaResend,
        delta_round_ns: timing.deltaRound,
        delta_grace_ns: timing.deltaGrace,
        delta_c_ns: timing.deltaC,
        alpha_ppb: timing.alphaPPB,
        delta_stage_ns: timing.deltaStage,
        r_max: timing.rMax,
        s: set.s,
        offchain_public_keys: set.offchainPublicKeys.iter().map(|k| k.0).collect(),
        peer_ids: set.peerIDs.split(',').map(str::to_owned).collect(),
        shared_secret_encryptions: SharedSecretEncryptions {
            diffie_hellman_point: set.sharedSecretEncryptions.diffieHellmanPoint.0,
            shared_secret_hash: set.sharedSecretEncryptions.sharedSecretHash.0,
            encryptions: set
                .sharedSecretEncryptions
                .encryptions
                .iter()
                .map(|e| e.0)
                .collect(),
        },
    };
    assert_eq!(
        encode_offchain_config(&rebuilt).expect("encode"),
        encode_offchain_config(&config).expect("encode")
    );
    assert_eq!(timing.encodedConfigVersion, 1);
}

#[test]
fn transmit_calldata_is_the_ocr1_encoding() {
    let report = vec![0u8; 128 + 32];
    let sig = [1u8; 64].iter().copied().chain([0]).collect::<Vec<u8>>();
    let sig: [u8; SIGNATURE_BYTES] = sig.try_into().expect("65");
    let calldata = transmit_calldata(&report, &[sig, sig]).expect("calldata");
    assert_eq!(&calldata[..4], &IOffchainAggregator::transmitCall::SELECTOR);
    assert_eq!(calldata.len(), 4 + 7 * 32 + report.len() + 2 * 32 + 2 * 32);
}

fn hex_log(topic0: B256, extra_topics: Vec<B256>, data: &str, block: u64) -> serde_json::Value {
    let mut topics = vec![topic0];
    topics.extend(extra_topics);
    json!({
        "address": contract_address(),
        "topics": topics,
        "data": format!("0x{data}"),
        "blockNumber": quantity(block),
        "transactionHash": B256::repeat_byte(0xcc),
        "logIndex": "0x0",
        "removed": false,
    })
}

#[tokio::test]
async fn reads_decode_eth_abi_return_data_and_use_an_eoa_for_transmission_details() {
    let transmitter = Address::repeat_byte(0x21);
    let node = MockNode::start(move |method, params| {
        assert_eq!(method, "eth_call");
        let data = params[0]["data"].as_str().unwrap_or_default().to_owned();
        let answer = match &data[..10] {
            "0xe5fe4577" => {
                if params[0]["from"] != json!(transmitter) {
                    return json!({"error": {"code": 3, "message": "execution reverted: Only callable by EOA", "data": format!("0x{}", hex::encode(alloy_sol_types::Revert::from("Only callable by EOA").abi_encode()))}});
                }
                LATEST_TRANSMISSION_DETAILS
            }
            "0x81ff7048" => LATEST_CONFIG_DETAILS,
            "0xfeaf968c" => LATEST_ROUND_DATA,
            _ => "",
        };
        json!({"result": format!("0x{answer}")})
    })
    .await;
    let rpc = Arc::new(RpcClient::new(node.url(), Duration::from_secs(5)).expect("client"));
    let contract = AggregatorContract::new(rpc, contract_address());
    let details = contract
        .latest_transmission_details(transmitter)
        .await
        .expect("details");
    assert_eq!(
        details,
        TransmissionDetails {
            digest: "00112233445566778899aabbccddeeff".parse().expect("digest"),
            epoch: 7,
            round: 3,
            latest_answer: I192::try_from(-12_345_678_900i64).expect("i192"),
            latest_timestamp: 1_700_000_000,
        }
    );
    assert_eq!(details.epoch_round(), EpochRound::new(7, 3));
    assert_eq!(
        contract.latest_config_details().await.expect("config"),
        ConfigDetails {
            config_count: 2,
            block_number: 123_456,
            digest: "000a0b0c0d0e0f101112131415161718".parse().expect("digest"),
        }
    );
    assert_eq!(
        contract.latest_round_data().await.expect("round"),
        RoundData {
            round_id: 17,
            answer: I256::try_from(6_712_345_678_900i64).expect("i256"),
            started_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            answered_in_round: 17,
        }
    );
    // An address without code answers "0x": a decoding error that says so.
    let e = contract.transmitters().await.expect_err("empty");
    assert!(matches!(e, ChainError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("OffchainAggregator"), "{e}");
}

#[tokio::test]
async fn config_set_and_round_requested_logs_are_found_and_decoded() {
    let requester = Address::repeat_byte(0x77);
    let node = MockNode::start(move |method, params| match method {
        "eth_blockNumber" => json!({"result": "0x2710"}),
        "eth_getLogs" => {
            let filter = &params[0];
            let topic0: B256 = serde_json::from_value(filter["topics"][0].clone()).expect("topic");
            let from = u64::from_str_radix(filter["fromBlock"].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0);
            let to = u64::from_str_radix(filter["toBlock"].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0);
            if to - from + 1 > 5000 {
                return json!({"error": {"code": -32000, "message": "exceed maximum block range: 5000"}});
            }
            let mut logs = Vec::new();
            if topic0 == IOffchainAggregator::ConfigSet::SIGNATURE_HASH && from <= 123_456 && 123_456 <= to {
                logs.push(hex_log(topic0, vec![], CONFIG_SET_DATA, 123_456));
            }
            if topic0 == IOffchainAggregator::RoundRequested::SIGNATURE_HASH {
                for block in [10, 6_000, 9_999] {
                    if from <= block && block <= to {
                        logs.push(hex_log(topic0, vec![requester.into_word()], ROUND_REQUESTED_DATA, block));
                    }
                }
            }
            json!({"result": logs})
        }
        other => panic!("{other}"),
    })
    .await;
    let rpc = Arc::new(RpcClient::new(node.url(), Duration::from_secs(5)).expect("client"));
    let contract = AggregatorContract::new(rpc, contract_address());
    let config = contract
        .config_set_at(123_456)
        .await
        .expect("logs")
        .expect("found");
    assert_eq!(config.previous_config_block_number, 100);
    assert_eq!(config.config_count, 2);
    assert_eq!(config.signers, signers());
    assert_eq!(config.transmitters, transmitters());
    assert_eq!(config.threshold, 1);
    assert_eq!(config.encoded_config_version, 1);
    assert_eq!(config.encoded.as_ref(), encoded().as_slice());
    assert_eq!(config.block_number, Some(123_456));
    assert_eq!(
        config.digest(contract_address()),
        config_digest(
            contract_address(),
            2,
            &signers(),
            &transmitters(),
            1,
            1,
            &encoded()
        )
    );
    assert_eq!(contract.config_set_at(7).await.expect("logs"), None);

    let scan = contract.round_requested_since(5).await.expect("scan");
    assert_eq!(scan.to_block, 10_000);
    let blocks: Vec<_> = scan.events.iter().map(|e| e.block_number).collect();
    assert_eq!(blocks, vec![Some(10), Some(6_000), Some(9_999)]);
    assert_eq!(
        scan.events[0],
        RoundRequestedEvent {
            requester,
            digest: "00112233445566778899aabbccddeeff".parse().expect("digest"),
            epoch: 9,
            round: 2,
            block_number: Some(10),
        }
    );
}
