//! Which new connection gets a slot when slots are limited. One policy for every listener that
//! must not let unauthenticated or idle connections take the room real clients need: the P2P
//! listener (TLS handshakes in progress) and the HTTP servers (open connections).
//!
//! - A newcomer from a source that already holds `per_source` slots is refused. Loopback sources
//!   are exempt: in a single-enclave DON every peer connects from 127.0.0.1, so a cap per address
//!   would only hurt the real peers there.
//! - With a free slot the newcomer is admitted.
//! - When every slot is taken, the holder that has been evictable for longest (a handshake still
//!   in progress, an HTTP connection without a request in flight) is closed for the newcomer,
//!   provided it has had at least `evict_after`. So an attacker holding every slot only ever
//!   delays a real client until the next accept, and each connection still gets several seconds,
//!   far more than a real handshake or request needs; only a flood faster than
//!   `capacity / evict_after` connections per second can refuse a newcomer.
//!
//! [`decide`] is the decision as a plain function; [`Slots`] keeps the table and applies it,
//! either replacing the victim at once (P2P: the listener never waits) or waiting until the
//! victim has closed (HTTP: open sockets never exceed the cap), see [`OnFull`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// The limits of one slot table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    pub capacity: usize,
    /// Slots one source (an IPv4 address, an IPv6 /64) may hold; loopback is exempt. `None`: no
    /// cap per source.
    pub per_source: Option<usize>,
    /// A holder evictable for less than this is never closed for a newcomer.
    pub evict_after: Duration,
}

/// What to do with a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Admit it after closing this holder (the one evictable for longest).
    Evict(u64),
    /// Its source already holds `per_source` slots.
    SourceLimit,
    /// Every slot is taken and no holder is evictable long enough. `retry_at`: when the oldest
    /// evictable holder will be (nothing evictable: `None`, wait for a slot to be released).
    Full {
        retry_at: Option<Instant>,
    },
}

/// The decision for a newcomer. `from_source`: slots its source holds (0 for an exempt source);
/// `oldest_evictable`: the holder evictable for longest and since when.
pub fn decide(
    limits: &SlotLimits,
    now: Instant,
    occupied: usize,
    from_source: usize,
    oldest_evictable: Option<(u64, Instant)>,
) -> Admission {
    if limits.per_source.is_some_and(|cap| from_source >= cap) {
        return Admission::SourceLimit;
    }
    if occupied < limits.capacity {
        return Admission::Admit;
    }
    match oldest_evictable {
        Some((id, since)) if now.saturating_duration_since(since) >= limits.evict_after => {
            Admission::Evict(id)
        }
        Some((_, since)) => Admission::Full {
            retry_at: Some(since + limits.evict_after),
        },
        None => Admission::Full { retry_at: None },
    }
}

/// Where a connection comes from, for the cap per source: an IPv4 address, or an IPv6 /64 (one
/// host usually has a whole /64). `None` for loopback, which is exempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

pub fn source_key(ip: IpAddr) -> Option<SourceKey> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    if ip.is_loopback() {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
        IpAddr::V6(v6) => {
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&v6.octets()[..8]);
            SourceKey::V6(prefix)
        }
    })
}

/// What a slot holds, as far as eviction is concerned.
pub trait Holder: Send + Sync + 'static {
    /// Since when this holder may be closed for a newcomer; `None` while it may not (an HTTP
    /// connection serving a request).
    fn evictable_since(&self) -> Option<Instant>;
}

/// A holder that is evictable from the moment it is admitted (a handshake in progress).
pub struct AdmittedAt(pub Instant);

impl Holder for AdmittedAt {
    fn evictable_since(&self) -> Option<Instant> {
        Some(self.0)
    }
}

/// Why a newcomer was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    SourceLimit,
    Full {
        retry_at: Option<Instant>,
    },
    /// [`OnFull::EvictAndWait`]: a holder was told to close; try again once it has.
    Evicting,
}

