//! Gas pricing: where the first attempt's fees come from, and how a stuck transaction is
//! re-priced for a replacement.
//!
//! A replacement (same nonce) only enters geth's pool if it raises *both* the fee cap and the
//! tip by at least `txpool.pricebump` (default 10 %) over the pending one, and strictly
//! (`core/txpool/legacypool/list.go`: `new ≥ old·(100+bump)/100` and `new > old`). The strict
//! part matters at the bottom: the deployed configuration pays 1 wei (ocr-and-sources.md §0)
//! and 10 % of 1 wei rounds to nothing, so every bump adds at least 1 wei.

use super::error::ChainError;
use super::rpc::RpcClient;

/// geth's default `--txpool.pricebump`; a smaller bump is never accepted as a replacement.
pub const MIN_BUMP_PERCENT: u32 = 10;
/// `LimitDefault` of the current Chainlink deployment (ocr-and-sources.md §0).
pub const DEFAULT_GAS_LIMIT: u64 = 500_000;
/// A plain value transfer; no transaction can use less.
pub const MIN_GAS_LIMIT: u64 = 21_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GasKind {
    /// Type-0 transactions with an EIP-155 chain id. `None` asks the node (`eth_gasPrice`).
    Legacy { gas_price_wei: Option<u128> },
    /// Type-2 transactions. `None` for the fee cap means 2 × latest base fee + tip (so the
    /// transaction stays includable through six full blocks of base-fee growth); `None` for the
    /// tip asks the node (`eth_maxPriorityFeePerGas`).
    Eip1559 {
        max_fee_per_gas_wei: Option<u128>,
        max_priority_fee_per_gas_wei: Option<u128>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasPolicy {
    pub kind: GasKind,
    /// Gas limit of every transaction (OCR1 `transmit` of a 4-oracle report uses ~100k–200k).
    pub gas_limit: u64,
    /// No fee (gas price, or max fee per gas) ever exceeds this, replacements included.
    pub max_gas_price_wei: u128,
    /// Fee increase per replacement, in percent; at least [`MIN_BUMP_PERCENT`].
    pub bump_percent: u32,
}

impl Default for GasPolicy {
    /// What the current deployment uses: legacy transactions at the node's gas price, 500k gas,
    /// 20 % bumps, capped at 1000 gwei.
    fn default() -> Self {
        Self {
            kind: GasKind::Legacy {
                gas_price_wei: None,
            },
            gas_limit: DEFAULT_GAS_LIMIT,
            max_gas_price_wei: 1_000_000_000_000,
            bump_percent: 20,
        }
    }
}

/// The fees of one signed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fees {
    Legacy {
        gas_price: u128,
    },
    Eip1559 {
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
    },
}

impl Fees {
    /// The most the transaction can pay per gas: what the balance must cover.
    pub fn max_price(&self) -> u128 {
        match *self {
            Fees::Legacy { gas_price } => gas_price,
            Fees::Eip1559 {
                max_fee_per_gas, ..
            } => max_fee_per_gas,
        }
    }

    /// (fee cap, tip) as geth's pool compares them; a legacy price is both.
    fn cap_and_tip(&self) -> (u128, u128) {
        match *self {
            Fees::Legacy { gas_price } => (gas_price, gas_price),
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => (max_fee_per_gas, max_priority_fee_per_gas),
        }
    }
}

impl GasPolicy {
    pub fn validate(&self) -> Result<(), ChainError> {
        let bad = |what: String| Err(ChainError::Config(what));
        if self.bump_percent < MIN_BUMP_PERCENT {
            return bad(format!(
                "bump_percent {} is below {MIN_BUMP_PERCENT}: nodes refuse such replacements",
                self.bump_percent
            ));
        }
        if self.gas_limit < MIN_GAS_LIMIT {
            return bad(format!(
                "gas_limit {} is below {MIN_GAS_LIMIT}",
                self.gas_limit
            ));
        }
        if self.max_gas_price_wei == 0 {
            return bad("max_gas_price_wei must be positive".into());
        }
        let fixed = match self.kind {
            GasKind::Legacy { gas_price_wei } => gas_price_wei,
            GasKind::Eip1559 {
                max_fee_per_gas_wei,
                ..
            } => max_fee_per_gas_wei,
        };
        if let Some(fixed) = fixed.filter(|f| *f > self.max_gas_price_wei) {
            return bad(format!(
                "the fixed gas price {fixed} wei is above max_gas_price_wei {}",
                self.max_gas_price_wei
            ));
        }
        Ok(())
    }

    /// The fees of a first attempt: the fixed values, or what the node suggests now; capped.
    pub async fn initial_fees(&self, rpc: &RpcClient) -> Result<Fees, ChainError> {
        let fees = match self.kind {
            GasKind::Legacy { gas_price_wei } => Fees::Legacy {
                gas_price: match gas_price_wei {
                    Some(price) => price,
                    None => rpc.gas_price().await?,
                },
            },
            GasKind::Eip1559 {
                max_fee_per_gas_wei,
                max_priority_fee_per_gas_wei,
            } => {
                let tip = match max_priority_fee_per_gas_wei {
                    Some(tip) => tip,
                    None => rpc.max_priority_fee().await?,
                };
                let max_fee = match max_fee_per_gas_wei {
                    Some(max_fee) => max_fee,
                    None => {
                        let base = rpc.base_fee().await?.ok_or_else(|| {
                            ChainError::Config(
                                "the chain has no base fee (no EIP-1559): use legacy gas".into(),
                            )
                        })?;
                        base.saturating_mul(2).saturating_add(tip)
                    }
                };
                Fees::Eip1559 {
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: tip,
                }
            }
        };
        let capped = self.cap(fees);
        if capped != fees {
            tracing::warn!(
                wanted = fees.max_price(),
                cap = self.max_gas_price_wei,
                "gas price above the configured cap; using the cap"
            );
        }
        Ok(capped)
    }

    /// `fees` with the price (or fee cap) at most `max_gas_price_wei` and the tip at most the
    /// fee cap (a node refuses a tip above the cap).
    pub fn cap(&self, fees: Fees) -> Fees {
        match fees {
            Fees::Legacy { gas_price } => Fees::Legacy {
                gas_price: gas_price.min(self.max_gas_price_wei),
            },
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => {
                let max_fee = max_fee_per_gas.min(self.max_gas_price_wei);
                Fees::Eip1559 {
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: max_priority_fee_per_gas.min(max_fee),
                }
            }
        }
    }

    /// One replacement step: every component up by `bump_percent` (rounded up) and by at
    /// least 1 wei, then capped.
    pub fn bump(&self, previous: Fees) -> Fees {
        let up = |v: u128| {
            let bumped = v
                .saturating_mul(100 + u128::from(self.bump_percent))
                .div_ceil(100);
            bumped.max(v.saturating_add(1))
        };
        self.cap(match previous {
            Fees::Legacy { gas_price } => Fees::Legacy {
                gas_price: up(gas_price),
            },
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => Fees::Eip1559 {
                max_fee_per_gas: up(max_fee_per_gas),
                max_priority_fee_per_gas: up(max_priority_fee_per_gas),
            },
        })
    }

    /// The fees of attempt `attempt` (0 = `initial`, k = k bumps), never above the cap.
    pub fn fees_for_attempt(&self, initial: Fees, attempt: u32) -> Fees {
        let mut fees = self.cap(initial);
        for _ in 0..attempt {
            let next = self.bump(fees);
            if next == fees {
                break; // at the cap: further bumps change nothing
            }
            fees = next;
        }
        fees
    }

    /// The fees for replacing a pending transaction that pays `previous`: one bump, or the
    /// node's current suggestion if that is higher, capped. `None` when the cap leaves no
    /// room for a replacement geth would accept; then the pending transaction can only be
    /// waited for (or re-sent as is, if it was dropped).
    pub fn replacement_fees(&self, previous: Fees, network: Option<Fees>) -> Option<Fees> {
        let bumped = self.bump(previous);
        let candidate = match (bumped, network) {
            (Fees::Legacy { gas_price: a }, Some(Fees::Legacy { gas_price: b })) => Fees::Legacy {
                gas_price: a.max(b),
            },
            (
                Fees::Eip1559 {
                    max_fee_per_gas: fa,
                    max_priority_fee_per_gas: ta,
                },
                Some(Fees::Eip1559 {
                    max_fee_per_gas: fb,
                    max_priority_fee_per_gas: tb,
                }),
            ) => Fees::Eip1559 {
                max_fee_per_gas: fa.max(fb),
                max_priority_fee_per_gas: ta.max(tb),
            },
            (bumped, _) => bumped,
        };
        let candidate = self.cap(candidate);
        is_valid_replacement(&previous, &candidate, MIN_BUMP_PERCENT).then_some(candidate)
    }
}

/// geth's replacement rule: both fee cap and tip strictly higher, and each at least
/// `old·(100 + bump_percent)/100` (integer division, as geth computes it).
pub fn is_valid_replacement(old: &Fees, new: &Fees, bump_percent: u32) -> bool {
    let (old_cap, old_tip) = old.cap_and_tip();
    let (new_cap, new_tip) = new.cap_and_tip();
    let threshold = |v: u128| v.saturating_mul(100 + u128::from(bump_percent)) / 100;
    new_cap > old_cap
        && new_tip > old_tip
        && new_cap >= threshold(old_cap)
        && new_tip >= threshold(old_tip)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::node::evm::test_support::MockNode;

    fn legacy(bump: u32, cap: u128) -> GasPolicy {
        GasPolicy {
            kind: GasKind::Legacy {
                gas_price_wei: None,
            },
            gas_limit: DEFAULT_GAS_LIMIT,
            max_gas_price_wei: cap,
            bump_percent: bump,
        }
    }

    fn eip1559(bump: u32, cap: u128) -> GasPolicy {
        GasPolicy {
            kind: GasKind::Eip1559 {
                max_fee_per_gas_wei: None,
                max_priority_fee_per_gas_wei: None,
            },
            ..legacy(bump, cap)
        }
    }

    #[test]
    fn bumps_compound_round_up_and_stop_at_the_cap() {
        let policy = legacy(10, 1_500);
        let start = Fees::Legacy { gas_price: 1_000 };
        let prices: Vec<u128> = (0..7)
            .map(|k| policy.fees_for_attempt(start, k).max_price())
            .collect();
        // 1000, 1100, 1210, 1331, 1464.1→1465, 1611.5→cap 1500, cap.
        assert_eq!(
            prices,
            vec![1_000, 1_100, 1_210, 1_331, 1_465, 1_500, 1_500]
        );
    }

    #[test]
    fn tiny_prices_still_rise_by_one_wei_per_bump() {
        let policy = legacy(10, 1_000);
        let one = Fees::Legacy { gas_price: 1 };
        assert_eq!(
            policy.fees_for_attempt(one, 1),
            Fees::Legacy { gas_price: 2 }
        );
        assert_eq!(
            policy.fees_for_attempt(one, 3),
            Fees::Legacy { gas_price: 4 }
        );
        let zero_tip = Fees::Eip1559 {
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 0,
        };
        let bumped = eip1559(10, 1_000).bump(zero_tip);
        assert_eq!(
            bumped,
            Fees::Eip1559 {
                max_fee_per_gas: 11,
                max_priority_fee_per_gas: 1
            }
        );
        assert!(is_valid_replacement(&zero_tip, &bumped, 10));
    }

    #[test]
    fn every_bump_satisfies_geths_replacement_rule() {
        for bump in [10, 12, 20, 50, 100] {
            let policy = eip1559(bump, u128::MAX);
            let mut fees = Fees::Eip1559 {
                max_fee_per_gas: 7,
                max_priority_fee_per_gas: 0,
            };
            for _ in 0..40 {
                let next = policy.bump(fees);
                assert!(
                    is_valid_replacement(&fees, &next, 10),
                    "{fees:?} → {next:?}"
                );
                fees = next;
            }
        }
    }

    #[test]
    fn replacement_rule_matches_geth() {
        let l = |p| Fees::Legacy { gas_price: p };
        assert!(is_valid_replacement(&l(100), &l(110), 10));
        assert!(!is_valid_replacement(&l(100), &l(109), 10));
        assert!(!is_valid_replacement(&l(1), &l(1), 10));
        assert!(is_valid_replacement(&l(1), &l(2), 10));
        let e = |cap, tip| Fees::Eip1559 {
            max_fee_per_gas: cap,
            max_priority_fee_per_gas: tip,
        };
        // Raising only the cap is not enough.
        assert!(!is_valid_replacement(&e(100, 10), &e(200, 10), 10));
        assert!(is_valid_replacement(&e(100, 10), &e(110, 11), 10));
    }

    #[test]
    fn replacements_take_the_higher_of_bump_and_network_and_respect_the_cap() {
        let policy = legacy(10, 1_000);
        let prev = Fees::Legacy { gas_price: 100 };
        assert_eq!(
            policy.replacement_fees(prev, Some(Fees::Legacy { gas_price: 50 })),
            Some(Fees::Legacy { gas_price: 110 })
        );
        assert_eq!(
            policy.replacement_fees(prev, Some(Fees::Legacy { gas_price: 300 })),
            Some(Fees::Legacy { gas_price: 300 })
        );
        assert_eq!(
            policy.replacement_fees(prev, Some(Fees::Legacy { gas_price: 5_000 })),
            Some(Fees::Legacy { gas_price: 1_000 })
        );
        // At (or just under) the cap no acceptable replacement exists.
        assert_eq!(
            policy.replacement_fees(Fees::Legacy { gas_price: 1_000 }, None),
            None
        );
        assert_eq!(
            policy.replacement_fees(Fees::Legacy { gas_price: 950 }, None),
            None
        );
        // EIP-1559: the tip may never exceed the capped fee cap.
        let p = eip1559(10, 100);
        let capped = p.cap(Fees::Eip1559 {
            max_fee_per_gas: 500,
            max_priority_fee_per_gas: 300,
        });
        assert_eq!(
            capped,
            Fees::Eip1559 {
                max_fee_per_gas: 100,
                max_priority_fee_per_gas: 100
            }
        );
    }

    #[test]
    fn policies_are_validated() {
        assert!(GasPolicy::default().validate().is_ok());
        assert!(legacy(9, 10).validate().is_err());
        assert!(GasPolicy {
            gas_limit: 20_000,
            ..GasPolicy::default()
        }
        .validate()
        .is_err());
        assert!(legacy(10, 0).validate().is_err());
        assert!(GasPolicy {
            kind: GasKind::Legacy {
                gas_price_wei: Some(11)
            },
            ..legacy(10, 10)
        }
        .validate()
        .is_err());
    }

    #[tokio::test]
    async fn initial_fees_come_from_the_node_or_the_policy() {
        let node = MockNode::start(|method, _| match method {
            "eth_gasPrice" => json!({"result": "0x3b9aca00"}),
            "eth_maxPriorityFeePerGas" => json!({"result": "0x5"}),
            "eth_getBlockByNumber" => json!({"result": {"number": "0x1", "baseFeePerGas": "0x64"}}),
            other => panic!("{other}"),
        })
        .await;
        let rpc = RpcClient::new(node.url(), Duration::from_secs(5)).expect("client");
        let cap = 10_000_000_000;
        assert_eq!(
            legacy(10, cap).initial_fees(&rpc).await.expect("fees"),
            Fees::Legacy {
                gas_price: 1_000_000_000
            }
        );
        // Above the cap: capped.
        assert_eq!(
            legacy(10, 7).initial_fees(&rpc).await.expect("fees"),
            Fees::Legacy { gas_price: 7 }
        );
        let fixed = GasPolicy {
            kind: GasKind::Legacy {
                gas_price_wei: Some(1),
            },
            ..legacy(10, cap)
        };
        assert_eq!(
            fixed.initial_fees(&rpc).await.expect("fees"),
            Fees::Legacy { gas_price: 1 }
        );
        assert_eq!(
            eip1559(10, cap).initial_fees(&rpc).await.expect("fees"),
            Fees::Eip1559 {
                max_fee_per_gas: 205,
                max_priority_fee_per_gas: 5
            }
        );
    }
}
