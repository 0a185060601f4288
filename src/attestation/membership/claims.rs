//! Two enclaves answering for one member. Every boot has an id of its own, so a member's
//! identity document changes its boot id only when the member restarts — and a restart never
//! brings a previous boot back. A boot id seen before, then another, then the first again means
//! two enclaves are answering at the member's identity URL at once (its operator key given to
//! both): the member is refused (`duplicate_claim`) by this enclave while that goes on, and for
//! a hold period after the last such return, whichever of the two answers. A pure record of the
//! boots seen, tested with a table; the checker asks it after each admitted document.

/// Boot ids remembered per member (the two claimants and a few restarts).
const REMEMBERED: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Boot ids seen, least recently seen first, with when each was last seen (Unix seconds).
    seen: Vec<(String, u64)>,
    /// Refused as claimed twice until then.
    held_until: Option<u64>,
}

/// What a member's admitted document tells about its claimants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// One enclave answers (the boot seen last, or a new one: a restart).
    Single,
    /// Two enclaves answer for the member (now, or within the hold period).
    Twice { boots: (String, String) },
}

impl Claims {
    /// Records that the member answered with `boot_id` at `now`. A boot that returns after
    /// another one answered holds the member as claimed twice for `hold` seconds; boots not
    /// seen for `hold` are forgotten.
    pub fn record(&mut self, boot_id: &str, now: u64, hold: u64) -> Claim {
        self.seen.retain(|(_, at)| now.saturating_sub(*at) <= hold);
        let last = self.seen.last().map(|(b, _)| b.clone());
        let returned =
            last.as_deref() != Some(boot_id) && self.seen.iter().any(|(b, _)| b == boot_id);
        if returned {
            self.held_until = Some(now.saturating_add(hold));
        }
        self.seen.retain(|(b, _)| b != boot_id);
        self.seen.push((boot_id.to_owned(), now));
        if self.seen.len() > REMEMBERED {
            self.seen.remove(0);
        }
        match (self.held_until, last) {
            (Some(until), Some(other)) if now < until => {
                let other = if other == boot_id {
                    // The same one again: name the other claimant seen most recently.
                    self.seen
                        .iter()
                        .rev()
                        .find(|(b, _)| b != boot_id)
                        .map(|(b, _)| b.clone())
                        .unwrap_or_default()
                } else {
                    other
                };
                Claim::Twice {
                    boots: (boot_id.to_owned(), other),
                }
            }
            _ => {
                if self.held_until.is_some_and(|until| now >= until) {
                    self.held_until = None;
                }
                Claim::Single
            }
        }
    }
}

#[cfg(test)]
mod tests;