/// What eviction does for a newcomer when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// The victim leaves the table at once and the newcomer takes its slot (its socket closes a
    /// moment later, when its task sees the eviction): the caller never waits.
    Replace,
    /// The victim is told to close and keeps its slot until it has; the newcomer waits for that
    /// release. Slots then bound the sockets exactly.
    EvictAndWait,
}

/// A table of slots applying [`decide`]. Holders are told to close through their [`Slot`].
pub struct Slots<H: Holder> {
    limits: SlotLimits,
    table: Mutex<Table<H>>,
    released: Notify,
}

struct Table<H> {
    next_id: u64,
    entries: HashMap<u64, Entry<H>>,
    per_source: HashMap<SourceKey, usize>,
}

struct Entry<H> {
    source: Option<SourceKey>,
    holder: Arc<H>,
    evict: CancellationToken,
}

/// A newcomer's slot: released when dropped.
pub struct Slot<H: Holder> {
    slots: Arc<Slots<H>>,
    id: u64,
    holder: Arc<H>,
    evict: CancellationToken,
}

/// A newcomer let in.
pub struct Admitted<H: Holder> {
    pub slot: Slot<H>,
    /// Another holder was closed to make room for it.
    pub evicted: bool,
}

impl<H: Holder> Slots<H> {
    pub fn new(limits: SlotLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            table: Mutex::new(Table {
                next_id: 1,
                entries: HashMap::new(),
                per_source: HashMap::new(),
            }),
            released: Notify::new(),
        })
    }

    pub fn limits(&self) -> SlotLimits {
        self.limits
    }

    /// Slots taken.
    pub fn occupied(&self) -> usize {
        lock(&self.table).entries.len()
    }

    /// Admits a newcomer from `ip` holding `holder`, closing the longest-evictable holder when
    /// every slot is taken (see [`decide`]).
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        holder: H,
        now: Instant,
        on_full: OnFull,
    ) -> Result<Admitted<H>, Refusal> {
        let source = source_key(ip);
        let mut table = lock(&self.table);
        let from_source = source
            .and_then(|s| table.per_source.get(&s).copied())
            .unwrap_or(0);
        let occupied = table.entries.len();
        // A victim on its way out makes the room this newcomer waits for; never a second one.
        if occupied >= self.limits.capacity
            && on_full == OnFull::EvictAndWait
            && table.entries.values().any(|e| e.evict.is_cancelled())
        {
            return Err(Refusal::Evicting);
        }
        // A full table is the only time eviction matters; scanning it then is cheap next to
        // what an accept costs (it is at most `capacity` entries).
        let oldest = if occupied >= self.limits.capacity {
            table
                .entries
                .iter()
                .filter_map(|(id, e)| e.holder.evictable_since().map(|since| (since, *id)))
                .min()
                .map(|(since, id)| (id, since))
        } else {
            None
        };
        let evicted = match decide(&self.limits, now, occupied, from_source, oldest) {
            Admission::Admit => false,
            Admission::Evict(victim) => match on_full {
                OnFull::Replace => {
                    if let Some(entry) = table.remove(victim) {
                        entry.evict.cancel();
                    }
                    true
                }
                OnFull::EvictAndWait => {
                    if let Some(entry) = table.entries.get(&victim) {
                        entry.evict.cancel();
                    }
                    return Err(Refusal::Evicting);
                }
            },
            Admission::SourceLimit => return Err(Refusal::SourceLimit),
            Admission::Full { retry_at } => return Err(Refusal::Full { retry_at }),
        };
        let id = table.next_id;
        table.next_id += 1;
        let holder = Arc::new(holder);
        let evict = CancellationToken::new();
        if let Some(s) = source {
            *table.per_source.entry(s).or_default() += 1;
        }
        table.entries.insert(
            id,
            Entry {
                source,
                holder: holder.clone(),
                evict: evict.clone(),
            },
        );
        Ok(Admitted {
            slot: Slot {
                slots: self.clone(),
                id,
                holder,
                evict,
            },
            evicted,
        })
    }

    /// Completes when a slot is released (at most one waiter is woken per release; a release
    /// with nobody waiting wakes the next one to wait).
    pub async fn released(&self) {
        self.released.notified().await;
    }
}

