//! When this oracle transmits a report: stage i of the schedule `s`, chosen by libocr's
//! permutation from the shared secret and the report's (digest, epoch, round), waits i·ΔStage;
//! within its stage, the oracle at index k of m waits k·ΔStage/(2m) more.
//!
//! Why the offset: libocr sends a stage's oracles at the same instant. When the first stage's
//! oracle does not send (down, or not yet in the epoch), both oracles of the next stage of
//! `[1,2,2,2]` send together and one of them pays for a `stale report` revert. Staggered, the
//! later one re-reads the contract (`still_needed`) after the earlier one's transaction had
//! time to land, and stands down. The offsets stay within the first half of the stage, so the
//! stages keep libocr's order and spacing; every oracle of a DON computes the same slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::node::ocr1::leader::transmission_order_key;
use crate::node::ocr1::permutation::{permutation, round_transmission_key};
use crate::node::ocr1::types::{ConfigDigest, EpochRound};

/// Where one oracle falls in the schedule for one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// libocr's stage (0: sends at once).
    pub stage: usize,
    /// This oracle's place within its stage, in permutation order.
    pub index: usize,
    /// How many oracles the stage has.
    pub size: usize,
}

/// The slot of permutation position `position` (libocr: the first stage i with
/// `position < s[0] + … + s[i]`); `None` beyond the schedule (never transmits).
pub fn slot(position: usize, stages: &[u8]) -> Option<Slot> {
    let mut start = 0usize;
    for (stage, &count) in stages.iter().enumerate() {
        let size = usize::from(count);
        if position < start + size {
            return Some(Slot {
                stage,
                index: position - start,
                size,
            });
        }
        start += size;
    }
    None
}

/// How long after finalization the oracle in `slot` transmits.
pub fn delay_of(slot: Slot, delta_stage: Duration) -> Duration {
    let stage = delta_stage.saturating_mul(u32::try_from(slot.stage).unwrap_or(u32::MAX));
    // index < size ≤ 31, so the offset stays below ΔStage/2.
    let offset = match (u32::try_from(slot.index), u32::try_from(slot.size)) {
        (Ok(index), Ok(size)) if size > 1 => delta_stage * index / (2 * size),
        _ => Duration::ZERO,
    };
    stage.saturating_add(offset)
}

/// Clones share the order keys learned so far.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The order key of each configuration, from the shared secret dealt with it on the
    /// contract. Learned when a feed's instance starts under that configuration, so every
    /// oracle orders by the same secret even where each enclave keeps a shared secret of its
    /// own (a DON across enclaves: only node 1's, dealt on the contract, is common).
    order_keys: Arc<Mutex<HashMap<ConfigDigest, [u8; 16]>>>,
    stages: Vec<u8>,
    delta_stage: Duration,
    n: usize,
}

impl Schedule {
    pub fn new(stages: Vec<u8>, delta_stage: Duration, n: usize) -> Self {
        Self {
            order_keys: Arc::default(),
            stages,
            delta_stage,
            n,
        }
    }

