//! Each oracle's payee on its feed's contract. The upstream OCR1 contract refuses a `setConfig`
//! naming a transmitter without a payee ("payee must be set"), and its `setPayees` only fills
//! empty ones: it refuses to change a payee ("payee already set"), which only the current payee
//! can hand over (`transferPayeeship`, then `acceptPayeeship` by the new one). The contract has
//! no getter for payees, so what it holds is found by asking it what it would accept (eth_call,
//! nothing sent): `setPayees([t], [p])` from the admin passes when t's payee is unset or p,
//! and `withdrawPayment(t)` passes only from t's payee.

use alloy_primitives::Address;

use crate::node::evm::{AggregatorContract, ChainError};

pub const ALREADY_SET: &str = "payee already set";
pub const ONLY_PAYEE: &str = "Only payee can withdraw";

/// What the contract holds as one transmitter's payee, compared with the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayeeState {
    /// No payee yet: `setPayees` will set it.
    Unset,
    /// The wanted payee already.
    Same,
    /// Another payee, which `setPayees` cannot change.
    Other,
}

/// What the two probes of one transmitter answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Accepted,
    Reverted(Option<String>),
}

/// Payees the contract cannot manage at all: it has no `setPayees` (a contract without
/// payees, such as the project's Vyper model), which answers a revert without any data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    State(PayeeState),
    Unsupported,
    /// The admin may not set payees (not the owner) or another refusal: needs the operator.
    Refused(String),
}

/// Decides one transmitter's payee state from the `setPayees` probe (from the admin) and the
/// `withdrawPayment` probe (from the wanted payee; only asked when the first passes).
pub fn classify(set: &Probe, withdraw: Option<&Probe>) -> Classified {
    match set {
        Probe::Reverted(Some(reason)) if reason == ALREADY_SET => {
            Classified::State(PayeeState::Other)
        }
        Probe::Reverted(None) => Classified::Unsupported,
        Probe::Reverted(Some(reason)) => Classified::Refused(reason.clone()),
        Probe::Accepted => match withdraw {
            Some(Probe::Reverted(Some(reason))) if reason == ONLY_PAYEE => {
                Classified::State(PayeeState::Unset)
            }
            // Allowed to withdraw (or failing for another reason past the payee check, such as
            // the token transfer): the wanted payee is the contract's.
            _ => Classified::State(PayeeState::Same),
        },
    }
}

/// The payee work for one contract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayeePlan {
    /// `(transmitter, payee)` to set with one `setPayees`.
    pub to_set: Vec<(Address, Address)>,
    /// `(transmitter, wanted payee)` whose contract payee is another one.
    pub conflicts: Vec<(Address, Address)>,
    /// The contract manages no payees: nothing to do.
    pub unsupported: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PayeeError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("setPayees is refused: {0}")]
    Refused(String),
}

/// A bare revert (no data) stays without a reason; a custom error is described as one.
fn probe(result: Result<(), ChainError>) -> Result<Probe, ChainError> {
    match result {
        Ok(()) => Ok(Probe::Accepted),
        Err(e) if e.is_bare_revert() => Ok(Probe::Reverted(None)),
        Err(ChainError::Reverted {
            reason: Some(reason),
            ..
        }) => Ok(Probe::Reverted(Some(reason))),
        Err(e @ ChainError::Reverted { .. }) => Ok(Probe::Reverted(Some(e.to_string()))),
        Err(e) => Err(e),
    }
}

/// Asks the contract about every `(transmitter, wanted payee)`.
pub async fn plan(
    contract: &AggregatorContract,
    admin: Address,
    wanted: &[(Address, Address)],
) -> Result<PayeePlan, PayeeError> {
    let mut plan = PayeePlan::default();
    for &(transmitter, payee) in wanted {
        let set = probe(
            contract
                .simulate_set_payees(admin, &[transmitter], &[payee])
                .await,
        )?;
        let withdraw = match set {
            Probe::Accepted => Some(probe(
                contract.simulate_withdraw_payment(payee, transmitter).await,
            )?),
            Probe::Reverted(_) => None,
        };
        match classify(&set, withdraw.as_ref()) {
            Classified::State(PayeeState::Unset) => plan.to_set.push((transmitter, payee)),
            Classified::State(PayeeState::Same) => {}
            Classified::State(PayeeState::Other) => plan.conflicts.push((transmitter, payee)),
            Classified::Unsupported => {
                return Ok(PayeePlan {
                    unsupported: true,
                    ..PayeePlan::default()
                })
            }
            Classified::Refused(reason) => return Err(PayeeError::Refused(reason)),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reverted(reason: &str) -> Probe {
        Probe::Reverted(Some(reason.into()))
    }

    #[test]
    fn each_pair_of_answers_means_one_payee_state() {
        use Classified::*;
        use PayeeState::*;
        let cases = [
            (Probe::Accepted, Some(reverted(ONLY_PAYEE)), State(Unset)),
            (Probe::Accepted, Some(Probe::Accepted), State(Same)),
            // Past the payee check, the payout itself may fail: still the payee.
            (
                Probe::Accepted,
                Some(reverted("insufficient funds")),
                State(Same),
            ),
            (Probe::Accepted, Some(Probe::Reverted(None)), State(Same)),
            (reverted(ALREADY_SET), None, State(Other)),
            (Probe::Reverted(None), None, Unsupported),
            (
                reverted("Only callable by owner"),
                None,
                Refused("Only callable by owner".into()),
            ),
        ];
        for (set, withdraw, expected) in cases {
            assert_eq!(
                classify(&set, withdraw.as_ref()),
                expected,
                "{set:?} {withdraw:?}"
            );
        }
    }
}
