//! One feed's OCR instance: the pacemaker and the report generation of the current epoch (leader
//! and follower roles, OCR Alg. 1–3), as a state machine without IO. The driver feeds it messages,
//! observations, decisions and the clock, and carries out what it returns.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::aliases::I192;

use super::config::InstanceConfig;
use super::fence;
use super::messages::{
    AttestedReportMany, AttestedReportOne, AttributedSignedObservation, Message, ReportObservation,
    SignedObservation,
};
use super::pacemaker::{Pacemaker, PacemakerState};
use super::verify::{self, er, Invalid};
use crate::node::ocr1::observation::{sign_observation, verify_observation};

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send {
        to: u8,
        message: Message,
    },
    /// To every other oracle (this oracle has already handled its own copy).
    Broadcast(Message),
    /// Fetch this oracle's observation for the round and answer with [`Instance::observed`].
    Observe {
        epoch: u32,
        round: u8,
    },
    /// The leader's report request is valid: decide whether to report (shouldReport), sign if so,
    /// and answer with [`Instance::decided`].
    Decide {
        epoch: u32,
        round: u8,
        observations: Vec<ReportObservation>,
    },
    /// More than f oracles echoed this report: hand it to transmission.
    Finalized {
        epoch: u32,
        round: u8,
        report: AttestedReportMany,
    },
    Persist(PacemakerState),
    Event(Event),
}

/// Things worth counting or logging.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    EpochStarted {
        epoch: u32,
        leader: u8,
    },
    /// This oracle received an OBSERVE-REQ for a new round.
    RoundStarted {
        epoch: u32,
        round: u8,
    },
    /// This oracle decided the round needs no report (no deviation, heartbeat not due).
    RoundSkipped {
        epoch: u32,
        round: u8,
    },
    /// The leader of this epoch ran out of rounds or stopped making progress.
    LeaderAbandoned {
        epoch: u32,
        why: &'static str,
    },
    /// A message that failed a check; the sender is faulty or behind.
    Rejected {
        from: u8,
        kind: &'static str,
        why: String,
    },
    /// A round at or below the rollback fence (`InstanceConfig::signing_floor`): this oracle
    /// neither observes nor signs in it.
    RoundFenced {
        epoch: u32,
        round: u8,
    },
    /// The leader sent a REPORT-REQ with these observations (for per-oracle participation).
    ReportRequested {
        epoch: u32,
        round: u8,
        observations: Vec<ReportObservation>,
    },
}

/// A follower's decision for a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Report {
        observations: Vec<ReportObservation>,
        signature: [u8; 65],
    },
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    Progress,
    Resend,
    Round,
    Grace,
}

const TIMERS: [Timer; 4] = [Timer::Progress, Timer::Resend, Timer::Round, Timer::Grace];

/// What a follower has done in the current round.
#[derive(Debug, Default)]
struct FollowerRound {
    round: u8,
    report_req_seen: bool,
    sent_report: bool,
    sent_echo: bool,
    /// Progress made (reported or decided not to); the pacemaker's timer was reset.
    completed: bool,
    /// The DON's report for this round was handed out. A follower that decided not to report
    /// still records a report the others finalized, so its idea of the latest answer stays in
    /// step with theirs.
    finalized: bool,
    echoes: Vec<bool>,
    /// The report already verified this round, so identical echoes cost no signature checks.
    verified: Option<AttestedReportMany>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Observe,
    Grace,
    Report,
    Final,
}

#[derive(Debug)]
struct LeaderRound {
    round: u8,
    phase: Phase,
    observations: Vec<Option<SignedObservation>>,
    requested: Vec<ReportObservation>,
    signatures: Vec<Option<[u8; 65]>>,
}

pub struct Instance {
    cfg: Arc<InstanceConfig>,
    pacemaker: Pacemaker,
    leader: u8,
    follower: FollowerRound,
    lead: Option<LeaderRound>,
    deadlines: HashMap<Timer, Instant>,
    loopback: VecDeque<Message>,
    out: Vec<Output>,
}