    /// Reports made under `digest` are ordered by `shared_secret` (the one its configuration
    /// dealt).
    pub fn learn(&self, digest: ConfigDigest, shared_secret: &[u8; 16]) {
        self.order_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, transmission_order_key(shared_secret));
    }

    /// This oracle's slot for the report of (`digest`, `er`); `None` beyond the schedule, or
    /// for a configuration whose shared secret was never learned.
    pub fn slot(&self, digest: ConfigDigest, er: EpochRound, oracle: u8) -> Option<Slot> {
        let order_key = *self
            .order_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)?;
        let pi = permutation(self.n, &round_transmission_key(&order_key, digest, er)).ok()?;
        slot(*pi.get(usize::from(oracle))?, &self.stages)
    }

    /// `None`: this oracle is beyond the schedule and never sends this report.
    pub fn delay(&self, digest: ConfigDigest, er: EpochRound, oracle: u8) -> Option<Duration> {
        Some(delay_of(self.slot(digest, er, oracle)?, self.delta_stage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ocr1::permutation::transmission_delay_stage;
    use crate::node::ocr1::types::OracleId;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn positions_map_to_stages_and_places_within_them() {
        let s = [1, 2, 2, 2];
        let table = [
            (0, Some((0, 0, 1))),
            (1, Some((1, 0, 2))),
            (2, Some((1, 1, 2))),
            (3, Some((2, 0, 2))),
            (4, Some((2, 1, 2))),
            (6, Some((3, 1, 2))),
            (7, None),
        ];
        for (position, expected) in table {
            let expected = expected.map(|(stage, index, size)| Slot { stage, index, size });
            assert_eq!(slot(position, &s), expected, "position {position}");
        }
        assert_eq!(slot(0, &[0, 3]).map(|s| (s.stage, s.index)), Some((1, 0)));
        assert_eq!(slot(0, &[]), None);
    }

    #[test]
    fn oracles_of_one_stage_are_staggered_within_its_first_half() {
        let d = MS(60_000);
        let at = |stage, index, size| delay_of(Slot { stage, index, size }, d);
        let table = [
            ((0, 0, 1), MS(0)),
            ((1, 0, 2), MS(60_000)),
            ((1, 1, 2), MS(75_000)),
            ((2, 0, 2), MS(120_000)),
            ((2, 1, 2), MS(135_000)),
            ((1, 0, 3), MS(60_000)),
            ((1, 1, 3), MS(70_000)),
            ((1, 2, 3), MS(80_000)),
            ((0, 30, 31), MS(29_032)),
        ];
        for ((stage, index, size), expected) in table {
            let got = at(stage, index, size);
            // Duration division truncates at the nanosecond; compare at the millisecond.
            assert_eq!(
                got.as_millis(),
                expected.as_millis(),
                "stage {stage} index {index}/{size}"
            );
        }
        // The last of a stage still goes before the first of the next one.
        for size in 1..=31 {
            assert!(at(1, size - 1, size) < at(2, 0, 2), "size {size}");
        }
        assert_eq!(
            delay_of(
                Slot {
                    stage: 1,
                    index: 1,
                    size: 2
                },
                MS(1000)
            ),
            MS(1250)
        );
    }

    #[test]
    fn stages_are_libocrs_and_each_round_has_one_first_transmitter() {
        let secret = [3; 16];
        let schedule = Schedule::new(vec![1, 2, 2, 2], MS(60_000), 4);
        schedule.learn(ConfigDigest([9; 16]), &secret);
        let key = transmission_order_key(&secret);
        let mut firsts = std::collections::HashSet::new();
        for round in 1..=20u8 {
            let er = EpochRound { epoch: 1, round };
            let digest = ConfigDigest([9; 16]);
            let slots: Vec<Slot> = (0..4)
                .map(|o| schedule.slot(digest, er, o).expect("in schedule"))
                .collect();
            for (o, s) in slots.iter().enumerate() {
                let libocr =
                    transmission_delay_stage(&key, digest, er, 4, OracleId(o as u8), &[1, 2, 2, 2]);
                assert_eq!(libocr, Ok(Some(s.stage)), "round {round} oracle {o}");
            }
            let delays: Vec<Duration> = (0..4)
                .map(|o| schedule.delay(digest, er, o).expect("in schedule"))
                .collect();
            assert_eq!(delays.iter().filter(|d| d.is_zero()).count(), 1);
            let mut sorted = delays.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 4, "no two oracles send at once: {delays:?}");
            firsts.insert(delays.iter().position(|d| d.is_zero()));
        }
        assert!(
            firsts.len() > 1,
            "the first transmitter changes from round to round"
        );
        let short = Schedule::new(vec![1], MS(60_000), 4);
        short.learn(ConfigDigest([9; 16]), &secret);
        let never = (0..4)
            .filter(|&o| {
                short
                    .delay(ConfigDigest([9; 16]), EpochRound { epoch: 1, round: 1 }, o)
                    .is_none()
            })
            .count();
        assert_eq!(never, 3, "with s = [1] only one oracle ever transmits");
    }

    #[test]
    fn each_configuration_is_ordered_by_the_secret_it_dealt_and_an_unknown_one_not_at_all() {
        let schedule = Schedule::new(vec![1, 1, 1, 1], MS(1000), 4);
        let (a, b) = (ConfigDigest([1; 16]), ConfigDigest([2; 16]));
        let er = EpochRound { epoch: 1, round: 1 };
        assert_eq!(schedule.slot(a, er, 0), None, "nothing learned yet");
        // A clone (the transmitter's) sees what the original learns (the feed starter's).
        let transmitter = schedule.clone();
        schedule.learn(a, &[3; 16]);
        schedule.learn(b, &[4; 16]);
        let order = |digest| -> Vec<usize> {
            (0..4)
                .map(|o| transmitter.slot(digest, er, o).expect("learned").stage)
                .collect()
        };
        let libocr = |secret: &[u8; 16], digest| -> Vec<usize> {
            let key = transmission_order_key(secret);
            (0..4)
                .map(|o| {
                    transmission_delay_stage(&key, digest, er, 4, OracleId(o), &[1, 1, 1, 1])
                        .expect("stage")
                        .expect("scheduled")
                })
                .collect()
        };
        assert_eq!(order(a), libocr(&[3; 16], a));
        assert_eq!(order(b), libocr(&[4; 16], b));
    }
}
