//! What node 1 puts on the feeds' contracts besides the OCR configuration: each oracle's payee
//! (`chain.payee`, `chain.payees`) and the billing parameters (`chain.billing`). The upstream
//! OCR1 contract refuses a configuration naming a transmitter without a payee, and pays LINK to
//! the payees as its billing parameters say.

use std::collections::BTreeMap;

use crate::config::defaults::chain;
use crate::config::reader::{Fields, Report};
use crate::config::values::EvmAddress;

/// Who is paid for an oracle's work when nothing more specific is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayeeRule {
    /// The admin's address (`chain.adminPrivateKey`, else node 1's transmitter): the contracts'
    /// owner, which is also what the Super Protocol contract's `setConfig` sets missing payees to.
    Admin,
    /// Each oracle's own transmitter address.
    Transmitter,
    /// One address for every oracle.
    Address(EvmAddress),
}

/// Every oracle's payee: the rule, and per-oracle exceptions keyed by node number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payees {
    pub default: PayeeRule,
    pub per_node: BTreeMap<u32, EvmAddress>,
}

/// What an absent `chain.payee` and `chain.payees` mean.
impl Default for Payees {
    fn default() -> Self {
        read_payees(
            &mut Report::default(),
            &mut Fields::empty("solution.chain"),
            &[],
        )
    }
}

impl Payees {
    /// The payee of oracle `node`, whose transmitter is `transmitter`, with `admin` configuring.
    pub fn payee_for(&self, node: u32, transmitter: [u8; 20], admin: [u8; 20]) -> [u8; 20] {
        if let Some(address) = self.per_node.get(&node) {
            return address.0;
        }
        match self.default {
            PayeeRule::Admin => admin,
            PayeeRule::Transmitter => transmitter,
            PayeeRule::Address(address) => address.0,
        }
    }
}

/// `setBilling` parameters, in the contract's own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billing {
    /// Highest gas price reimbursed (gwei).
    pub maximum_gas_price: u32,
    /// Below this gas price (gwei) the transmitter also gets half the difference.
    pub reasonable_gas_price: u32,
    /// Reimbursement in millionths of LINK per ETH of gas.
    pub micro_link_per_eth: u32,
    /// Reward per observation in a transmitted report (LINK-gwei, 10^-9 LINK).
    pub link_gwei_per_observation: u32,
    /// Reward per transmitted report to its transmitter (LINK-gwei).
    pub link_gwei_per_transmission: u32,
}

impl Billing {
    /// In the order of `setBilling`'s arguments and `getBilling`'s results.
    pub fn as_array(&self) -> [u32; 5] {
        [
            self.maximum_gas_price,
            self.reasonable_gas_price,
            self.micro_link_per_eth,
            self.link_gwei_per_observation,
            self.link_gwei_per_transmission,
        ]
    }
}

const BILLING_FIELDS: [&str; 5] = [
    "maximumGasPrice",
    "reasonableGasPrice",
    "microLinkPerEth",
    "linkGweiPerObservation",
    "linkGweiPerTransmission",
];

/// `chain.payee` and `chain.payees`; `oracles` are the oracle node numbers (2..N).
pub fn read_payees(r: &mut Report, f: &mut Fields<'_>, oracles: &[u32]) -> Payees {
    let default = match f.string(r, "payee").unwrap_or(chain::PAYEE) {
        "admin" => PayeeRule::Admin,
        "transmitter" => PayeeRule::Transmitter,
        text => match non_zero_address(r, &f.path_of("payee"), text) {
            Some(address) => PayeeRule::Address(address),
            None => PayeeRule::Admin,
        },
    };
    let mut per_node = BTreeMap::new();
    let path = f.path_of("payees");
    for (key, text) in f.string_map(r, "payees").unwrap_or_default() {
        let node = key.parse::<u32>().ok().filter(|n| oracles.contains(n));
        let Some(node) = node else {
            let shown: String = key.chars().take(16).collect();
            r.error(
                path.clone(),
                format!(
                    "{shown:?} is not an oracle's node number ({}..{})",
                    oracles.first().copied().unwrap_or(2),
                    oracles.last().copied().unwrap_or(2)
                ),
            );
            continue;
        };
        if let Some(address) = non_zero_address(r, &format!("{path}.{node}"), &text) {
            per_node.insert(node, address);
        }
    }
    Payees { default, per_node }
}

fn non_zero_address(r: &mut Report, path: &str, text: &str) -> Option<EvmAddress> {
    match text.parse::<EvmAddress>() {
        Ok(address) if address.0 == [0; 20] => {
            r.error(
                path,
                "must not be the zero address (the contract pays nobody there)",
            );
            None
        }
        Ok(address) => Some(address),
        Err(e) => {
            r.error(
                path,
                format!("{e}, or \"admin\" / \"transmitter\" (chain.payee only)"),
            );
            None
        }
    }
}

