//! When this oracle transmits a report: stage i of the schedule `s`, chosen by libocr's
//! permutation from the shared secret and the report's (digest, epoch, round), waits i·ΔStage.

use std::time::Duration;

use crate::node::ocr1::leader::transmission_order_key;
use crate::node::ocr1::permutation::transmission_delay_stage;
use crate::node::ocr1::types::{ConfigDigest, EpochRound, OracleId};

#[derive(Debug, Clone)]
pub struct Schedule {
    order_key: [u8; 16],
    stages: Vec<u8>,
    delta_stage: Duration,
    n: usize,
}

impl Schedule {
    pub fn new(shared_secret: &[u8; 16], stages: Vec<u8>, delta_stage: Duration, n: usize) -> Self {
        Self {
            order_key: transmission_order_key(shared_secret),
            stages,
            delta_stage,
            n,
        }
    }

    /// `None`: this oracle is beyond the schedule and never sends this report.
    pub fn delay(&self, digest: ConfigDigest, er: EpochRound, oracle: u8) -> Option<Duration> {
        let stage = transmission_delay_stage(
            &self.order_key,
            digest,
            er,
            self.n,
            OracleId(oracle),
            &self.stages,
        )
        .ok()
        .flatten()?;
        Some(self.delta_stage * u32::try_from(stage).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_has_one_first_transmitter_and_the_others_follow_in_stages() {
        let schedule = Schedule::new(&[3; 16], vec![1, 2, 2, 2], Duration::from_secs(60), 4);
        let mut firsts = std::collections::HashSet::new();
        for round in 1..=20u8 {
            let er = EpochRound { epoch: 1, round };
            let delays: Vec<Duration> = (0..4)
                .map(|o| {
                    schedule
                        .delay(ConfigDigest([9; 16]), er, o)
                        .expect("in schedule")
                })
                .collect();
            assert_eq!(
                delays.iter().filter(|d| d.is_zero()).count(),
                1,
                "{delays:?}"
            );
            assert_eq!(
                delays
                    .iter()
                    .filter(|d| **d == Duration::from_secs(60))
                    .count(),
                2
            );
            assert_eq!(
                delays
                    .iter()
                    .filter(|d| **d == Duration::from_secs(120))
                    .count(),
                1
            );
            firsts.insert(delays.iter().position(|d| d.is_zero()));
        }
        assert!(
            firsts.len() > 1,
            "the first transmitter changes from round to round"
        );
        let short = Schedule::new(&[3; 16], vec![1], Duration::from_secs(60), 4);
        let never = (0..4)
            .filter(|&o| {
                short
                    .delay(ConfigDigest([9; 16]), EpochRound { epoch: 1, round: 1 }, o)
                    .is_none()
            })
            .count();
        assert_eq!(never, 3, "with s = [1] only one oracle ever transmits");
    }
}
