//! Drives one feed's protocol instance: delivers messages, observations and decisions to it,
//! fires its timers, and carries out what it asks (send, observe, decide and sign, store).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use alloy_primitives::{aliases::I192, keccak256};
use tokio::sync::mpsc;

use crate::config::schema::feeds::FeedConfig;
use crate::node::contract::contract_state::{should_report, LatestAnswer};
use crate::node::feed::finalize::store_finalized;
use crate::node::feed::ports::SignedRound;
use crate::node::feed::shared::Shared;
use crate::node::feed::status::Outcome;
use crate::node::feed::writes::{Pending, Write};
use crate::node::ocr1::int192::scale_price;
use crate::node::ocr1::signature::sign_report;
use crate::node::ocr1::types::EpochRound;
use crate::node::protocol::config::InstanceConfig;
use crate::node::protocol::fence;
use crate::node::protocol::instance::{Decision, Event, Instance, Output};
use crate::node::protocol::messages::{AttestedReportMany, Envelope, Message, ReportObservation};
use crate::node::protocol::pacemaker::PacemakerState;
use crate::node::protocol::verify;
use crate::node::store::{FinalizedReport, SignGuard};
use crate::node::tasks::NodeTasks;

/// Inputs queued per feed; beyond this a flood from one peer is dropped rather than buffered.
pub const INBOX: usize = 1024;

pub enum Input {
    Message {
        from: u8,
        message: Message,
    },
    Observed {
        epoch: u32,
        round: u8,
        value: Option<I192>,
    },
    Decided {
        epoch: u32,
        round: u8,
        decision: Decision,
    },
}

pub struct FeedTask {
    feed: FeedConfig,
    instance: Instance,
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
    round_started: Option<(u32, u8, Instant)>,
    /// This instance's scope: cancelled when the node stops or the feed is reconfigured.
    tasks: NodeTasks,
}

impl FeedTask {
    pub fn new(
        feed: FeedConfig,
        cfg: Arc<InstanceConfig>,
        state: PacemakerState,
        shared: Arc<Shared>,
        inputs: mpsc::Sender<Input>,
        tasks: NodeTasks,
    ) -> Self {
        shared.status.add_feed(&feed.name, cfg.digest);
        Self {
            feed,
            instance: Instance::new(cfg, state),
            shared,
            inputs,
            round_started: None,
            tasks,
        }
    }

    /// Runs until the instance's scope is cancelled (or every sender of its inbox is gone).
    pub async fn run(mut self, mut inbox: mpsc::Receiver<Input>) {
        let stop = self.tasks.token();
        let outputs = self.instance.start(Instant::now());
        self.carry_out(outputs);
        loop {
            let deadline = self.instance.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let outputs = tokio::select! {
                input = inbox.recv() => match input {
                    Some(input) => self.feed_input(input),
                    None => break,
                },
                _ = sleep => self.instance.tick(Instant::now()),
                _ = stop.cancelled() => break,
            };
            self.carry_out(outputs);
        }
    }

    fn feed_input(&mut self, input: Input) -> Vec<Output> {
        let now = Instant::now();
        match input {
            Input::Message { from, message } => self.instance.handle(from, message, now),
            Input::Observed {
                epoch,
                round,
                value,
            } => self.instance.observed(epoch, round, value, now),
            Input::Decided {
                epoch,
                round,
                decision,
            } => self.instance.decided(epoch, round, decision, now),
        }
    }

