//! The protocol instances of n oracles wired through an in-memory network on a virtual clock:
//! every message delivered, every timer fired in order, crashes and lies injected at will.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::aliases::I192;

use super::config::InstanceConfig;
use super::instance::{Decision, Event, Instance, Output};
use super::messages::{AttestedReportMany, Message};
use super::pacemaker::PacemakerState;
use super::verify;
use crate::node::ocr1::signature::{address_of, sign_report};
use crate::node::ocr1::types::ConfigDigest;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    Honest,
    Crashed,
    /// Observes ten times the true price.
    Liar,
    /// Signs its observations and reports with keys that are not its configured ones.
    WrongKeys,
}

pub struct Finalized {
    pub oracle: u8,
    pub epoch: u32,
    pub round: u8,
    pub report: AttestedReportMany,
}

pub struct Simulation {
    pub instances: Vec<Instance>,
    pub behaviour: Vec<Behaviour>,
    onchain: Vec<k256::ecdsa::SigningKey>,
    wrong_onchain: k256::ecdsa::SigningKey,
    queue: VecDeque<(u8, Option<u8>, Message)>,
    pub now: Instant,
    pub price: i64,
    pub finalized: Vec<Finalized>,
    pub events: Vec<(u8, Event)>,
    /// Whether followers sign (shouldReport); the tests of the protocol itself always report.
    pub report_every_round: bool,
    /// Oracles that always decide not to report (their view of the latest answer differs).
    pub skips: Vec<bool>,
}

pub fn timing() -> (Duration, Duration, Duration, Duration) {
    // (ΔProgress, ΔResend, ΔRound, ΔGrace) as a fast local network would use them.
    (
        Duration::from_secs(3),
        Duration::from_secs(1),
        Duration::from_millis(1000),
        Duration::from_millis(200),
    )
}

impl Simulation {
    pub fn new(n: usize, f: usize, behaviour: Vec<Behaviour>) -> Self {
        let offchain: Vec<ed25519_dalek::SigningKey> = (0..n)
            .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect();
        let onchain: Vec<k256::ecdsa::SigningKey> = (0..n)
            .map(|i| k256::ecdsa::SigningKey::from_slice(&[i as u8 + 1; 32]).expect("valid scalar"))
            .collect();
        let (progress, resend, round, grace) = timing();
        let instances = (0..n)
            .map(|me| {
                let mut key = offchain[me].clone();
                if behaviour[me] == Behaviour::WrongKeys {
                    key = ed25519_dalek::SigningKey::from_bytes(&[0xee; 32]);
                }
                let cfg = InstanceConfig {
                    feed: "BTC-USD".into(),
                    digest: ConfigDigest([0x42; 16]),
                    n,
                    f,
                    me: me as u8,
                    r_max: 3,
                    delta_progress: progress,
                    delta_resend: resend,
                    delta_round: round,
                    delta_grace: grace,
                    leader_key: [7; 16],
                    offchain_keys: offchain.iter().map(|k| k.verifying_key()).collect(),
                    signers: onchain
                        .iter()
                        .map(|k| address_of(k.verifying_key()))
                        .collect(),
                    offchain_key: key,
                };
                Instance::new(Arc::new(cfg), PacemakerState::initial(n))
            })
            .collect();
        let now = Instant::now();
        Simulation {
            instances,
            behaviour,
            onchain,
            wrong_onchain: k256::ecdsa::SigningKey::from_slice(&[0xee; 32]).expect("valid scalar"),
            queue: VecDeque::new(),
            now,
            price: 100_000,
            finalized: Vec::new(),
            events: Vec::new(),
            report_every_round: true,
            skips: vec![false; n],
        }
    }

    pub fn alive(&self, i: usize) -> bool {
        self.behaviour[i] != Behaviour::Crashed
    }

    pub fn start_all(&mut self) {
        for i in 0..self.instances.len() {
            if self.alive(i) {
                let out = self.instances[i].start(self.now);
                self.apply(i as u8, out);
            }
        }
    }

    /// Restarts oracle `i` from `state`, as a process restart with its database would.
    pub fn restart(&mut self, i: usize, state: PacemakerState) {
        let cfg = self.instances[i].config().clone();
        self.instances[i] = Instance::new(cfg, state);
        self.behaviour[i] = Behaviour::Honest;
        let out = self.instances[i].start(self.now);
        self.apply(i as u8, out);
    }

