//! What this enclave knows of one other member, and how each check changes it: a pure state
//! machine, so that the decisions (admit, refuse, notice a restart or new keys, keep an
//! admission while the member cannot be reached) are tested with tables; the task in
//! [`super`] fetches and reports.

use crate::attestation::admission::{AdmittedMember, Refusal};

/// One check of a member: its identity document fetched and judged, or not fetched.
#[derive(Debug, Clone)]
pub enum Check {
    Judged(Result<AdmittedMember, Refusal>),
    Unreachable(String),
    /// Its document verified, but two enclaves answer for the member ([`super::claims`]).
    ClaimedTwice(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Standing {
    /// Not checked yet.
    #[default]
    Unknown,
    Admitted {
        identity: AdmittedMember,
        /// Unix seconds of the last check that admitted it.
        verified_at: u64,
        /// Since when its identity cannot be fetched (the admission stands meanwhile: nothing
        /// new was learnt against it).
        unreachable_since: Option<u64>,
    },
    Refused {
        /// [`Refusal::reason`], `wrong_member` or `duplicate_claim`.
        reason: &'static str,
        detail: String,
        since: u64,
    },
    /// Never admitted, and its identity cannot be fetched.
    Unreachable { error: String, since: u64 },
}

impl Standing {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Standing::Admitted { .. })
    }
}

/// What a check changed, for the log and the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Admitted where it was not (first time, or again after a refusal).
    Admitted { boot_id: String },
    /// Still admitted, from a new boot with the same keys.
    Restarted { boot_id: String },
    /// Admitted with other node keys than before (a member that lost its keys, or another
    /// enclave answering for it): the oracles' set changes.
    KeysChanged { boot_id: String },
    /// Refused; `first` when the standing was not already this refusal (log once).
    Refused {
        reason: &'static str,
        detail: String,
        first: bool,
    },
    /// The identity could not be fetched; `first` as for refusals.
    Unreachable { error: String, first: bool },
    /// Reachable again after being unreachable, and still admitted.
    Reachable,
}

/// The standing after `check` of member `expected`, at `now` (Unix seconds), with what changed.
pub fn observe(
    standing: &Standing,
    expected: &str,
    check: Check,
    now: u64,
) -> (Standing, Vec<Event>) {
    match check {
        Check::Judged(Ok(identity)) if identity.member != expected => refuse(
            standing,
            "wrong_member",
            format!(
                "its identity names member {:?}, not {expected:?}",
                crate::logging::Untrusted::bounded(&identity.member, 64).to_string()
            ),
            now,
        ),
        Check::Judged(Ok(identity)) => admit(standing, identity, now),
        Check::Judged(Err(refusal)) => refuse(standing, refusal.reason(), refusal.to_string(), now),
        Check::Unreachable(error) => unreachable(standing, error, now),
        Check::ClaimedTwice(detail) => refuse(standing, "duplicate_claim", detail, now),
    }
}

fn admit(standing: &Standing, identity: AdmittedMember, now: u64) -> (Standing, Vec<Event>) {
    let boot_id = identity.boot_id.clone();
    let mut events = Vec::new();
    match standing {
        Standing::Admitted {
            identity: before,
            unreachable_since,
            ..
        } => {
            if unreachable_since.is_some() {
                events.push(Event::Reachable);
            }
            if before.nodes != identity.nodes {
                events.push(Event::KeysChanged { boot_id });
            } else if before.boot_id != identity.boot_id {
                events.push(Event::Restarted { boot_id });
            }
        }
        _ => events.push(Event::Admitted { boot_id }),
    }
    (
        Standing::Admitted {
            identity,
            verified_at: now,
            unreachable_since: None,
        },
        events,
    )
}

fn refuse(
    standing: &Standing,
    reason: &'static str,
    detail: String,
    now: u64,
) -> (Standing, Vec<Event>) {
    let (first, since) = match standing {
        Standing::Refused {
            reason: before,
            since,
            ..
        } if *before == reason => (false, *since),
        _ => (true, now),
    };
    (
        Standing::Refused {
            reason,
            detail: detail.clone(),
            since,
        },
        vec![Event::Refused {
            reason,
            detail,
            first,
        }],
    )
}

fn unreachable(standing: &Standing, error: String, now: u64) -> (Standing, Vec<Event>) {
    match standing {
        Standing::Admitted {
            identity,
            verified_at,
            unreachable_since,
        } => (
            Standing::Admitted {
                identity: identity.clone(),
                verified_at: *verified_at,
                unreachable_since: Some(unreachable_since.unwrap_or(now)),
            },
            vec![Event::Unreachable {
                error,
                first: unreachable_since.is_none(),
            }],
        ),
        Standing::Unreachable { since, .. } => (
            Standing::Unreachable {
                error: error.clone(),
                since: *since,
            },
            vec![Event::Unreachable {
                error,
                first: false,
            }],
        ),
        // A refusal stands until a check admits: not reaching the member teaches nothing new.
        Standing::Refused { .. } => (
            standing.clone(),
            vec![Event::Unreachable {
                error,
                first: false,
            }],
        ),
        Standing::Unknown => (
            Standing::Unreachable {
                error: error.clone(),
                since: now,
            },
            vec![Event::Unreachable { error, first: true }],
        ),
    }
}

#[cfg(test)]
mod tests;
