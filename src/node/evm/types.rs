//! The parts of JSON-RPC answers this client reads: receipts, logs, the latest block's base
//! fee. Only the fields used are declared, so the extra fields L2s add (opBNB's `l1Fee`,
//! deposit transactions of type 0x7e) cannot make an answer undecodable. Values use
//! alloy-primitives' serde support (hex quantities, 0x-prefixed data).

use alloy_primitives::{Address, Bytes, B256, U128, U64};
use serde::{Deserialize, Deserializer};

/// A mined transaction's receipt (`eth_getTransactionReceipt`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub transaction_hash: B256,
    pub block_hash: B256,
    #[serde(deserialize_with = "quantity_u64")]
    pub block_number: u64,
    /// `status` 0x1 (success) or 0x0 (reverted). Pre-Byzantium receipts have no status and
    /// are refused as malformed: no chain this client targets produces them.
    #[serde(deserialize_with = "status_flag")]
    pub status: bool,
    #[serde(deserialize_with = "quantity_u64")]
    pub gas_used: u64,
    /// Absent on some older nodes; then the transaction's own gas price applies.
    #[serde(default, deserialize_with = "optional_quantity_u128")]
    pub effective_gas_price: Option<u128>,
    #[serde(default)]
    pub from: Option<Address>,
    #[serde(default)]
    pub to: Option<Address>,
    #[serde(default)]
    pub logs: Vec<Log>,
}

/// An event log (`eth_getLogs`, receipts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Log {
    pub address: Address,
    #[serde(default)]
    pub topics: Vec<B256>,
    #[serde(default)]
    pub data: Bytes,
    #[serde(default, deserialize_with = "optional_quantity_u64")]
    pub block_number: Option<u64>,
    #[serde(default)]
    pub block_hash: Option<B256>,
    #[serde(default)]
    pub transaction_hash: Option<B256>,
    #[serde(default, deserialize_with = "optional_quantity_u64")]
    pub log_index: Option<u64>,
    /// Set when a reorganisation removed the log; such logs are skipped.
    #[serde(default)]
    pub removed: bool,
}

/// The block fields the fee logic needs (`eth_getBlockByNumber(…, false)`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockHeader {
    #[serde(deserialize_with = "quantity_u64")]
    pub number: u64,
    /// Absent before London (and on chains without EIP-1559).
    #[serde(default, deserialize_with = "optional_quantity_u128")]
    pub base_fee_per_gas: Option<u128>,
}

/// Which state a read runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTag {
    Latest,
    Pending,
    Number(u64),
}

impl BlockTag {
    pub fn to_json(self) -> serde_json::Value {
        match self {
            BlockTag::Latest => "latest".into(),
            BlockTag::Pending => "pending".into(),
            BlockTag::Number(n) => quantity(n).into(),
        }
    }
}

/// A hex quantity as JSON-RPC wants it: `0x` and no leading zeros.
pub fn quantity(value: impl Into<u128>) -> String {
    format!("{:#x}", value.into())
}

pub(crate) fn quantity_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(U64::deserialize(d)?.to::<u64>())
}

fn optional_quantity_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<U64>::deserialize(d)?.map(|v| v.to::<u64>()))
}

fn optional_quantity_u128<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
    Ok(Option::<U128>::deserialize(d)?.map(|v| v.to::<u128>()))
}

fn status_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match U64::deserialize(d)?.to::<u64>() {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(serde::de::Error::custom(format!(
            "receipt status {other} is neither 0 nor 1"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn receipts_decode_with_l2_extras_and_without_effective_gas_price() {
        // Shape of an opBNB receipt (extra L1 fee fields are ignored).
        let receipt: Receipt = serde_json::from_value(json!({
            "blockHash": "0x5a0f2f5d0e1d0f3c9e2ab5c8a0d6f6c2b4f0b2a1c3e5d7f9a1b3c5d7e9f1a3b5",
            "blockNumber": "0x3b9aca0",
            "contractAddress": null,
            "cumulativeGasUsed": "0x1d8a8",
            "effectiveGasPrice": "0x1",
            "from": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
            "gasUsed": "0x1d8a8",
            "l1Fee": "0x2a8f",
            "l1GasPrice": "0x3",
            "logs": [],
            "logsBloom": "0x00",
            "status": "0x1",
            "to": "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf",
            "transactionHash": "0x2d6a7b0f6adeff38423d4c62cd8b6ccb708ddad85da5d3d06756ad4d8a04a6a2",
            "transactionIndex": "0x1",
            "type": "0x0"
        }))
        .expect("receipt");
        assert_eq!(receipt.block_number, 62_500_000);
        assert!(receipt.status);
        assert_eq!(receipt.gas_used, 121_000);
        assert_eq!(receipt.effective_gas_price, Some(1));

        let old: Receipt = serde_json::from_value(json!({
            "blockHash": "0x5a0f2f5d0e1d0f3c9e2ab5c8a0d6f6c2b4f0b2a1c3e5d7f9a1b3c5d7e9f1a3b5",
            "blockNumber": "0x10",
            "gasUsed": "0x5208",
            "status": "0x0",
            "transactionHash": "0x2d6a7b0f6adeff38423d4c62cd8b6ccb708ddad85da5d3d06756ad4d8a04a6a2"
        }))
        .expect("receipt");
        assert!(!old.status);
        assert_eq!(old.effective_gas_price, None);
    }

    #[test]
    fn receipts_without_status_are_refused() {
        let r = serde_json::from_value::<Receipt>(json!({
            "blockHash": "0x5a0f2f5d0e1d0f3c9e2ab5c8a0d6f6c2b4f0b2a1c3e5d7f9a1b3c5d7e9f1a3b5",
            "blockNumber": "0x10",
            "gasUsed": "0x5208",
            "root": "0x5a0f2f5d0e1d0f3c9e2ab5c8a0d6f6c2b4f0b2a1c3e5d7f9a1b3c5d7e9f1a3b5",
            "transactionHash": "0x2d6a7b0f6adeff38423d4c62cd8b6ccb708ddad85da5d3d06756ad4d8a04a6a2"
        }));
        assert!(r.is_err());
        let r = serde_json::from_value::<Receipt>(json!({
            "blockHash": "0x5a0f2f5d0e1d0f3c9e2ab5c8a0d6f6c2b4f0b2a1c3e5d7f9a1b3c5d7e9f1a3b5",
            "blockNumber": "0x10", "gasUsed": "0x5208", "status": "0x2",
            "transactionHash": "0x2d6a7b0f6adeff38423d4c62cd8b6ccb708ddad85da5d3d06756ad4d8a04a6a2"
        }));
        assert!(r.is_err());
    }

    #[test]
    fn quantities_and_tags_are_formatted_as_json_rpc_wants() {
        assert_eq!(quantity(0u64), "0x0");
        assert_eq!(quantity(500_000u64), "0x7a120");
        assert_eq!(BlockTag::Number(16).to_json(), json!("0x10"));
        assert_eq!(BlockTag::Latest.to_json(), json!("latest"));
        assert_eq!(BlockTag::Pending.to_json(), json!("pending"));
    }
}
