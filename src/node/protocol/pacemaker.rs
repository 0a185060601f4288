//! The pacemaker (OCR Alg. 1, ocr-and-sources.md A.1.3): which epoch this oracle is in, and when
//! to move to the next one. Pure logic; timers and sending live in `instance`.

use serde::{Deserialize, Serialize};

/// What the pacemaker persists so that a restarted oracle resumes in its epoch instead of
/// starting over at 1 (which would make it sign in epochs it has already been through).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacemakerState {
    /// `e`: the current epoch.
    pub epoch: u32,
    /// `ne`: the highest epoch this oracle has sent in NEWEPOCH.
    pub highest_sent: u32,
    /// `newepoch[j]`: the highest epoch received from each oracle.
    pub highest_received: Vec<u32>,
}

impl PacemakerState {
    pub fn initial(n: usize) -> Self {
        Self {
            epoch: 1,
            highest_sent: 1,
            highest_received: vec![0; n],
        }
    }

    /// A stored state, repaired where it does not fit this configuration (another n).
    pub fn restored(mut stored: PacemakerState, n: usize) -> Self {
        stored.epoch = stored.epoch.max(1);
        stored.highest_sent = stored.highest_sent.max(stored.epoch);
        stored.highest_received.resize(n, 0);
        stored
    }
}

/// What receiving a NEWEPOCH led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NewEpochOutcome {
    /// Broadcast NEWEPOCH(this) (amplification: more than f oracles are ahead of us).
    pub send: Option<u32>,
    /// Switch to this epoch (more than 2f oracles are ahead of our current epoch).
    pub switch_to: Option<u32>,
    /// The state changed and must be persisted.
    pub changed: bool,
}

pub struct Pacemaker {
    pub state: PacemakerState,
    f: usize,
}

impl Pacemaker {
    pub fn new(state: PacemakerState, f: usize) -> Self {
        Self { state, f }
    }

    pub fn epoch(&self) -> u32 {
        self.state.epoch
    }

    /// ΔProgress expired or the report generation asked for a new leader: vote for the next epoch.
    pub fn change_leader(&mut self) -> u32 {
        let next = self
            .state
            .highest_sent
            .max(self.state.epoch.saturating_add(1));
        self.state.highest_sent = next;
        next
    }

    /// NEWEPOCH(epoch) from oracle `from` (which may be this oracle: broadcasts reach ourselves).
    pub fn on_new_epoch(&mut self, from: usize, epoch: u32) -> NewEpochOutcome {
        let mut outcome = NewEpochOutcome::default();
        let Some(slot) = self.state.highest_received.get_mut(from) else {
            return outcome;
        };
        if epoch <= *slot {
            return outcome;
        }
        *slot = epoch;
        outcome.changed = true;
        if let Some(ahead) = self.kth_largest_above(self.state.highest_sent, self.f + 1) {
            self.state.highest_sent = ahead;
            outcome.send = Some(ahead);
        }
        if let Some(target) = self.kth_largest_above(self.state.epoch, 2 * self.f + 1) {
            self.state.epoch = target;
            self.state.highest_sent = self.state.highest_sent.max(target);
            outcome.switch_to = Some(target);
        }
        outcome
    }

    /// The k-th largest received epoch among those above `floor`, when at least k oracles are there.
    fn kth_largest_above(&self, floor: u32, k: usize) -> Option<u32> {
        let mut above: Vec<u32> = self
            .state
            .highest_received
            .iter()
            .copied()
            .filter(|&e| e > floor)
            .collect();
        if above.len() < k {
            return None;
        }
        above.sort_unstable_by(|a, b| b.cmp(a));
        above.get(k - 1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacemaker(n: usize, f: usize) -> Pacemaker {
        Pacemaker::new(PacemakerState::initial(n), f)
    }

    #[test]
    fn more_than_f_oracles_ahead_are_echoed_and_more_than_2f_switch_the_epoch() {
        let mut p = pacemaker(4, 1);
        let first = p.on_new_epoch(1, 2);
        assert_eq!(
            first,
            NewEpochOutcome {
                send: None,
                switch_to: None,
                changed: true
            }
        );
        // Two oracles (> f) ahead of what we sent: amplify to the (f+1)-th largest.
        let second = p.on_new_epoch(2, 3);
        assert_eq!(second.send, Some(2));
        assert_eq!(second.switch_to, None);
        // Our own echo arrives: three (> 2f) ahead of epoch 1 → the 3rd largest, 2.
        let third = p.on_new_epoch(0, 2);
        assert_eq!(third.switch_to, Some(2));
        assert_eq!(p.epoch(), 2);
        assert_eq!(p.state.highest_sent, 2);
    }

    #[test]
    fn old_or_repeated_votes_change_nothing() {
        let mut p = pacemaker(4, 1);
        assert!(p.on_new_epoch(1, 5).changed);
        assert_eq!(p.on_new_epoch(1, 5), NewEpochOutcome::default());
        assert_eq!(p.on_new_epoch(1, 4), NewEpochOutcome::default());
        assert_eq!(
            p.on_new_epoch(9, 7),
            NewEpochOutcome::default(),
            "unknown oracle"
        );
    }

    #[test]
    fn a_single_byzantine_oracle_cannot_move_the_epoch() {
        let mut p = pacemaker(4, 1);
        let outcome = p.on_new_epoch(3, u32::MAX);
        assert_eq!(outcome.send, None);
        assert_eq!(outcome.switch_to, None);
        assert_eq!(p.epoch(), 1);
    }

    #[test]
    fn change_leader_votes_for_the_next_epoch_once() {
        let mut p = pacemaker(4, 1);
        assert_eq!(p.change_leader(), 2);
        assert_eq!(p.change_leader(), 2, "already voted for 2");
    }

    #[test]
    fn a_restored_state_is_fitted_to_the_oracle_count() {
        let stored = PacemakerState {
            epoch: 7,
            highest_sent: 3,
            highest_received: vec![7, 7],
        };
        let s = PacemakerState::restored(stored, 4);
        assert_eq!(s.epoch, 7);
        assert_eq!(s.highest_sent, 7);
        assert_eq!(s.highest_received, vec![7, 7, 0, 0]);
    }
}
