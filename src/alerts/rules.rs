//! The alert rules: a pure function of (what the rules remember, a snapshot) → a verdict per
//! alert and subject. A rule whose data could not be read says `Unknown`, which changes nothing.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::config::schema::alerts::{AlertName, AlertsConfig, PeggedFeed};
use crate::config::Config;
use crate::snapshot::Snapshot;

/// One alert about one thing: a feed, a service, a node, or the enclave.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub alert: AlertName,
    /// A configured feed name, a service name from the supervisor, `node-<i>` or `enclave`: all
    /// bounded by the configuration.
    pub subject: String,
}

impl Key {
    pub fn new(alert: AlertName, subject: impl Into<String>) -> Self {
        Self {
            alert,
            subject: subject.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.alert, self.subject)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The condition holds; the text says what is wrong.
    Active(String),
    Clear,
    /// The data could not be read.
    Unknown,
}

/// The settings the rules use, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub alerts: AlertsConfig,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub balance_threshold_wei: u128,
    /// A DON across enclaves: every member's name (this enclave's own has no standing).
    pub don_members: Vec<String>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let balance_threshold_wei = config
            .alerts
            .balance_threshold_wei
            .or(config.faucet.as_ref().map(|f| f.min_wei))
            .unwrap_or(crate::config::defaults::alerts::BALANCE_THRESHOLD_WEI);
        Self {
            alerts: config.alerts.clone(),
            max_restarts: config.restart.max_restarts,
            restart_window: config.restart.window,
            balance_threshold_wei,
            don_members: config
                .don
                .iter()
                .flat_map(|d| d.members.iter().map(|m| m.name.clone()))
                .collect(),
        }
    }
}

/// What the rules remember between snapshots.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The first snapshot's time (unix ms): "no report since" starts there.
    started_ms: Option<u64>,
    /// Per service: its restart count last seen, and when its recent restarts happened.
    restarts: BTreeMap<String, (u64, VecDeque<u64>)>,
}

pub fn evaluate(settings: &Settings, memory: &mut Memory, s: &Snapshot) -> Vec<(Key, Verdict)> {
    let now = s.unix_ms();
    let started = *memory.started_ms.get_or_insert(now);
    let mut out = Vec::new();
    for feed in &s.feeds {
        out.push(feed_not_reported(
            settings,
            s,
            &feed.name,
            feed.heartbeat,
            started,
        ));
        out.push(feed_stalled(s, &feed.name));
        out.push(sources_unavailable(s, &feed.name));
        out.push(observation_spread(settings, s, &feed.name));
    }
    for pegged in &settings.alerts.pegged {
        out.push(depeg(s, pegged));
    }
    out.extend(restarts(settings, memory, s));
    out.extend(balances(settings, s));
    out.push(attestation(settings, s));
    out.extend(don_members(settings, s));
    out.retain(|(key, _)| !settings.alerts.disabled.contains(&key.alert));
    out
}

/// `26 h`, `5 min`, `42 s`.
pub fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 && s < 48 * 3600 => format!("{} min", s / 60),
        s if s < 600 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// Parts per billion as a percentage: `2.5 %`.
fn percent(ppb: u64) -> String {
    let p = Decimal::from(ppb) / Decimal::from(10_000_000u64);
    format!("{} %", p.round_dp(3).normalize())
}

fn feed_not_reported(
    settings: &Settings,
    s: &Snapshot,
    feed: &str,
    heartbeat: Duration,
    started_ms: u64,
) -> (Key, Verdict) {
    let key = Key::new(AlertName::FeedNotReported, feed);
    let any_answered = s.oracles().any(|n| n.feeds.is_ok());
    if !any_answered {
        return (key, Verdict::Unknown);
    }
    let (last, what) = if s.has_chain(feed) {
        (s.on_chain(feed).map(|a| a.at_ms), "on chain")
    } else {
        (
            s.newest_report(feed).map(|(_, r)| r.answer.at_ms),
            "by the DON",
        )
    };
    let limit = heartbeat + settings.alerts.heartbeat_grace;
    let now = s.unix_ms();
    let (since, text) = match last {
        Some(at) => (
            at,
            format!(
                "{feed}: last reported {what} {} ago",
                span(Duration::from_millis(now.saturating_sub(at)))
            ),
        ),
        None => (
            started_ms,
            format!(
                "{feed}: no report {what} since the alerter started {} ago",
                span(Duration::from_millis(now.saturating_sub(started_ms)))
            ),
        ),
    };
    if Duration::from_millis(now.saturating_sub(since)) > limit {
        let text = format!(
            "{text}; its heartbeat is {} (+{} grace)",
            span(heartbeat),
            span(settings.alerts.heartbeat_grace)
        );
        (key, Verdict::Active(text))
    } else {
        (key, Verdict::Clear)
    }
}

