//! The protocol instances of n oracles wired through an in-memory network on a virtual clock:
//! every message delivered, every timer fired in order, crashes and lies injected at will.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::aliases::I192;

use super::config::InstanceConfig;
use super::instance::{Decision, Event, Instance, Output};
use super::messages::{AttestedReportMany, Message};
use super::pacemaker::PacemakerState;
use super::verify;
use crate::node::ocr1::signature::{address_of, sign_report};
use crate::node::ocr1::types::{ConfigDigest, EpochRound};
use crate::node::protocol::fence::{self, ChainPosition};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    Honest,
    Crashed,
    /// Observes ten times the true price.
    Liar,
    /// Signs its observations and reports with keys that are not its configured ones.
    WrongKeys,
}

/// (epoch, round) → keccak256 of every report signed there.
pub type Signatures = BTreeMap<(u32, u8), Vec<[u8; 32]>>;

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
    /// Every report signature made, per oracle: (epoch, round) → keccak256 of each report it
    /// signed there. Kept across restarts and rollbacks: the world remembers what was signed.
    pub signed: Vec<Signatures>,
    /// Each oracle's latest persisted pacemaker state (its database).
    pub persisted: Vec<Option<PacemakerState>>,
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
                    signing_floor: None,
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
            signed: vec![BTreeMap::new(); n],
            persisted: vec![None; n],
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

    /// Restarts oracle `i` on a database holding `stored` and rounds up to `remembered`, fenced
    /// by the contract's position `chain`, as the node's start does (`node::protocol::fence`).
    pub fn restart_fenced(
        &mut self,
        i: usize,
        stored: Option<PacemakerState>,
        remembered: Option<EpochRound>,
        chain: Option<ChainPosition>,
    ) -> fence::Fence {
        let old = self.instances[i].config().clone();
        let fenced = fence::fence(old.digest, old.n, stored, remembered, chain);
        let cfg = InstanceConfig {
            feed: old.feed.clone(),
            digest: old.digest,
            n: old.n,
            f: old.f,
            me: old.me,
            r_max: old.r_max,
            delta_progress: old.delta_progress,
            delta_resend: old.delta_resend,
            delta_round: old.delta_round,
            delta_grace: old.delta_grace,
            leader_key: old.leader_key,
            offchain_keys: old.offchain_keys.clone(),
            signers: old.signers.clone(),
            offchain_key: old.offchain_key.clone(),
            signing_floor: fenced.floor,
        };
        self.instances[i] = Instance::new(Arc::new(cfg), fenced.start.clone());
        self.behaviour[i] = Behaviour::Honest;
        let out = self.instances[i].start(self.now);
        self.apply(i as u8, out);
        fenced
    }

    /// Hands `message` to oracle `to` as if `from` had sent it (a faulty sender's lie).
    pub fn inject(&mut self, from: u8, to: u8, message: Message) {
        let out = self.instances[usize::from(to)].handle(from, message, self.now);
        self.apply(to, out);
    }

    /// The newest (epoch, round) any oracle finalized: what the contract holds once it landed.
    pub fn chain_latest(&self) -> EpochRound {
        self.finalized
            .iter()
            .map(|f| EpochRound::new(f.epoch, f.round))
            .max()
            .unwrap_or_default()
    }

    /// The furthest (epoch, round) oracle `i` signed or finalized so far.
    pub fn position_of(&self, i: u8) -> Option<EpochRound> {
        let signed = self.signed[usize::from(i)]
            .keys()
            .map(|&(e, r)| EpochRound::new(e, r));
        let finalized = self
            .finalized_by(i)
            .into_iter()
            .map(|f| EpochRound::new(f.epoch, f.round));
        signed.chain(finalized).max()
    }

    /// (oracle, epoch, round) where two different reports were signed, by one oracle or by two.
    pub fn conflicting_signatures(&self) -> Vec<(u8, u32, u8)> {
        let mut seen: BTreeMap<(u32, u8), [u8; 32]> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (oracle, rounds) in self.signed.iter().enumerate() {
            for (&at, hashes) in rounds {
                for hash in hashes {
                    if *seen.entry(at).or_insert(*hash) != *hash {
                        conflicts.push((oracle as u8, at.0, at.1));
                    }
                }
            }
        }
        conflicts
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
                        self.signed[usize::from(from)]
                            .entry((epoch, round))
                            .or_default()
                            .push(alloy_primitives::keccak256(&bytes).0);
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
                Output::Persist(state) => self.persisted[usize::from(from)] = Some(state),
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
    use crate::node::ocr1::observation::sign_observation;
    use crate::node::protocol::messages::{
        AttributedSignedObservation, ReportObservation, SignedObservation,
    };
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

    /// The oracle to roll back, and its database as a backup taken the moment it entered a new
    /// epoch (before it signed anything there): (oracle, stored state, remembered position).
    fn backup_at_an_epoch_start(
        sim: &mut Simulation,
    ) -> (usize, PacemakerState, Option<EpochRound>) {
        let start = sim.instances[0].epoch();
        for _ in 0..200 {
            sim.run(Duration::from_millis(50));
            let epoch = sim.instances[0].epoch();
            if epoch > start {
                // Not the epoch's leader: the rolled-back oracle is honest, its leader is not.
                let k = (usize::from(sim.instances[0].leader()) + 1) % 4;
                assert_eq!(sim.instances[k].epoch(), epoch);
                assert!(sim.signed[k].keys().all(|&(e, _)| e < epoch));
                let stored = sim.persisted[k].clone().expect("persisted");
                assert_eq!(stored.epoch, epoch);
                return (k, stored, sim.position_of(k as u8));
            }
        }
        panic!("no epoch change");
    }

    /// Runs a DON, rolls oracle k back to a backup, restarts it (fenced or not), and lets the
    /// leader of k's restored epoch — faulty — replay round 1 of that epoch with a different
    /// set of the observations it had received. Returns the simulation after 10 s more.
    fn rolled_back(fenced: bool) -> RolledBack {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.start_all();
        sim.run(Duration::from_secs(2));
        let (k, stored, remembered) = backup_at_an_epoch_start(&mut sim);
        let epoch = stored.epoch;
        sim.run(Duration::from_secs(8));
        assert!(
            sim.signed[k].contains_key(&(epoch, 1)),
            "k signed round 1 of its backup's epoch after the backup"
        );
        sim.behaviour[k] = Crashed;
        sim.run(Duration::from_millis(500));
        let chain = sim.chain_latest();
        assert!(EpochRound::new(epoch, 1) <= chain);
        let position = ChainPosition {
            digest: sim.instances[k].config().digest,
            latest: chain,
        };
        let (finalized_before, events_before) = (sim.finalized.len(), sim.events.len());
        let fence = if fenced {
            sim.restart_fenced(k, Some(stored), remembered, Some(position))
        } else {
            sim.restart_fenced(k, Some(stored), remembered, None)
        };
        assert_eq!(fence.behind.is_some(), fenced);
        // The faulty leader of k's restored epoch replays round 1 with three of the four
        // observations, each really signed by its oracle for that round.
        let cfg = sim.instances[k].config().clone();
        let leader = cfg.leader_of(epoch);
        assert_ne!(usize::from(leader), k);
        let er1 = EpochRound::new(epoch, 1);
        let observations: Vec<AttributedSignedObservation> = (0..4u8)
            .filter(|&i| i != leader)
            .map(|i| {
                let value = I192::try_from(sim.price + i64::from(i)).expect("fits");
                let key = ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]);
                AttributedSignedObservation {
                    observation: SignedObservation {
                        value,
                        signature: sign_observation(&key, cfg.digest, er1, value),
                    },
                    observer: i,
                }
            })
            .collect();
        sim.inject(leader, k as u8, Message::ObserveReq { epoch, round: 1 });
        sim.inject(
            leader,
            k as u8,
            Message::ReportReq {
                epoch,
                round: 1,
                observations,
            },
        );
        sim.run(Duration::from_secs(10));
        RolledBack {
            sim,
            k,
            chain,
            finalized_before,
            events_before,
        }
    }

    struct RolledBack {
        sim: Simulation,
        k: usize,
        /// The contract's latest (epoch, round) when k restarted.
        chain: EpochRound,
        finalized_before: usize,
        events_before: usize,
    }

    #[test]
    fn an_oracle_rolled_back_without_the_fence_signs_a_second_report_for_a_faulty_leader() {
        // The threat the fence answers: a restored database has forgotten the signature.
        let RolledBack { sim, k, .. } = rolled_back(false);
        assert!(
            sim.conflicting_signatures()
                .iter()
                .any(|&(o, _, _)| usize::from(o) == k),
            "the unfenced oracle signed twice"
        );
    }

    #[test]
    fn a_rolled_back_oracle_is_fenced_signs_nothing_twice_and_takes_part_again_within_two_rounds() {
        let RolledBack {
            sim,
            k,
            chain,
            finalized_before,
            events_before,
        } = rolled_back(true);
        assert_eq!(sim.conflicting_signatures(), Vec::new());
        // Nothing at or below the contract's latest was signed after the restart: every
        // signature k holds there dates from before the rollback (one per round).
        for (&(e, r), hashes) in &sim.signed[k] {
            assert_eq!(hashes.len(), 1, "({e}, {r}) signed {} times", hashes.len());
        }
        assert!(
            sim.events
                .iter()
                .any(|(o, e)| usize::from(*o) == k
                    && matches!(e, Event::RoundFenced { round: 1, .. }))
        );
        // It takes part again: in one of the first two report requests after its restart (seen
        // by another oracle), and it signs and finalizes reports above the fence.
        let witness = ((k + 1) % 4) as u8;
        let requests: Vec<&Vec<ReportObservation>> = sim.events[events_before..]
            .iter()
            .filter(|(o, _)| *o == witness)
            .filter_map(|(_, e)| match e {
                Event::ReportRequested {
                    epoch,
                    round,
                    observations,
                } if EpochRound::new(*epoch, *round) > chain => Some(observations),
                _ => None,
            })
            .collect();
        let first = requests
            .iter()
            .position(|obs| obs.iter().any(|o| usize::from(o.observer) == k))
            .expect("k observes again");
        assert!(first < 2, "k back only in report request {}", first + 1);
        assert!(sim.signed[k]
            .keys()
            .any(|&(e, r)| EpochRound::new(e, r) > chain));
        assert!(sim.finalized[finalized_before..]
            .iter()
            .any(|f| usize::from(f.oracle) == k));
        check_agreement(&sim);
    }

    #[test]
    fn an_oracle_with_an_empty_database_announces_past_the_chain_and_rejoins() {
        let mut sim = Simulation::new(4, 1, vec![Honest; 4]);
        sim.start_all();
        sim.run(Duration::from_secs(9));
        sim.behaviour[2] = Crashed;
        let chain = sim.chain_latest();
        let digest = sim.instances[2].config().digest;
        let fence = sim.restart_fenced(
            2,
            None,
            None,
            Some(ChainPosition {
                digest,
                latest: chain,
            }),
        );
        assert_eq!(fence.start.highest_sent, chain.epoch + 1);
        assert_eq!(fence.behind.map(|b| b.local), Some(None));
        let before = sim.finalized_by(2).len();
        sim.run(Duration::from_secs(8));
        assert!(sim.finalized_by(2).len() > before);
        assert!(sim.signed[2]
            .keys()
            .any(|&(e, r)| EpochRound::new(e, r) > chain));
        assert_eq!(sim.conflicting_signatures(), Vec::new());
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