impl<H> Table<H> {
    fn remove(&mut self, id: u64) -> Option<Entry<H>> {
        let entry = self.entries.remove(&id)?;
        if let Some(source) = entry.source {
            if let Some(count) = self.per_source.get_mut(&source) {
                *count -= 1;
                if *count == 0 {
                    self.per_source.remove(&source);
                }
            }
        }
        Some(entry)
    }
}

impl<H: Holder> Slot<H> {
    pub fn holder(&self) -> &Arc<H> {
        &self.holder
    }

    /// Completes when the holder was closed for a newcomer.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }

    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
    }
}

impl<H: Holder> Drop for Slot<H> {
    fn drop(&mut self) {
        // An evicted slot already left the table when its newcomer took it.
        lock(&self.slots.table).remove(self.id);
        self.slots.released.notify_one();
    }
}

/// A poisoned lock only means another task panicked mid-update of plain maps; carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const LIMITS: SlotLimits = SlotLimits {
        capacity: 4,
        per_source: Some(2),
        evict_after: Duration::from_secs(2),
    };

    type Case = (usize, usize, Option<(u64, Instant)>, Instant, Admission);

    #[test]
    fn the_decision_for_a_newcomer_follows_the_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (occupied, from its source, oldest evictable since, now) → decision
        let cases: &[Case] = &[
            (0, 0, None, t0, Admission::Admit),
            (3, 1, None, t0, Admission::Admit),
            // Its source is at its cap: refused even with room.
            (1, 2, None, t0, Admission::SourceLimit),
            (4, 2, Some((7, t0)), t0 + s(9), Admission::SourceLimit),
            // Full: the oldest evictable goes once it has had its time...
            (4, 0, Some((7, t0)), t0 + s(2), Admission::Evict(7)),
            (4, 1, Some((9, t0)), t0 + s(30), Admission::Evict(9)),
            // ...not before: retry when it will have.
            (
                4,
                0,
                Some((7, t0)),
                t0 + Duration::from_millis(500),
                Admission::Full {
                    retry_at: Some(t0 + s(2)),
                },
            ),
            // Nothing evictable (every HTTP connection busy): wait for a release.
            (4, 0, None, t0 + s(60), Admission::Full { retry_at: None }),
            // Over capacity (never happens, but a full table is full).
            (5, 0, Some((1, t0)), t0 + s(3), Admission::Evict(1)),
        ];
        for (i, (occupied, from_source, oldest, now, want)) in cases.iter().enumerate() {
            let got = decide(&LIMITS, *now, *occupied, *from_source, *oldest);
            assert_eq!(got, *want, "case {i}");
        }
        // Without a cap per source, the count per source never matters.
        let uncapped = SlotLimits {
            per_source: None,
            ..LIMITS
        };
        assert_eq!(decide(&uncapped, t0, 1, 1_000, None), Admission::Admit);
    }

    #[test]
    fn loopback_is_exempt_and_ipv6_hosts_are_grouped_by_their_slash_64() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().expect("address"));
        assert_eq!(source_key(v4(127, 0, 0, 1)), None);
        assert_eq!(source_key(v4(127, 3, 2, 1)), None);
        assert_eq!(source_key(v6("::1")), None);
        assert_eq!(source_key(v6("::ffff:127.0.0.1")), None);
        assert_eq!(
            source_key(v4(10, 0, 0, 7)),
            Some(SourceKey::V4([10, 0, 0, 7]))
        );
        // An IPv4-mapped address is that IPv4 address.
        assert_eq!(
            source_key(v6("::ffff:10.0.0.7")),
            source_key(v4(10, 0, 0, 7))
        );
        assert_eq!(
            source_key(v6("2001:db8:1:2::1")),
            source_key(v6("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            source_key(v6("2001:db8:1:2::1")),
            source_key(v6("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest_holder_once_it_had_its_time_and_counts_sources_once() {
        let slots = Slots::new(LIMITS);
        let remote = |d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d));
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let admit = |ip, since, now| slots.admit(ip, AdmittedAt(since), now, OnFull::Replace);

        let a = admit(remote(1), at(0), at(0)).expect("a");
        let _b = admit(remote(1), at(10), at(10)).expect("b");
        assert_eq!(
            admit(remote(1), at(20), at(20)).err(),
            Some(Refusal::SourceLimit),
            "a third from the same address"
        );
        // Loopback is never capped.
        let c = admit(local, at(30), at(30)).expect("c");
        let d = admit(local, at(40), at(40)).expect("d");
        assert!(!d.evicted);
        assert_eq!(slots.occupied(), 4);
        // Full, and nobody has had 2 s yet: refused, retry when `a` has.
        assert_eq!(
            admit(local, at(1000), at(1000)).err(),
            Some(Refusal::Full {
                retry_at: Some(at(2000))
            })
        );
        // Later, the oldest (`a`) is closed for the newcomer.
        let e = admit(local, at(2500), at(2500)).expect("e");
        assert!(e.evicted);
        assert!(a.slot.is_evicted());
        assert!(!c.slot.is_evicted());
        assert_eq!(slots.occupied(), 4);
        // `a` left the table at once, so its address has room for one more again; dropping its
        // slot later releases nothing twice.
        drop(a);
        assert_eq!(slots.occupied(), 4);
        drop(c);
        assert_eq!(slots.occupied(), 3);
        let f = admit(remote(1), at(2600), at(2600)).expect("room for remote(1) again");
        assert!(!f.evicted);
        assert_eq!(
            admit(remote(1), at(2700), at(2700)).err(),
            Some(Refusal::SourceLimit)
        );
    }

    struct Busy(Option<Instant>);

    impl Holder for Busy {
        fn evictable_since(&self) -> Option<Instant> {
            self.0
        }
    }

    /// Two slots, any number from one source, an idle holder evictable at once.
    fn two_slots_evictable_at_once<H: Holder>() -> Arc<Slots<H>> {
        Slots::new(SlotLimits {
            capacity: 2,
            per_source: None,
            evict_after: Duration::ZERO,
        })
    }

    #[test]
    fn holders_that_are_not_evictable_are_never_closed() {
        let slots = two_slots_evictable_at_once();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let now = Instant::now();
        let admit = |holder, at| slots.admit(ip, holder, at, OnFull::Replace);
        let busy = admit(Busy(None), now).expect("busy");
        let idle = admit(Busy(Some(now + Duration::from_secs(5))), now).expect("idle");
        let newcomer = admit(Busy(None), now + Duration::from_secs(9)).expect("newcomer");
        assert!(newcomer.evicted);
        assert!(idle.slot.is_evicted());
        assert!(!busy.slot.is_evicted());
        assert_eq!(
            admit(Busy(None), now).err(),
            Some(Refusal::Full { retry_at: None })
        );
    }

    #[test]
    fn evict_and_wait_keeps_the_victims_slot_until_it_is_released() {
        let slots = two_slots_evictable_at_once();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let admit = |since, now| slots.admit(ip, AdmittedAt(since), now, OnFull::EvictAndWait);
        let a = admit(at(0), at(0)).expect("a");
        let b = admit(at(1), at(1)).expect("b");
        // Full: the oldest is told to close, the newcomer waits...
        assert_eq!(admit(at(2), at(2)).err(), Some(Refusal::Evicting));
        assert!(a.slot.is_evicted());
        assert_eq!(slots.occupied(), 2);
        // ...and asking again before `a` closed waits for it: one victim per newcomer.
        assert_eq!(admit(at(2), at(2)).err(), Some(Refusal::Evicting));
        assert!(!b.slot.is_evicted());
        drop(a);
        let c = admit(at(3), at(3)).expect("room once a closed");
        assert!(!c.evicted);
        assert_eq!(slots.occupied(), 2);
    }
}