fn feed_stalled(s: &Snapshot, feed: &str) -> (Key, Verdict) {
    let key = Key::new(AlertName::FeedStalled, feed);
    let mut answered = 0;
    let mut stale = Vec::new();
    for node in s.oracles() {
        let Some(h) = node.health.as_ref().ok().and_then(|h| h.feeds.get(feed)) else {
            continue;
        };
        answered += 1;
        if h.status == "stale" {
            stale.push((node.node, h.reason.clone()));
        }
    }
    if answered == 0 {
        return (key, Verdict::Unknown);
    }
    let Some((_, reason)) = stale.first() else {
        return (key, Verdict::Clear);
    };
    let nodes: Vec<String> = stale.iter().map(|(n, _)| format!("node-{n}")).collect();
    let text = format!(
        "{feed} stalled on {} of {answered} oracles ({}): {}",
        stale.len(),
        nodes.join(", "),
        reason.as_deref().unwrap_or("no report")
    );
    (key, Verdict::Active(text))
}

fn sources_unavailable(s: &Snapshot, feed: &str) -> (Key, Verdict) {
    let key = Key::new(AlertName::SourcesUnavailable, feed);
    let Some(quote) = s.aggregator.as_ref().ok().and_then(|a| a.get(feed)) else {
        return (key, Verdict::Unknown);
    };
    if quote.status == "ok" {
        return (key, Verdict::Clear);
    }
    let sources: Vec<String> = quote
        .sources
        .iter()
        .filter(|q| !q.used)
        .map(|q| {
            format!(
                "{}: {}",
                q.source,
                q.reason.as_deref().unwrap_or("no price")
            )
        })
        .collect();
    let mut text = format!(
        "{feed} has no price: {}",
        quote.reason.as_deref().unwrap_or("too few usable sources")
    );
    if !sources.is_empty() {
        text.push_str(&format!(" ({})", sources.join("; ")));
    }
    (key, Verdict::Active(text))
}

fn observation_spread(settings: &Settings, s: &Snapshot, feed: &str) -> (Key, Verdict) {
    let key = Key::new(AlertName::ObservationSpread, feed);
    let Some((node, report)) = s.newest_report(feed) else {
        return (key, Verdict::Unknown);
    };
    let (Some(low), Some(high)) = (report.observations.first(), report.observations.last()) else {
        return (key, Verdict::Unknown);
    };
    let Some(spread) = ppb(*high - *low, report.answer.answer.abs()) else {
        return (key, Verdict::Unknown);
    };
    if spread <= settings.alerts.max_spread_ppb {
        return (key, Verdict::Clear);
    }
    let text = format!(
        "{feed}: the observations of report {}:{} (node-{node}) spread {} ({} … {}), more than {}",
        report.answer.epoch,
        report.answer.round,
        percent(spread),
        low.normalize(),
        high.normalize(),
        percent(settings.alerts.max_spread_ppb)
    );
    (key, Verdict::Active(text))
}

/// `part / whole` in parts per billion; `None` for a zero whole.
fn ppb(part: Decimal, whole: Decimal) -> Option<u64> {
    if whole.is_zero() {
        return None;
    }
    let ratio = part.abs().checked_mul(Decimal::from(1_000_000_000u64))? / whole;
    ratio.round().to_u64()
}

fn depeg(s: &Snapshot, pegged: &PeggedFeed) -> (Key, Verdict) {
    let feed = pegged.feed.as_str();
    let key = Key::new(AlertName::Depeg, feed);
    let market = s
        .aggregator
        .as_ref()
        .ok()
        .and_then(|a| a.get(feed))
        .and_then(|q| q.price);
    let (price, from) = match market {
        Some(p) => (p, "market price from the aggregator"),
        None => match s.newest_report(feed) {
            Some((_, r)) => (r.answer.answer, "latest report"),
            None => return (key, Verdict::Unknown),
        },
    };
    let Some(deviation) = ppb(price - pegged.peg, pegged.peg) else {
        return (key, Verdict::Unknown);
    };
    if deviation <= pegged.max_deviation_ppb {
        return (key, Verdict::Clear);
    }
    let side = if price < pegged.peg { "below" } else { "above" };
    let text = format!(
        "{feed} is {} ({from}), {} {side} its peg {} (bound {})",
        price.normalize(),
        percent(deviation),
        pegged.peg.normalize(),
        percent(pegged.max_deviation_ppb)
    );
    (key, Verdict::Active(text))
}