/// `chain.billing`: absent leaves each contract's billing as it is; present, all five values.
pub fn read_billing(r: &mut Report, f: &mut Fields<'_>) -> Option<Billing> {
    let mut b = f.object(r, "billing")?;
    let mut values = [0u32; 5];
    let mut complete = true;
    for (value, field) in values.iter_mut().zip(BILLING_FIELDS) {
        match b.required_integer(r, field, 0, u64::from(u32::MAX)) {
            Some(v) => *value = v as u32,
            None => complete = false,
        }
    }
    if values[1] > values[0] {
        r.error(
            b.path_of("reasonableGasPrice"),
            "must not exceed maximumGasPrice",
        );
    }
    b.finish(r, &[]);
    complete.then_some(Billing {
        maximum_gas_price: values[0],
        reasonable_gas_price: values[1],
        micro_link_per_eth: values[2],
        link_gwei_per_observation: values[3],
        link_gwei_per_transmission: values[4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: serde_json::Value) -> (Payees, Option<Billing>, Report) {
        let mut r = Report::default();
        let mut f = Fields::of(&mut r, "solution.chain", &value).expect("object");
        let payees = read_payees(&mut r, &mut f, &[2, 3, 4, 5]);
        let billing = read_billing(&mut r, &mut f);
        (payees, billing, r)
    }

    const ONE: &str = "0x1111111111111111111111111111111111111111";
    const TWO: &str = "0x2222222222222222222222222222222222222222";

    #[test]
    fn payees_default_to_the_admin_and_each_rule_picks_its_address() {
        let (p, billing, r) = read(json!({}));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(p, Payees::default());
        assert_eq!(billing, None, "billing is left as the contract holds it");
        let (transmitter, admin) = ([7; 20], [9; 20]);
        let cases = [
            (json!({}), 3, admin),
            (json!({"payee": "admin"}), 3, admin),
            (json!({"payee": "transmitter"}), 3, transmitter),
            (json!({"payee": ONE}), 3, [0x11; 20]),
            (json!({"payee": ONE, "payees": {"3": TWO}}), 3, [0x22; 20]),
            (json!({"payee": ONE, "payees": {"3": TWO}}), 4, [0x11; 20]),
            (
                json!({"payee": "transmitter", "payees": {"5": TWO}}),
                5,
                [0x22; 20],
            ),
        ];
        for (value, node, expected) in cases {
            let (p, _, r) = read(value.clone());
            assert!(r.is_ok(), "{value}: {r:?}");
            assert_eq!(p.payee_for(node, transmitter, admin), expected, "{value}");
        }
    }

    #[test]
    fn bad_payees_are_errors_naming_the_field() {
        for (value, field) in [
            (json!({"payee": "0x12"}), "solution.chain.payee"),
            (json!({"payee": "nobody"}), "solution.chain.payee"),
            (
                json!({"payee": "0x0000000000000000000000000000000000000000"}),
                "solution.chain.payee",
            ),
            (json!({"payees": {"3": "0xabc"}}), "solution.chain.payees.3"),
            (json!({"payees": {"1": ONE}}), "solution.chain.payees"),
            (json!({"payees": {"9": ONE}}), "solution.chain.payees"),
            (json!({"payees": {"x": ONE}}), "solution.chain.payees"),
            (json!({"payees": {"3": 5}}), "solution.chain.payees.3"),
            (json!({"payees": [ONE]}), "solution.chain.payees"),
            (
                // A mixed-case address with a broken EIP-55 checksum.
                json!({"payee": "0x52908400098527886e0F7030069857D2E4169EE7"}),
                "solution.chain.payee",
            ),
        ] {
            let (_, _, r) = read(value.clone());
            assert!(!r.is_ok(), "{value} accepted");
            assert!(format!("{r:?}").contains(field), "{value}: {r:?}");
        }
    }

    #[test]
    fn billing_takes_all_five_values_in_the_contracts_units() {
        let (_, billing, r) = read(json!({"billing": {
            "maximumGasPrice": 1000, "reasonableGasPrice": "10", "microLinkPerEth": 200000000,
            "linkGweiPerObservation": 1000000, "linkGweiPerTransmission": 5000000}}));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            billing.map(|b| b.as_array()),
            Some([1000, 10, 200_000_000, 1_000_000, 5_000_000])
        );
        for (value, field) in [
            (
                json!({"billing": {"maximumGasPrice": 1}}),
                "solution.chain.billing.reasonableGasPrice",
            ),
            (
                json!({"billing": {"maximumGasPrice": 1, "reasonableGasPrice": 2,
                "microLinkPerEth": 0, "linkGweiPerObservation": 0, "linkGweiPerTransmission": 0}}),
                "solution.chain.billing.reasonableGasPrice",
            ),
            (
                json!({"billing": {"maximumGasPrice": 4294967296u64, "reasonableGasPrice": 0,
                "microLinkPerEth": 0, "linkGweiPerObservation": 0, "linkGweiPerTransmission": 0}}),
                "solution.chain.billing.maximumGasPrice",
            ),
            (
                json!({"billing": {"maximumGasPrice": 1, "reasonableGasPrice": 0,
                "microLinkPerEth": 0, "linkGweiPerObservation": 0, "linkGweiPerTransmission": 0,
                "linkPerEth": 3}}),
                "solution.chain.billing.linkPerEth",
            ),
        ] {
            let (_, billing, r) = read(value.clone());
            assert!(!r.is_ok(), "{value} accepted");
            assert!(format!("{r:?}").contains(field), "{value}: {r:?}");
            if field.ends_with("maximumGasPrice") {
                assert_eq!(billing, None);
            }
        }
    }
}