    fn apply(&mut self, from: u8, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { to, message } => self.queue.push_back((from, Some(to), message)),
                Output::Broadcast(message) => self.queue.push_back((from, None, message)),
                Output::Observe { epoch, round } => {
                    let value = match self.behaviour[usize::from(from)] {
                        Behaviour::Liar => self.price * 10,
                        _ => self.price + i64::from(from),
                    };
                    let value = I192::try_from(value).expect("fits");
                    let out = self.instances[usize::from(from)].observed(
                        epoch,
                        round,
                        Some(value),
                        self.now,
                    );
                    self.apply(from, out);
                }
                Output::Decide {
                    epoch,
                    round,
                    observations,
                } => {
                    let decision = if self.report_every_round && !self.skips[usize::from(from)] {
                        let cfg = self.instances[usize::from(from)].config().clone();
                        let bytes =
                            verify::report_bytes(&cfg, epoch, round, &observations).expect("valid");
                        let key = match self.behaviour[usize::from(from)] {
                            Behaviour::WrongKeys => &self.wrong_onchain,
                            _ => &self.onchain[usize::from(from)],
                        };
                        Decision::Report {
                            observations,
                            signature: sign_report(key, &bytes).expect("signs"),
                        }
                    } else {
                        Decision::Skip
                    };
                    let out =
                        self.instances[usize::from(from)].decided(epoch, round, decision, self.now);
                    self.apply(from, out);
                }
                Output::Finalized {
                    epoch,
                    round,
                    report,
                } => self.finalized.push(Finalized {
                    oracle: from,
                    epoch,
                    round,
                    report,
                }),
                Output::Persist(_) => {}
                Output::Event(e) => self.events.push((from, e)),
            }
        }
    }

    fn deliver(&mut self) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            if !self.alive(usize::from(from)) {
                continue;
            }
            let targets: Vec<u8> = match to {
                Some(to) => vec![to],
                None => (0..self.instances.len() as u8)
                    .filter(|&i| i != from)
                    .collect(),
            };
            for to in targets {
                if self.alive(usize::from(to)) {
                    let out =
                        self.instances[usize::from(to)].handle(from, message.clone(), self.now);
                    self.apply(to, out);
                }
            }
        }
    }

    /// Runs until `for_` of virtual time has passed.
    pub fn run(&mut self, for_: Duration) {
        let until = self.now + for_;
        loop {
            self.deliver();
            let next = (0..self.instances.len())
                .filter(|&i| self.alive(i))
                .filter_map(|i| self.instances[i].next_deadline())
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    for i in 0..self.instances.len() {
                        if self.alive(i) {
                            let out = self.instances[i].tick(self.now);
                            self.apply(i as u8, out);
                        }
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    pub fn finalized_by(&self, oracle: u8) -> Vec<&Finalized> {
        self.finalized
            .iter()
            .filter(|f| f.oracle == oracle)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Behaviour::*;

    fn check_reports(sim: &Simulation, f: usize) {
        let cfg = sim.instances[0].config().clone();
        for fin in &sim.finalized {
            let bytes = verify::attested_report(&cfg, fin.epoch, fin.round, &fin.report)
                .expect("valid attested report");
            assert!(fin.report.signatures.len() > f);
            assert!(fin.report.observations.len() > 2 * f);
            assert!(fin
                .report
                .observations
                .windows(2)
                .all(|w| w[0].value <= w[1].value));
            assert_eq!(bytes.len(), 128 + 32 * fin.report.observations.len());
        }
    }

    /// Every honest oracle finalized the same report for each (epoch, round) any of them did.
    fn check_agreement(sim: &Simulation) {
        for a in &sim.finalized {
            for b in &sim.finalized {
                if (a.epoch, a.round) == (b.epoch, b.round) {
                    assert_eq!(a.report.observations, b.report.observations);
                }
            }
        }
    }

    #[test]
    fn four_honest_oracles_finalize_a_report_every_round() {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.start_all();
        sim.run(Duration::from_secs(10));
        for oracle in 0..4 {
            assert!(
                sim.finalized_by(oracle).len() >= 8,
                "oracle {oracle}: {}",
                sim.finalized_by(oracle).len()
            );
        }
        check_reports(&sim, 1);
        check_agreement(&sim);
    }

    #[test]
    fn the_leader_rotates_after_r_max_rounds() {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.start_all();
        sim.run(Duration::from_secs(20));
        let epochs: std::collections::BTreeSet<u32> =
            sim.finalized.iter().map(|f| f.epoch).collect();
        assert!(epochs.len() >= 3, "epochs {epochs:?}");
        assert!(sim.finalized.iter().all(|f| f.round >= 1 && f.round <= 3));
    }

    #[test]
    fn a_crashed_leader_is_replaced_within_delta_progress_and_reports_continue() {
        let probe = Simulation::new(4, 1, vec![Honest; 4]);
        let leader = probe.instances[0].leader();
        let mut behaviour = vec![Honest; 4];
        behaviour[usize::from(leader)] = Crashed;
        let mut sim = Simulation::new(4, 1, behaviour);
        sim.start_all();
        let (progress, ..) = timing();
        sim.run(progress + Duration::from_secs(3));
        let survivors: Vec<u8> = (0..4).filter(|&i| i != leader).collect();
        for &o in &survivors {
            assert!(
                sim.instances[usize::from(o)].epoch() > 1,
                "oracle {o} still in epoch 1"
            );
            assert!(
                !sim.finalized_by(o).is_empty(),
                "oracle {o} finalized nothing"
            );
        }
        let first = sim.finalized.iter().map(|f| f.epoch).min().unwrap();
        assert!(first > 1);
        check_reports(&sim, 1);
        check_agreement(&sim);
    }

    #[test]
    fn a_lying_oracle_cannot_move_the_answer_outside_honest_values() {
        for liar in 0..4usize {
            let mut behaviour = vec![Honest; 4];
            behaviour[liar] = Liar;
            let mut sim = Simulation::new(4, 1, behaviour);
            sim.start_all();
            sim.run(Duration::from_secs(8));
            assert!(!sim.finalized.is_empty(), "liar {liar}: nothing finalized");
            for fin in &sim.finalized {
                let answer = verify::median(&fin.report.observations).unwrap();
                let lo = I192::try_from(sim.price).unwrap();
                let hi = I192::try_from(sim.price + 3).unwrap();
                assert!(answer >= lo && answer <= hi, "liar {liar}: answer {answer}");
            }
            check_reports(&sim, 1);
        }
    }

    #[test]
    fn an_oracle_signing_with_the_wrong_keys_is_rejected_and_reports_continue() {
        let mut behaviour = vec![Honest; 4];
        behaviour[2] = WrongKeys;
        let mut sim = Simulation::new(4, 1, behaviour);
        sim.start_all();
        sim.run(Duration::from_secs(10));
        for o in [0u8, 1, 3] {
            assert!(sim.finalized_by(o).len() >= 5, "oracle {o}");
        }
        for fin in &sim.finalized {
            assert!(
                fin.report.observations.iter().all(|o| o.observer != 2),
                "a badly signed observation was used"
            );
        }
        assert!(sim
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Rejected { from: 2, .. })));
        check_reports(&sim, 1);
    }

    #[test]
    fn seven_oracles_with_two_crashed_still_finalize() {
        let mut behaviour = vec![Honest; 7];
        behaviour[1] = Crashed;
        behaviour[4] = Crashed;
        let mut sim = Simulation::new(7, 2, behaviour);
        sim.start_all();
        sim.run(Duration::from_secs(20));
        for o in [0u8, 2, 3, 5, 6] {
            assert!(!sim.finalized_by(o).is_empty(), "oracle {o}");
        }
        check_reports(&sim, 2);
        check_agreement(&sim);
    }

    #[test]
    fn three_crashed_of_seven_stop_progress_rather_than_break_safety() {
        let mut behaviour = vec![Honest; 7];
        for i in [0, 1, 2] {
            behaviour[i] = Crashed;
        }
        let mut sim = Simulation::new(7, 2, behaviour);
        sim.start_all();
        sim.run(Duration::from_secs(20));
        // 4 of 7 alive: fewer than 2f+1 = 5 observers, so nothing may finalize.
        assert!(sim.finalized.is_empty());
    }

    #[test]
    fn a_restarted_oracle_resumes_in_its_epoch_and_catches_up() {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.start_all();
        sim.run(Duration::from_secs(6));
        let epoch_before = sim.instances[3].epoch();
        sim.behaviour[3] = Crashed;
        sim.run(Duration::from_secs(5));
        sim.restart(
            3,
            PacemakerState {
                epoch: epoch_before,
                highest_sent: epoch_before,
                highest_received: vec![0; 4],
            },
        );
        let count_before = sim.finalized_by(3).len();
        sim.run(Duration::from_secs(10));
        assert!(sim.instances[3].epoch() >= sim.instances[0].epoch().saturating_sub(1));
        assert!(
            sim.finalized_by(3).len() > count_before,
            "the restarted oracle finalizes again"
        );
        check_agreement(&sim);
    }

    #[test]
    fn a_follower_that_decided_not_to_report_still_records_the_dons_report() {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.skips[3] = true;
        sim.start_all();
        sim.run(Duration::from_secs(10));
        let rounds = |o: u8| -> Vec<(u32, u8)> {
            sim.finalized_by(o)
                .iter()
                .map(|f| (f.epoch, f.round))
                .collect()
        };
        assert!(!rounds(0).is_empty());
        assert_eq!(rounds(3), rounds(0));
        check_agreement(&sim);
    }

    #[test]
    fn followers_that_decide_not_to_report_complete_rounds_without_reports() {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.report_every_round = false;
        sim.start_all();
        sim.run(Duration::from_secs(8));
        assert!(sim.finalized.is_empty());
        assert!(sim
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::RoundSkipped { .. })));
        // Skipped rounds are progress: no epoch change beyond rMax rotation.
        assert!(!sim.events.iter().any(
            |(_, e)| matches!(e, Event::LeaderAbandoned { why, .. } if why.contains("progress"))
        ));
    }
}