fn restarts(settings: &Settings, memory: &mut Memory, s: &Snapshot) -> Vec<(Key, Verdict)> {
    let services = match &s.services {
        Ok(services) => services,
        Err(_) => {
            return memory
                .restarts
                .keys()
                .flat_map(|name| {
                    [
                        (
                            Key::new(AlertName::ServiceRestarted, name.clone()),
                            Verdict::Unknown,
                        ),
                        (
                            Key::new(AlertName::RestartLimitNear, name.clone()),
                            Verdict::Unknown,
                        ),
                    ]
                })
                .collect();
        }
    };
    let now = s.unix_ms();
    let window_ms = settings.restart_window.as_millis() as u64;
    let mut out = Vec::new();
    for v in services {
        let st = &v.state;
        let last_restart_ms = st.last_restart.map(|secs| secs.saturating_mul(1000));
        let (count, times) = memory.restarts.entry(st.name.clone()).or_insert_with(|| {
            // First sight: only the last restart is known, and only if it is recent.
            let times = last_restart_ms
                .filter(|at| st.restart_count > 0 && now.saturating_sub(*at) <= window_ms)
                .into_iter()
                .collect();
            (st.restart_count, times)
        });
        if st.restart_count > *count {
            let new = st.restart_count - *count;
            let at = last_restart_ms.unwrap_or(now);
            times.extend(std::iter::repeat_n(at, new as usize));
        }
        // A smaller count means the supervisor restarted (new boot): start over.
        *count = st.restart_count;
        while times
            .front()
            .is_some_and(|at| now.saturating_sub(*at) > window_ms)
        {
            times.pop_front();
        }
        let recent = times.len() as u64;
        let window = span(settings.restart_window);
        let exit = st
            .last_exit
            .map(|e| format!(", last exit: {e}"))
            .unwrap_or_default();
        let restarted = if recent > 0 {
            Verdict::Active(format!(
                "{} restarted {recent} time(s) in the last {window} ({} since boot{exit}); now {}",
                st.name, st.restart_count, st.status
            ))
        } else {
            Verdict::Clear
        };
        out.push((
            Key::new(AlertName::ServiceRestarted, st.name.clone()),
            restarted,
        ));
        let max = u64::from(settings.max_restarts);
        let near_at = max.saturating_sub(1).max(1);
        let near = if recent >= near_at {
            let left = max.saturating_sub(recent);
            Verdict::Active(format!(
                "{}: {recent} restart(s) within {window}; {left} more tolerated, then the enclave stops (maxRestarts {})",
                st.name, settings.max_restarts
            ))
        } else {
            Verdict::Clear
        };
        out.push((Key::new(AlertName::RestartLimitNear, st.name.clone()), near));
    }
    out
}

fn balances(settings: &Settings, s: &Snapshot) -> Vec<(Key, Verdict)> {
    let Some(Ok(balances)) = &s.balances else {
        // Without a chain there are no balances; an unreadable node 1 says nothing.
        return Vec::new();
    };
    let threshold = settings.balance_threshold_wei;
    balances
        .iter()
        .map(|b| {
            let key = Key::new(AlertName::BalanceLow, format!("node-{}", b.node));
            let verdict = if b.wei < threshold as f64 {
                Verdict::Active(format!(
                    "node-{}'s transmitter {} holds {:.0} wei, below {threshold} wei: fund it or check the faucet",
                    b.node, b.address, b.wei
                ))
            } else {
                Verdict::Clear
            };
            (key, verdict)
        })
        .collect()
}

fn attestation(settings: &Settings, s: &Snapshot) -> (Key, Verdict) {
    let key = Key::new(AlertName::AttestationFailed, "enclave");
    let Ok(Some(a)) = &s.attestation else {
        return (key, Verdict::Unknown);
    };
    let reason = a.reason.as_deref().unwrap_or("no reason given");
    let verdict = match a.status.as_str() {
        "failed" => Verdict::Active(format!("attestation failed: {reason}")),
        "unavailable" if settings.alerts.require_quote => Verdict::Active(format!(
            "no TDX quote binds the enclave's identity: {reason}"
        )),
        _ => Verdict::Clear,
    };
    (key, verdict)
}

/// One verdict per other DON member this enclave's supervisor reports on.
fn don_members(settings: &Settings, s: &Snapshot) -> Vec<(Key, Verdict)> {
    let Some(members) = &s.members else {
        return Vec::new();
    };
    settings
        .don_members
        .iter()
        .filter_map(|name| {
            let key = Key::new(AlertName::DonMemberNotAdmitted, name.as_str());
            let verdict = match members {
                Err(_) => Verdict::Unknown,
                // This enclave's own member, or one not checked yet.
                Ok(seen) => match seen.get(name)? {
                    m if m.admitted => Verdict::Clear,
                    m if m.unreachable => Verdict::Active(format!(
                        "DON member {name} is not admitted: its identity cannot be fetched from its identityUrl; its nodes are refused until it is"
                    )),
                    _ => Verdict::Active(format!(
                        "DON member {name} is not admitted: its identity is refused (enclave_don_member_refusals_total and the supervisor's log say why); its nodes are refused until it is"
                    )),
                },
            };
            Some((key, verdict))
        })
        .collect()
}

#[cfg(test)]
mod tests;