impl Instance {
    pub fn new(cfg: Arc<InstanceConfig>, state: PacemakerState) -> Self {
        let state = PacemakerState::restored(state, cfg.n);
        let leader = cfg.leader_of(state.epoch);
        Self {
            pacemaker: Pacemaker::new(state, cfg.f),
            leader,
            follower: FollowerRound::default(),
            lead: None,
            deadlines: HashMap::new(),
            loopback: VecDeque::new(),
            out: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &Arc<InstanceConfig> {
        &self.cfg
    }

    pub fn epoch(&self) -> u32 {
        self.pacemaker.epoch()
    }

    pub fn leader(&self) -> u8 {
        self.leader
    }

    pub fn round(&self) -> u8 {
        self.follower.round
    }

    /// Announces our epoch and starts it.
    pub fn start(&mut self, now: Instant) -> Vec<Output> {
        let ne = self.pacemaker.state.highest_sent;
        self.broadcast(Message::NewEpoch { epoch: ne });
        self.arm(Timer::Resend, now + self.cfg.delta_resend);
        self.begin_epoch(now);
        self.finish(now)
    }

    pub fn handle(&mut self, from: u8, message: Message, now: Instant) -> Vec<Output> {
        if usize::from(from) < self.cfg.n {
            self.dispatch(from, message, now);
        }
        self.finish(now)
    }

    pub fn observed(
        &mut self,
        epoch: u32,
        round: u8,
        value: Option<I192>,
        now: Instant,
    ) -> Vec<Output> {
        if epoch == self.epoch() && round == self.follower.round && !self.follower.report_req_seen {
            if let Some(value) = value {
                let signature = sign_observation(
                    &self.cfg.offchain_key,
                    self.cfg.digest,
                    er(epoch, round),
                    value,
                );
                let observation = SignedObservation { value, signature };
                self.send(
                    self.leader,
                    Message::Observe {
                        epoch,
                        round,
                        observation,
                    },
                );
            }
        }
        self.finish(now)
    }

    pub fn decided(
        &mut self,
        epoch: u32,
        round: u8,
        decision: Decision,
        now: Instant,
    ) -> Vec<Output> {
        if epoch == self.epoch() && round == self.follower.round && !self.follower.sent_report {
            match decision {
                Decision::Report {
                    observations,
                    signature,
                } => {
                    self.follower.sent_report = true;
                    let report = AttestedReportOne {
                        observations,
                        signature,
                    };
                    self.send(
                        self.leader,
                        Message::Report {
                            epoch,
                            round,
                            report,
                        },
                    );
                }
                Decision::Skip => {
                    self.event(Event::RoundSkipped { epoch, round });
                    self.complete_round(now);
                }
            }
        }
        self.finish(now)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Fires every timer due by `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        for timer in TIMERS {
            if self.deadlines.get(&timer).is_some_and(|at| *at <= now) {
                self.deadlines.remove(&timer);
                self.fire(timer, now);
            }
        }
        self.finish(now)
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Resend => {
                let ne = self.pacemaker.state.highest_sent;
                self.broadcast(Message::NewEpoch { epoch: ne });
                self.arm(Timer::Resend, now + self.cfg.delta_resend);
            }
            Timer::Progress => {
                self.event(Event::LeaderAbandoned {
                    epoch: self.epoch(),
                    why: "no progress within deltaProgress",
                });
                self.change_leader(now);
            }
            Timer::Round => self.start_round(now),
            Timer::Grace => self.send_report_request(),
        }
    }

    /// Processes the input and everything it sent to ourselves, then hands out the outputs.
    fn finish(&mut self, now: Instant) -> Vec<Output> {
        while let Some(message) = self.loopback.pop_front() {
            self.dispatch(self.cfg.me, message, now);
        }
        std::mem::take(&mut self.out)
    }

    fn dispatch(&mut self, from: u8, message: Message, now: Instant) {
        match message {
            Message::NewEpoch { epoch } => self.on_new_epoch(from, epoch, now),
            Message::ObserveReq { epoch, round } => self.on_observe_req(from, epoch, round, now),
            Message::Observe {
                epoch,
                round,
                observation,
            } => self.on_observe(from, epoch, round, observation, now),
            Message::ReportReq {
                epoch,
                round,
                observations,
            } => self.on_report_req(from, epoch, round, observations),
            Message::Report {
                epoch,
                round,
                report,
            } => self.on_report(from, epoch, round, report),
            Message::Final {
                epoch,
                round,
                report,
            } => self.on_final(from, epoch, round, report),
            Message::FinalEcho {
                epoch,
                round,
                report,
            } => self.on_final_echo(from, epoch, round, report, now),
        }
    }

    // ---- pacemaker ----

    fn on_new_epoch(&mut self, from: u8, epoch: u32, now: Instant) {
        let outcome = self.pacemaker.on_new_epoch(usize::from(from), epoch);
        if let Some(ne) = outcome.send {
            self.broadcast(Message::NewEpoch { epoch: ne });
            self.arm(Timer::Resend, now + self.cfg.delta_resend);
        }
        if outcome.switch_to.is_some() {
            self.begin_epoch(now);
        }
        if outcome.changed {
            self.persist();
        }
    }

    fn change_leader(&mut self, now: Instant) {
        let ne = self.pacemaker.change_leader();
        self.broadcast(Message::NewEpoch { epoch: ne });
        self.arm(Timer::Resend, now + self.cfg.delta_resend);
        self.persist();
    }

    fn begin_epoch(&mut self, now: Instant) {
        let epoch = self.epoch();
        self.leader = self.cfg.leader_of(epoch);
        self.follower = FollowerRound::default();
        self.lead = None;
        self.deadlines.remove(&Timer::Round);
        self.deadlines.remove(&Timer::Grace);
        self.arm(Timer::Progress, now + self.cfg.delta_progress);
        self.event(Event::EpochStarted {
            epoch,
            leader: self.leader,
        });
        if self.leader == self.cfg.me {
            self.lead = Some(LeaderRound {
                round: 0,
                phase: Phase::Final,
                observations: Vec::new(),
                requested: Vec::new(),
                signatures: Vec::new(),
            });
            self.start_round(now);
        }
    }

    // ---- leader ----

    fn start_round(&mut self, now: Instant) {
        let n = self.cfg.n;
        let r_max = self.cfg.r_max;
        let epoch = self.epoch();
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if lead.round > r_max {
            return;
        }
        lead.round += 1;
        lead.phase = Phase::Observe;
        lead.observations = vec![None; n];
        lead.requested.clear();
        lead.signatures = vec![None; n];
        let round = lead.round;
        self.broadcast(Message::ObserveReq { epoch, round });
        if round <= r_max {
            self.arm(Timer::Round, now + self.cfg.delta_round);
        }
    }

    fn on_observe(
        &mut self,
        from: u8,
        epoch: u32,
        round: u8,
        observation: SignedObservation,
        now: Instant,
    ) {
        let cfg = Arc::clone(&self.cfg);
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if epoch != self.pacemaker.epoch()
            || round != lead.round
            || !matches!(lead.phase, Phase::Observe | Phase::Grace)
            || lead.observations[usize::from(from)].is_some()
        {
            return;
        }
        let valid = verify_observation(
            &cfg.offchain_keys[usize::from(from)],
            cfg.digest,
            er(epoch, round),
            observation.value,
            &observation.signature,
        );
        if valid.is_err() {
            self.reject(from, "observe", Invalid::BadObservationSignature(from));
            return;
        }
        lead.observations[usize::from(from)] = Some(observation);
        let count = lead.observations.iter().flatten().count();
        if lead.phase == Phase::Observe && count > 2 * cfg.f {
            lead.phase = Phase::Grace;
            self.arm(Timer::Grace, now + cfg.delta_grace);
        }
    }

    fn send_report_request(&mut self) {
        let epoch = self.epoch();
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if lead.phase != Phase::Grace {
            return;
        }
        let mut observations: Vec<AttributedSignedObservation> = lead
            .observations
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                Some(AttributedSignedObservation {
                    observation: o.clone()?,
                    observer: u8::try_from(i).ok()?,
                })
            })
            .collect();
        // Ties broken by observer so every honest leader builds the same request.
        observations.sort_by(|a, b| {
            a.observation
                .value
                .cmp(&b.observation.value)
                .then(a.observer.cmp(&b.observer))
        });
        lead.requested = observations
            .iter()
            .map(|o| ReportObservation {
                value: o.observation.value,
                observer: o.observer,
            })
            .collect();
        lead.phase = Phase::Report;
        let round = lead.round;
        self.broadcast(Message::ReportReq {
            epoch,
            round,
            observations,
        });
    }

    fn on_report(&mut self, from: u8, epoch: u32, round: u8, report: AttestedReportOne) {
        let cfg = Arc::clone(&self.cfg);
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if epoch != self.pacemaker.epoch()
            || round != lead.round
            || lead.phase != Phase::Report
            || lead.signatures[usize::from(from)].is_some()
        {
            return;
        }
        if report.observations != lead.requested {
            self.reject(
                from,
                "report",
                Invalid::Encoding("observations differ from the report request".into()),
            );
            return;
        }
        let checked = verify::report_bytes(&cfg, epoch, round, &report.observations)
            .and_then(|bytes| verify::report_signature(&cfg, &bytes, from, &report.signature));
        if let Err(why) = checked {
            self.reject(from, "report", why);
            return;
        }
        lead.signatures[usize::from(from)] = Some(report.signature);
        let signatures: Vec<[u8; 65]> = lead.signatures.iter().flatten().copied().collect();
        if signatures.len() > cfg.f {
            lead.phase = Phase::Final;
            let report = AttestedReportMany {
                observations: lead.requested.clone(),
                signatures,
            };
            self.broadcast(Message::Final {
                epoch,
                round,
                report,
            });
        }
    }

    // ---- follower ----

    fn on_observe_req(&mut self, from: u8, epoch: u32, round: u8, now: Instant) {
        if from != self.leader || epoch != self.epoch() || round <= self.follower.round {
            return;
        }
        if round > self.cfg.r_max.saturating_add(1) {
            self.reject(
                from,
                "observe-req",
                Invalid::Encoding(format!("round {round} beyond rMax+1")),
            );
            return;
        }
        self.follower = FollowerRound {
            round,
            echoes: vec![false; self.cfg.n],
            ..Default::default()
        };
        if round > self.cfg.r_max {
            // The leader has had its rounds; the next epoch gets another leader.
            self.event(Event::LeaderAbandoned {
                epoch,
                why: "rMax rounds done",
            });
            self.change_leader(now);
            return;
        }
        if !fence::may_sign(self.cfg.signing_floor, er(epoch, round)) {
            // Not progress either: an oracle stuck below the fence lets ΔProgress move it on.
            self.event(Event::RoundFenced { epoch, round });
            return;
        }
        self.event(Event::RoundStarted { epoch, round });
        self.out.push(Output::Observe { epoch, round });
    }

    fn on_report_req(
        &mut self,
        from: u8,
        epoch: u32,
        round: u8,
        observations: Vec<AttributedSignedObservation>,
    ) {
        if from != self.leader
            || epoch != self.epoch()
            || round != self.follower.round
            || self.follower.report_req_seen
            || !fence::may_sign(self.cfg.signing_floor, er(epoch, round))
        {
            return;
        }
        self.follower.report_req_seen = true;
        match verify::report_request(&self.cfg, epoch, round, &observations) {
            Ok(observations) => {
                self.event(Event::ReportRequested {
                    epoch,
                    round,
                    observations: observations.clone(),
                });
                self.out.push(Output::Decide {
                    epoch,
                    round,
                    observations,
                });
            }
            Err(why) => self.reject(from, "report-req", why),
        }
    }

    fn on_final(&mut self, from: u8, epoch: u32, round: u8, report: AttestedReportMany) {
        if from != self.leader
            || epoch != self.epoch()
            || round != self.follower.round
            || self.follower.sent_echo
        {
            return;
        }
        if let Err(why) = self.verify_final(epoch, round, &report) {
            self.reject(from, "final", why);
            return;
        }
        self.follower.sent_echo = true;
        self.broadcast(Message::FinalEcho {
            epoch,
            round,
            report,
        });
    }

    fn on_final_echo(
        &mut self,
        from: u8,
        epoch: u32,
        round: u8,
        report: AttestedReportMany,
        now: Instant,
    ) {
        let index = usize::from(from);
        if epoch != self.epoch()
            || round != self.follower.round
            || self.follower.echoes.get(index).copied().unwrap_or(true)
        {
            return;
        }
        if let Err(why) = self.verify_final(epoch, round, &report) {
            self.reject(from, "final-echo", why);
            return;
        }
        self.follower.echoes[index] = true;
        if !self.follower.sent_echo {
            self.follower.sent_echo = true;
            self.broadcast(Message::FinalEcho {
                epoch,
                round,
                report: report.clone(),
            });
        }
        let echoes = self.follower.echoes.iter().filter(|e| **e).count();
        if echoes > self.cfg.f && !self.follower.finalized {
            self.follower.finalized = true;
            self.out.push(Output::Finalized {
                epoch,
                round,
                report,
            });
            if !self.follower.completed {
                self.complete_round(now);
            }
        }
    }

    fn verify_final(
        &mut self,
        epoch: u32,
        round: u8,
        report: &AttestedReportMany,
    ) -> Result<(), Invalid> {
        if self.follower.verified.as_ref() == Some(report) {
            return Ok(());
        }
        verify::attested_report(&self.cfg, epoch, round, report)?;
        self.follower.verified = Some(report.clone());
        Ok(())
    }

    fn complete_round(&mut self, now: Instant) {
        self.follower.completed = true;
        self.arm(Timer::Progress, now + self.cfg.delta_progress);
    }

    // ---- plumbing ----

    fn send(&mut self, to: u8, message: Message) {
        if to == self.cfg.me {
            self.loopback.push_back(message);
        } else {
            self.out.push(Output::Send { to, message });
        }
    }

    fn broadcast(&mut self, message: Message) {
        self.loopback.push_back(message.clone());
        self.out.push(Output::Broadcast(message));
    }

    fn arm(&mut self, timer: Timer, at: Instant) {
        self.deadlines.insert(timer, at);
    }

    fn persist(&mut self) {
        self.out.push(Output::Persist(self.pacemaker.state.clone()));
    }

    fn event(&mut self, event: Event) {
        self.out.push(Output::Event(event));
    }

    fn reject(&mut self, from: u8, kind: &'static str, why: Invalid) {
        self.event(Event::Rejected {
            from,
            kind,
            why: why.to_string(),
        });
    }
}
