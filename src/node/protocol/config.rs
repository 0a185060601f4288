//! Everything one feed's protocol instance needs to know, fixed for the life of its config digest.

use std::fmt;
use std::time::Duration;

use alloy_primitives::Address;

use crate::node::ocr1::types::{ConfigDigest, EpochRound};

pub struct InstanceConfig {
    pub feed: String,
    pub digest: ConfigDigest,
    /// Oracles taking part (n) and the faults tolerated (f, n > 3f).
    pub n: usize,
    pub f: usize,
    /// This oracle's index (OCR OracleID): node i is oracle i-2.
    pub me: u8,
    pub r_max: u8,
    pub delta_progress: Duration,
    pub delta_resend: Duration,
    pub delta_round: Duration,
    pub delta_grace: Duration,
    /// From the shared secret: who leads which epoch.
    pub leader_key: [u8; 16],
    /// Each oracle's Ed25519 key, which signs its observations.
    pub offchain_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Each oracle's on-chain signing address, which signs reports.
    pub signers: Vec<Address>,
    /// This oracle's Ed25519 key.
    pub offchain_key: ed25519_dalek::SigningKey,
    /// The rollback fence (`node::protocol::fence`): no observation or report is signed for an (epoch,
    /// round) at or below it. The contract's latest at the instance's start; `None` without one.
    pub signing_floor: Option<EpochRound>,
}

impl InstanceConfig {
    pub fn leader_of(&self, epoch: u32) -> u8 {
        // n is 4..=31 by configuration validation, where leader() cannot fail.
        crate::node::ocr1::leader::leader(&self.leader_key, epoch, self.n)
            .map(|o| o.0)
            .unwrap_or(0)
    }
}

impl fmt::Debug for InstanceConfig {
    // Hand-written so the signing key can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceConfig")
            .field("feed", &self.feed)
            .field("digest", &self.digest)
            .field("n", &self.n)
            .field("f", &self.f)
            .field("me", &self.me)
            .field("r_max", &self.r_max)
            .field("signing_floor", &self.signing_floor)
            .finish_non_exhaustive()
    }
}
