//! Sends finalized reports to the feeds' contracts (OCR1 A.1.5): accept a report only if it is
//! newer than the contract and worth it (libocr `shouldTransmit`, with PR #131's rule that a
//! pending report older than ΔC no longer blocks), wait this oracle's stage of the schedule,
//! re-check the contract, transmit, and forget the pending entry whatever the outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use alloy_primitives::{aliases::I192, Address, U256};
use tokio::sync::{mpsc, watch};

use super::OnchainMetrics;
use crate::node::chain::{AggregatorContract, ChainError, TxSender, TxStatus};
use crate::node::ocr1::signature::transmit_calldata;
use crate::node::ocr1::types::{ConfigDigest, EpochRound};
use crate::node::store::Store;
use crate::node::transmission::decide::{accept, still_needed, Accepted, ContractView, Decision};
use crate::node::transmission::schedule::Schedule;

/// Reads of the contract before giving up on a report (each after a short backoff).
const READ_ATTEMPTS: u32 = 3;
const READ_BACKOFF: Duration = Duration::from_millis(500);

/// A finalized report handed over by a feed's protocol instance.
#[derive(Debug, Clone)]
pub struct ToTransmit {
    pub feed: String,
    pub digest: ConfigDigest,
    pub er: EpochRound,
    pub report: Vec<u8>,
    pub signatures: Vec<[u8; 65]>,
    pub median: I192,
    pub alpha_ppb: u64,
    pub delta_c: Duration,
    pub finalized_at: SystemTime,
}

pub struct Transmitter {
    pub contracts: HashMap<String, AggregatorContract>,
    pub sender: Arc<TxSender>,
    pub schedule: Schedule,
    /// This oracle's index.
    pub me: u8,
    pub store: Store,
    pub receipt_timeout: Duration,
    pub rebroadcast_after: Duration,
    pub metrics: Arc<OnchainMetrics>,
    pub last: Mutex<HashMap<String, Accepted>>,
}

impl Transmitter {
    pub async fn run(
        self: Arc<Self>,
        mut reports: mpsc::Receiver<ToTransmit>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                report = reports.recv() => match report {
                    Some(report) => {
                        let me = self.clone();
                        let stop = stop.clone();
                        tokio::spawn(async move { me.handle(report, stop).await });
                    }
                    None => return,
                },
                _ = stop.changed() => return,
            }
        }
    }

    async fn handle(&self, report: ToTransmit, mut stop: watch::Receiver<bool>) {
        let outcome = self.transmit_when_due(&report, &mut stop).await;
        let label = match &outcome {
            Ok(label) => *label,
            Err(e) => {
                tracing::warn!(feed = %report.feed, epoch = report.er.epoch, round = report.er.round, error = %e, "transmission failed");
                "error"
            }
        };
        self.metrics.transmissions.with_label_values(&[label]).inc();
        if let Err(e) = self
            .store
            .forget_pending(report.digest, report.er.epoch, report.er.round)
            .await
        {
            tracing::warn!(feed = %report.feed, error = %e, "cannot remove the pending transmission");
        }
    }

    async fn transmit_when_due(
        &self,
        report: &ToTransmit,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<&'static str, ChainError> {
        let Some(contract) = self.contracts.get(&report.feed) else {
            return Ok("no_contract");
        };
        let view = self.view(contract).await?;
        let decision = {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            accept(
                report.digest,
                report.er,
                report.median,
                &view,
                last.get(&report.feed),
                report.alpha_ppb,
                report.delta_c,
                SystemTime::now(),
            )
        };
        if let Decision::Skip(why) = decision {
            tracing::debug!(feed = %report.feed, why, "not transmitting");
            return Ok(why);
        }
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(
            report.feed.clone(),
            Accepted {
                er: report.er,
                median: report.median,
                at: SystemTime::now(),
            },
        );
        let Some(delay) = self.schedule.delay(report.digest, report.er, self.me) else {
            return Ok("not_scheduled");
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return Ok("stopped"),
        }
        if let Decision::Skip(why) =
            still_needed(report.digest, report.er, &self.view(contract).await?)
        {
            return Ok(why);
        }
        let calldata = transmit_calldata(&report.report, &report.signatures)
            .map_err(|e| ChainError::Config(format!("cannot build transmit calldata: {e}")))?;
        let outcome = self
            .sender
            .send_and_wait(
                contract.address(),
                calldata.into(),
                U256::ZERO,
                self.receipt_timeout,
                self.rebroadcast_after,
            )
            .await;
        self.record(report, contract.address(), outcome)
    }

    fn record(
        &self,
        report: &ToTransmit,
        contract: Address,
        outcome: Result<crate::node::chain::Outcome, ChainError>,
    ) -> Result<&'static str, ChainError> {
        match outcome {
            Ok(o) => {
                self.metrics.gas_used.inc_by(o.gas_used);
                match o.status {
                    TxStatus::Success => {
                        tracing::info!(feed = %report.feed, %contract, epoch = report.er.epoch, round = report.er.round, tx = %o.tx_hash, gas = o.gas_used, "report transmitted");
                        Ok("landed")
                    }
                    TxStatus::Reverted { reason } => {
                        let reason = reason.unwrap_or_default();
                        // Another oracle of an earlier stage (or a duplicate) got there first.
                        if reason.contains("stale report") {
                            tracing::debug!(feed = %report.feed, "already transmitted by another oracle");
                            Ok("stale")
                        } else {
                            tracing::warn!(feed = %report.feed, %contract, %reason, tx = %o.tx_hash, "transmit reverted");
                            Ok("reverted")
                        }
                    }
                }
            }
            Err(ChainError::Reverted { reason, .. })
                if reason
                    .as_deref()
                    .is_some_and(|r| r.contains("stale report")) =>
            {
                Ok("stale")
            }
            Err(e) => Err(e),
        }
    }

    async fn view(&self, contract: &AggregatorContract) -> Result<ContractView, ChainError> {
        let mut attempt = 0;
        loop {
            match contract
                .latest_transmission_details(self.sender.address())
                .await
            {
                Ok(d) => {
                    return Ok(ContractView {
                        digest: d.digest,
                        latest: d.epoch_round(),
                    })
                }
                Err(e) if e.is_retryable() && attempt + 1 < READ_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(READ_BACKOFF * attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
