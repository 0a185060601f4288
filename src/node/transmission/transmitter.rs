//! Sends finalized reports to the feeds' contracts (OCR1 A.1.5): accept a report only if it is
//! newer than the contract and worth it (libocr `shouldTransmit`, with PR #131's rule that a
//! pending report older than ΔC no longer blocks), wait this oracle's stage of the schedule,
//! re-check the contract, transmit, and forget the pending entry whatever the outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use alloy_primitives::{aliases::I192, Address, U256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::node::tasks::NodeTasks;

use crate::node::contract::OnchainMetrics;
use crate::node::evm::{AggregatorContract, ChainError, TxSender, TxStatus};
use crate::node::ocr1::signature::transmit_calldata;
use crate::node::ocr1::types::{ConfigDigest, EpochRound};
use crate::node::store::Store;
use crate::node::transmission::decide::{
    accept, still_needed, Accepted, Bounds, ContractView, Decision, OUT_OF_BOUNDS,
};
use crate::node::transmission::schedule::Schedule;

/// Reads of the contract before giving up on a report (each after a short backoff).
const READ_ATTEMPTS: u32 = 3;
const READ_BACKOFF: Duration = Duration::from_millis(500);
/// A feed whose medians fall outside its contract's bounds is logged at most this often.
const OUT_OF_BOUNDS_LOG_INTERVAL: Duration = Duration::from_secs(3600);

/// What this oracle knows of a contract's `minAnswer`/`maxAnswer` (immutable in the upstream
/// contract, so read once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownBounds {
    Known(Bounds),
    /// The contract has no `minAnswer`/`maxAnswer` (reverts without a reason): it decides.
    None,
}

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
    /// Each feed's contract bounds, once read.
    pub bounds: Mutex<HashMap<String, KnownBounds>>,
    /// When each feed's out-of-bounds median was last logged.
    pub out_of_bounds_logged: Mutex<HashMap<String, Instant>>,
}

impl Transmitter {
    /// Handles every queued report in a task of its own (in `tasks`) until `tasks` is cancelled.
    pub async fn run(self: Arc<Self>, mut reports: mpsc::Receiver<ToTransmit>, tasks: NodeTasks) {
        let stop = tasks.token();
        loop {
            tokio::select! {
                report = reports.recv() => match report {
                    Some(report) => {
                        let me = self.clone();
                        let stop = stop.clone();
                        tasks.spawn(async move { me.handle(report, stop).await });
                    }
                    None => return,
                },
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn handle(&self, report: ToTransmit, stop: CancellationToken) {
        let outcome = self.transmit_when_due(&report, &stop).await;
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
        stop: &CancellationToken,
    ) -> Result<&'static str, ChainError> {
        let Some(contract) = self.contracts.get(&report.feed) else {
            return Ok("no_contract");
        };
        let view = self.view(contract).await?;
        let bounds = self.bounds(&report.feed, contract).await;
        let decision = {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            accept(
                report.digest,
                report.er,
                report.median,
                &view,
                bounds.as_ref(),
                last.get(&report.feed),
                report.alpha_ppb,
                report.delta_c,
                SystemTime::now(),
            )
        };
        if decision == Decision::Skip(OUT_OF_BOUNDS) {
            self.out_of_bounds(report, bounds.as_ref());
            return Ok(OUT_OF_BOUNDS);
        }
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
            _ = stop.cancelled() => return Ok("stopped"),
        }
        if let Decision::Skip(why) =
            still_needed(report.digest, report.er, &self.view(contract).await?)
        {
            return Ok(why);
        }
        let calldata = transmit_calldata(&report.report, &report.signatures)
            .map_err(|e| ChainError::Config(format!("cannot build transmit calldata: {e}")))?;
        let send = self.sender.send_and_wait(
            contract.address(),
            calldata.into(),
            U256::ZERO,
            self.receipt_timeout,
            self.rebroadcast_after,
        );
        // A stopping node does not wait out the receipt timeout: what was sent lands or not
        // without it, as when the process ended before.
        let outcome = tokio::select! {
            outcome = send => outcome,
            _ = stop.cancelled() => return Ok("stopped"),
        };
        self.record(report, contract.address(), outcome)
    }

    fn record(
        &self,
        report: &ToTransmit,
        contract: Address,
        outcome: Result<crate::node::evm::Outcome, ChainError>,
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

    /// The feed's contract bounds: read once; unknown (the contract decides) while unreadable.
    async fn bounds(&self, feed: &str, contract: &AggregatorContract) -> Option<Bounds> {
        if let Some(known) = self
            .bounds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(feed)
        {
            return match known {
                KnownBounds::Known(b) => Some(*b),
                KnownBounds::None => None,
            };
        }
        let known = match contract.answer_bounds().await {
            Ok((min, max)) => KnownBounds::Known(Bounds { min, max }),
            Err(e) if e.is_bare_revert() => KnownBounds::None,
            Err(e) => {
                tracing::debug!(feed, error = %e, "cannot read the contract's minAnswer/maxAnswer yet");
                return None;
            }
        };
        self.bounds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(feed.to_owned(), known);
        match known {
            KnownBounds::Known(b) => Some(b),
            KnownBounds::None => None,
        }
    }

    /// Counts a median the contract would refuse; logs it once per feed per hour.
    fn out_of_bounds(&self, report: &ToTransmit, bounds: Option<&Bounds>) {
        self.metrics
            .out_of_bounds
            .with_label_values(&[&report.feed])
            .inc();
        let now = Instant::now();
        let mut logged = self
            .out_of_bounds_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = logged
            .get(&report.feed)
            .is_none_or(|at| now.duration_since(*at) >= OUT_OF_BOUNDS_LOG_INTERVAL);
        if due {
            logged.insert(report.feed.clone(), now);
            let (min, max) = bounds.map(|b| (b.min, b.max)).unzip();
            tracing::warn!(feed = %report.feed, median = %report.median,
                min_answer = %min.map(|v| v.to_string()).unwrap_or_default(),
                max_answer = %max.map(|v| v.to_string()).unwrap_or_default(),
                "the report's median is outside the contract's minAnswer/maxAnswer: not transmitted (the contract would revert); logged at most once an hour per feed, counted in enclave_node_reports_out_of_bounds_total");
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