    fn carry_out(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { to, message } => self.send(Some(to), message),
                Output::Broadcast(message) => self.send(None, message),
                Output::Observe { epoch, round } => self.observe(epoch, round),
                Output::Decide {
                    epoch,
                    round,
                    observations,
                } => self.decide(epoch, round, observations),
                Output::Finalized {
                    epoch,
                    round,
                    report,
                } => self.finalized(epoch, round, report),
                Output::Persist(state) => {
                    let cfg = self.instance.config();
                    // A full queue means the writer is behind; the next change carries a newer state.
                    let _ = self.shared.pacemaker_writes.try_send((
                        self.feed.name.clone(),
                        cfg.digest,
                        state,
                    ));
                }
                Output::Event(event) => self.record(event),
            }
        }
    }

    fn send(&self, to: Option<u8>, message: Message) {
        let envelope = Envelope {
            digest: self.instance.config().digest,
            message,
        };
        let bytes = bytes::Bytes::from(envelope.encode());
        match to {
            None => self.shared.network.broadcast(bytes),
            Some(to) => {
                if let Some(peer) = self.shared.peers.get(usize::from(to)) {
                    self.shared.network.send(*peer, bytes);
                }
            }
        }
    }

    fn observe(&self, epoch: u32, round: u8) {
        let shared = self.shared.clone();
        let inputs = self.inputs.clone();
        let feed = self.feed.name.clone();
        let decimals = self.feed.decimals;
        self.tasks.spawn_cancellable(async move {
            let value = match shared.observer.observe(&feed).await {
                Ok(price) => match scale_price(price, decimals) {
                    Ok(value) => {
                        shared.status.observed(&feed, Ok(()));
                        Some(value)
                    }
                    Err(e) => {
                        tracing::warn!(%feed, error = %e, "price does not fit the report");
                        shared.status.observed(
                            &feed,
                            Err(format!("the price does not fit the report: {e}")),
                        );
                        shared
                            .metrics
                            .observations_failed
                            .with_label_values(&["out_of_range"])
                            .inc();
                        None
                    }
                },
                Err(e) => {
                    tracing::debug!(%feed, error = %e, "no observation this round");
                    shared.status.observed(&feed, Err(e.to_string()));
                    shared
                        .metrics
                        .observations_failed
                        .with_label_values(&[observe_reason(&e)])
                        .inc();
                    None
                }
            };
            let _ = inputs
                .send(Input::Observed {
                    epoch,
                    round,
                    value,
                })
                .await;
        });
    }

    fn decide(&self, epoch: u32, round: u8, observations: Vec<ReportObservation>) {
        let shared = self.shared.clone();
        let inputs = self.inputs.clone();
        let cfg = self.instance.config().clone();
        let feed = self.feed.clone();
        self.tasks.spawn_cancellable(async move {
            if let Some(decision) = decide(&shared, &cfg, &feed, epoch, round, observations).await {
                let _ = inputs
                    .send(Input::Decided {
                        epoch,
                        round,
                        decision,
                    })
                    .await;
            }
        });
    }

    fn finalized(&mut self, epoch: u32, round: u8, report: AttestedReportMany) {
        let cfg = self.instance.config().clone();
        let Ok(bytes) = verify::report_bytes(&cfg, epoch, round, &report.observations) else {
            return;
        };
        let Some(answer) = verify::median(&report.observations) else {
            return;
        };
        let now = SystemTime::now();
        self.shared.contract.finalized(
            &self.feed.name,
            LatestAnswer {
                digest: cfg.digest,
                epoch,
                round,
                answer,
                timestamp: now,
                requested: None,
            },
        );
        let m = &self.shared.metrics;
        m.rounds_finalized
            .with_label_values(&[&self.feed.name])
            .inc();
        m.reports_finalized.inc();
        m.latest_answer
            .with_label_values(&[&self.feed.name])
            .set(decimal_f64(answer, self.feed.decimals));
        m.latest_report_time
            .with_label_values(&[&self.feed.name])
            .set(
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
        if let Some((e, r, started)) = self.round_started {
            if (e, r) == (epoch, round) {
                m.round_duration.observe(started.elapsed().as_secs_f64());
            }
        }
        self.shared
            .status
            .round_finished(&self.feed.name, epoch, round, Outcome::Finalized);
        let stored = FinalizedReport {
            feed: self.feed.name.clone(),
            digest: cfg.digest,
            epoch,
            round,
            report: bytes,
            signatures: report.signatures,
            observations: report.observations,
            answer,
            finalized_at: now,
        };
        let shared = self.shared.clone();
        let pending = Pending {
            report: stored,
            alpha_ppb: self.feed.alpha_ppb,
            delta_c: self.feed.heartbeat,
        };
        // Not cancellable: a finalized report is stored (or kept for retry) even while stopping.
        self.tasks
            .spawn(async move { store_finalized(&shared, pending).await });
        tracing::info!(feed = %self.feed.name, epoch, round, answer = %answer, "report finalized");
    }

    fn record(&mut self, event: Event) {
        let feed = self.feed.name.as_str();
        let m = &self.shared.metrics;
        let node_of = |i: u8| self.shared.nodes.get(usize::from(i)).copied().unwrap_or(0);
        match event {
            Event::EpochStarted { epoch, leader } => {
                m.leader_changes.with_label_values(&[feed]).inc();
                m.epoch.with_label_values(&[feed]).set(i64::from(epoch));
                self.shared.status.epoch(feed, epoch, node_of(leader));
                tracing::debug!(feed, epoch, leader = node_of(leader), "epoch started");
            }
            Event::RoundStarted { epoch, round } => {
                m.rounds_started.with_label_values(&[feed]).inc();
                self.round_started = Some((epoch, round, Instant::now()));
                self.shared.status.round_started(feed, epoch, round);
            }
            Event::RoundSkipped { epoch, round } => {
                m.rounds_skipped.with_label_values(&[feed]).inc();
                self.shared
                    .status
                    .round_finished(feed, epoch, round, Outcome::Skipped);
            }
            Event::LeaderAbandoned { epoch, why } => {
                tracing::debug!(feed, epoch, why, "voting for a new epoch");
            }
            Event::Rejected { from, kind, why } => {
                m.rejected
                    .with_label_values(&[&node_of(from).to_string(), kind])
                    .inc();
                // Debug, not warn: a faulty peer can send these as fast as it likes; the counter
                // is what shows it.
                tracing::debug!(feed, from_node = node_of(from), kind, %why, "message rejected");
            }
            Event::RoundFenced { epoch, round } => {
                m.rounds_fenced.with_label_values(&[feed]).inc();
                tracing::debug!(
                    feed,
                    epoch,
                    round,
                    "round at or below the rollback fence: not taking part"
                );
            }
            Event::ReportRequested {
                epoch,
                round,
                observations,
            } => {
                let n = self.instance.config().n;
                m.record_participation(n, &observations, |i| node_of(i).to_string());
                let observers = observations.iter().map(|o| node_of(o.observer)).collect();
                self.shared
                    .status
                    .round_observers(feed, epoch, round, observers);
            }
        }
    }
}

