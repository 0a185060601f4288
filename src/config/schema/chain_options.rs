//! `chain`: how the oracles use the EVM chain named by `chainlinkChainId` and
//! `chainlinkRpcHttpUrl`: whether they transmit at all, transaction fees, timeouts, how they
//! read the contracts, and which `setConfig` the contracts have.

use std::time::Duration;

use super::contract_admin::{read_billing, read_payees, Billing, Payees};
use crate::config::defaults::chain;
use crate::config::reader::{Fields, Report};
use crate::config::secret::Secret;
use crate::config::values::secp256k1_key_field;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GasType {
    /// Type-0 transactions with an EIP-155 chain id (what the reference deployment sends).
    Legacy,
    /// Type-2 (EIP-1559) transactions.
    Eip1559,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetConfigFunction {
    /// The Super Protocol contract's `setConfig(DonConfig)` (67dd81f0).
    SuperProtocol,
    /// libocr's `setConfig(address[],address[],uint8,uint64,bytes)` (585aa7de).
    Standard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOptions {
    /// `false`: reports are produced and stored but nothing is read from or sent to a chain
    /// (local testing); the DON's latest report stands in for the contract.
    pub enabled: bool,
    pub rpc_timeout: Duration,
    pub gas_type: GasType,
    pub gas_limit: u64,
    /// Fixed legacy gas price; `None` asks the node.
    pub gas_price_wei: Option<u128>,
    pub max_fee_per_gas_wei: Option<u128>,
    pub max_priority_fee_per_gas_wei: Option<u128>,
    /// No fee ever exceeds this, replacements included.
    pub max_gas_price_wei: u128,
    pub gas_bump_percent: u32,
    pub receipt_timeout: Duration,
    /// No receipt after this long: the transaction is re-sent with bumped fees.
    pub rebroadcast_after: Duration,
    /// Largest block range of one `eth_getLogs` request.
    pub max_log_range: u64,
    /// How often each oracle checks the contracts' configuration.
    pub contract_poll_interval: Duration,
    pub set_config_function: SetConfigFunction,
    /// The key `enclave don-config --submit` sends with (the contracts' owner/admin); node 1's
    /// transmitter key when absent, as in the reference deployment.
    pub admin_private_key: Option<Secret<String>>,
    /// Node 1 puts each feed's configuration on its contract at boot (what `enclave don-config
    /// --submit` does by hand), with the admin key.
    pub configure_contracts: bool,
    /// Each oracle's payee, set on contracts that require one (`setPayees`).
    pub payees: Payees,
    /// Billing parameters to put on every contract; `None` leaves each contract's as it is.
    pub billing: Option<Billing>,
}

/// What an absent `chain` section means: the defaults, read the one way they are read.
impl Default for ChainOptions {
    fn default() -> Self {
        read_chain_options(&mut Report::default(), None, &[])
    }
}

/// `oracles`: the oracle node numbers (2..N), which `chain.payees` is keyed by.
pub fn read_chain_options(r: &mut Report, f: Option<Fields<'_>>, oracles: &[u32]) -> ChainOptions {
    let mut f = f.unwrap_or_else(|| Fields::empty("solution.chain"));
    let gas_type = match f.string(r, "gasType").unwrap_or(chain::GAS_TYPE) {
        "eip1559" => GasType::Eip1559,
        "legacy" => GasType::Legacy,
        _ => {
            r.error(f.path_of("gasType"), "must be \"legacy\" or \"eip1559\"");
            GasType::Legacy
        }
    };
    let set_config_function = match f
        .string(r, "setConfigFunction")
        .unwrap_or(chain::SET_CONFIG_FUNCTION)
    {
        "standard" => SetConfigFunction::Standard,
        "superprotocol" => SetConfigFunction::SuperProtocol,
        _ => {
            r.error(
                f.path_of("setConfigFunction"),
                "must be \"superprotocol\" or \"standard\"",
            );
            SetConfigFunction::SuperProtocol
        }
    };
    let options = ChainOptions {
        enabled: f.boolean_or(r, "enabled", chain::ENABLED),
        rpc_timeout: f.millis(r, "rpcTimeoutMs", 1_000, 60_000, chain::RPC_TIMEOUT_MS),
        gas_type,
        gas_limit: f.integer_or(r, "gasLimit", 21_000, 30_000_000, chain::GAS_LIMIT),
        gas_price_wei: f.big_integer(r, "gasPriceWei", 0),
        max_fee_per_gas_wei: f.big_integer(r, "maxFeePerGasWei", 1),
        max_priority_fee_per_gas_wei: f.big_integer(r, "maxPriorityFeePerGasWei", 0),
        max_gas_price_wei: f
            .big_integer(r, "maxGasPriceWei", 1)
            .unwrap_or(chain::MAX_GAS_PRICE_WEI),
        gas_bump_percent: f.integer_or(r, "gasBumpPercent", 10, 1000, chain::GAS_BUMP_PERCENT)
            as u32,
        receipt_timeout: f.millis(
            r,
            "receiptTimeoutMs",
            5_000,
            3_600_000,
            chain::RECEIPT_TIMEOUT_MS,
        ),
        rebroadcast_after: f.millis(
            r,
            "rebroadcastAfterMs",
            1_000,
            600_000,
            chain::REBROADCAST_AFTER_MS,
        ),
        max_log_range: f.integer_or(r, "maxLogRange", 100, 100_000, chain::MAX_LOG_RANGE),
        contract_poll_interval: f.millis(
            r,
            "contractPollIntervalMs",
            1_000,
            3_600_000,
            chain::CONTRACT_POLL_INTERVAL_MS,
        ),
        set_config_function,
        admin_private_key: secp256k1_key_field(r, &mut f, "adminPrivateKey"),
        configure_contracts: f.boolean_or(r, "configureContracts", chain::CONFIGURE_CONTRACTS),
        payees: read_payees(r, &mut f, oracles),
        billing: read_billing(r, &mut f),
    };
    if options.configure_contracts && !options.enabled {
        r.warn(
            f.path_of("configureContracts"),
            "has no effect while chain.enabled is false",
        );
    }
    let fee_fields = [
        (
            "gasPriceWei",
            options.gas_price_wei.is_some(),
            GasType::Legacy,
        ),
        (
            "maxFeePerGasWei",
            options.max_fee_per_gas_wei.is_some(),
            GasType::Eip1559,
        ),
        (
            "maxPriorityFeePerGasWei",
            options.max_priority_fee_per_gas_wei.is_some(),
            GasType::Eip1559,
        ),
    ];
    for (field, set, applies_to) in fee_fields {
        if set && applies_to != options.gas_type {
            r.error(
                f.path_of(field),
                format!(
                    "does not apply to gasType {:?}",
                    gas_type_name(options.gas_type)
                ),
            );
        }
    }
    for (field, value) in [
        ("gasPriceWei", options.gas_price_wei),
        ("maxFeePerGasWei", options.max_fee_per_gas_wei),
    ] {
        if value.is_some_and(|v| v > options.max_gas_price_wei) {
            r.error(f.path_of(field), "must not exceed maxGasPriceWei");
        }
    }
    if options.rebroadcast_after >= options.receipt_timeout {
        r.error(
            f.path_of("rebroadcastAfterMs"),
            "must be less than receiptTimeoutMs",
        );
    }
    f.finish(r, &[]);
    options
}

fn gas_type_name(t: GasType) -> &'static str {
    match t {
        GasType::Legacy => "legacy",
        GasType::Eip1559 => "eip1559",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: serde_json::Value) -> (ChainOptions, Report) {
        let mut r = Report::default();
        let f = Fields::of(&mut r, "solution.chain", &value);
        (read_chain_options(&mut r, f, &[2, 3, 4, 5]), r)
    }

    #[test]
    fn defaults_are_the_reference_deployments_legacy_transactions() {
        let (o, r) = read(json!({}));
        assert!(r.is_ok());
        assert_eq!(o, ChainOptions::default());
        assert!(o.enabled);
    }

    #[test]
    fn eip1559_settings_are_read() {
        let (o, r) = read(
            json!({"enabled": false, "gasType": "eip1559", "maxFeePerGasWei": "3000000000",
            "maxPriorityFeePerGasWei": 1000000, "gasLimit": 300000, "receiptTimeoutMs": 60000,
            "rebroadcastAfterMs": 10000, "setConfigFunction": "standard"}),
        );
        assert!(r.is_ok(), "{r:?}");
        assert!(!o.enabled);
        assert_eq!(o.gas_type, GasType::Eip1559);
        assert_eq!(o.max_fee_per_gas_wei, Some(3_000_000_000));
        assert_eq!(o.set_config_function, SetConfigFunction::Standard);
    }

    #[test]
    fn configure_contracts_is_off_unless_asked_and_warned_about_without_a_chain() {
        let (o, r) = read(json!({"configureContracts": true}));
        assert!(r.is_ok(), "{r:?}");
        assert!(o.configure_contracts);
        let (o, r) = read(json!({"enabled": false, "configureContracts": true}));
        assert!(r.is_ok(), "{r:?}");
        assert!(o.configure_contracts);
        assert!(
            format!("{r:?}").contains("solution.chain.configureContracts"),
            "{r:?}"
        );
        let (_, r) = read(json!({"configureContracts": "yes"}));
        assert!(!r.is_ok());
    }

    #[test]
    fn contradictions_are_errors_naming_the_field() {
        for (value, field) in [
            (json!({"gasType": "fast"}), "solution.chain.gasType"),
            (
                json!({"maxFeePerGasWei": 5}),
                "solution.chain.maxFeePerGasWei",
            ),
            (
                json!({"gasType": "eip1559", "gasPriceWei": 5}),
                "solution.chain.gasPriceWei",
            ),
            (
                json!({"gasPriceWei": "2000000000000"}),
                "solution.chain.gasPriceWei",
            ),
            (
                json!({"rebroadcastAfterMs": 200000}),
                "solution.chain.rebroadcastAfterMs",
            ),
            (json!({"gasLimit": 100}), "solution.chain.gasLimit"),
            (
                json!({"setConfigFunction": "x"}),
                "solution.chain.setConfigFunction",
            ),
            (json!({"gas": {}}), "solution.chain.gas"),
            (
                json!({"adminPrivateKey": "abc"}),
                "solution.chain.adminPrivateKey",
            ),
        ] {
            let (_, r) = read(value.clone());
            assert!(!r.is_ok(), "{value} accepted");
            assert!(format!("{r:?}").contains(field), "{value}: {r:?}");
        }
    }
}