/// shouldReport, then the signing guard, then the signature.
async fn decide(
    shared: &Shared,
    cfg: &InstanceConfig,
    feed: &FeedConfig,
    epoch: u32,
    round: u8,
    observations: Vec<ReportObservation>,
) -> Option<Decision> {
    let median = verify::median(&observations)?;
    let latest = shared.contract.latest(&feed.name).await;
    let Some(reason) = should_report(
        &latest,
        cfg.digest,
        median,
        feed.alpha_ppb,
        feed.heartbeat,
        SystemTime::now(),
    ) else {
        return Some(Decision::Skip);
    };
    // The instance asks for no signature at or below the fence; checked again where the
    // signature is made, so that no bug upstream can get one.
    if !fence::may_sign(cfg.signing_floor, EpochRound::new(epoch, round)) {
        tracing::error!(feed = %feed.name, epoch, round, floor = ?cfg.signing_floor, "refusing to sign at or below the rollback fence");
        shared
            .metrics
            .signing_refused
            .with_label_values(&["below_fence"])
            .inc();
        return None;
    }
    let bytes = verify::report_bytes(cfg, epoch, round, &observations).ok()?;
    let hash = keccak256(&bytes);
    let signed = SignedRound {
        digest: cfg.digest,
        epoch,
        round,
        report_hash: hash.0,
    };
    match shared.store.guard_signature(signed).await {
        Ok(SignGuard::Fresh | SignGuard::SameReport) => {
            shared.writes.succeeded(Write::SigningGuard)
        }
        Ok(SignGuard::Conflict) => {
            tracing::error!(feed = %feed.name, epoch, round, "refusing to sign a second, different report for this epoch and round");
            shared
                .metrics
                .signing_refused
                .with_label_values(&["conflict"])
                .inc();
            return None;
        }
        Err(e) => {
            // Without the guard written, a crash could lead to equivocation: do not sign.
            tracing::error!(feed = %feed.name, epoch, round, error = %e, "cannot record the signature; not signing");
            shared.writes.failed(Write::SigningGuard, &e);
            shared
                .metrics
                .signing_refused
                .with_label_values(&["store_error"])
                .inc();
            shared
                .metrics
                .store_errors
                .with_label_values(&["guard_signature"])
                .inc();
            return None;
        }
    }
    shared
        .metrics
        .reports_by_reason
        .with_label_values(&[reason.as_str()])
        .inc();
    let signature = match sign_report(&shared.onchain_key, &bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(feed = %feed.name, epoch, round, error = %e, "cannot sign the report");
            shared
                .metrics
                .signing_refused
                .with_label_values(&["signing_failed"])
                .inc();
            return None;
        }
    };
    Some(Decision::Report {
        observations,
        signature,
    })
}

fn observe_reason(e: &crate::node::feed::observe::ObserveError) -> &'static str {
    use crate::node::feed::observe::ObserveError::*;
    match e {
        Unreachable(_) | Stopped => "aggregator_unreachable",
        Status(_) => "aggregator_error",
        Malformed(_) => "malformed_answer",
        Unavailable { .. } => "price_unavailable",
    }
}

/// An int192 answer as a decimal number (for gauges only).
pub fn decimal_f64(value: I192, decimals: u8) -> f64 {
    value.to_string().parse::<f64>().unwrap_or(0.0) / 10f64.powi(i32::from(decimals))
}

#[cfg(test)]
mod tests;
