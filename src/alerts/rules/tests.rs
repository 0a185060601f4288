use std::time::Duration;

use super::*;
use crate::config::schema::alerts::{AlertsConfig, Severity};
use crate::service::state::{Exit, Status};
use crate::snapshot::testing::{self, answer, dec, report, sample, NOW_MS};
use crate::snapshot::{AttestationView, FeedHealthView, FeedQuote, MemberView, SourceQuote};

fn settings() -> Settings {
    Settings {
        alerts: AlertsConfig {
            pegged: vec![PeggedFeed {
                feed: "USDC-USD".into(),
                peg: dec("1.0"),
                max_deviation_ppb: 10_000_000,
            }],
            ..AlertsConfig::default()
        },
        max_restarts: 3,
        restart_window: Duration::from_secs(300),
        balance_threshold_wei: 20_000_000_000_000,
        don_members: Vec::new(),
    }
}

/// The verdict for one alert and subject after evaluating `s` (with fresh memory).
fn verdict(s: &Snapshot, alert: AlertName, subject: &str) -> Verdict {
    verdict_with(&settings(), &mut Memory::default(), s, alert, subject)
}

fn verdict_with(
    settings: &Settings,
    memory: &mut Memory,
    s: &Snapshot,
    alert: AlertName,
    subject: &str,
) -> Verdict {
    evaluate(settings, memory, s)
        .into_iter()
        .find(|(k, _)| k.alert == alert && k.subject == subject)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no verdict for {alert} {subject}"))
}

fn each_oracle(s: &mut Snapshot, mut change: impl FnMut(&mut crate::snapshot::NodeView)) {
    for node in s
        .nodes
        .iter_mut()
        .filter(|n| n.role == crate::snapshot::Role::Oracle)
    {
        change(node);
    }
}

fn set_feed(s: &mut Snapshot, feed: &str, change: impl Fn(&mut crate::snapshot::NodeFeed)) {
    each_oracle(s, |n| {
        if let Ok(feeds) = &mut n.feeds {
            if let Some(f) = feeds.get_mut(feed) {
                change(f);
            }
        }
    });
}

#[test]
fn a_healthy_enclave_clears_every_alert() {
    let s = sample();
    let verdicts = evaluate(&settings(), &mut Memory::default(), &s);
    let active: Vec<_> = verdicts
        .iter()
        .filter(|(_, v)| !matches!(v, Verdict::Clear))
        .collect();
    // postgres restarted 60 s ago (sample): that one is an event.
    assert_eq!(
        active,
        [&(
            Key::new(AlertName::ServiceRestarted, "postgres"),
            Verdict::Active("postgres restarted 1 time(s) in the last 5 min (1 since boot, last exit: signal 9); now up".into())
        )]
    );
}

type Case = (
    &'static str,
    fn(&mut Snapshot),
    AlertName,
    &'static str,
    Option<&'static str>,
);

#[test]
fn each_rule_fires_on_its_condition_with_a_message_that_says_why() {
    let cases: Vec<Case> = vec![
        (
            "on-chain answer older than heartbeat + grace",
            |s| set_feed(s, "BTC-USD", |f| f.latest = Some(answer("1", 1, 1, 3600 + 301))),
            AlertName::FeedNotReported,
            "BTC-USD",
            Some("BTC-USD: last reported on chain 65 min ago; its heartbeat is 1 h (+5 min grace)"),
        ),
        (
            "on-chain answer within heartbeat + grace",
            |s| set_feed(s, "BTC-USD", |f| f.latest = Some(answer("1", 1, 1, 3600 + 299))),
            AlertName::FeedNotReported,
            "BTC-USD",
            None,
        ),
        (
            "without a chain the DON's report counts",
            |s| set_feed(s, "BTC-USD", |f| {
                f.latest_on_chain = false;
                f.report = Some(report("1", 1, 1, 7200, &["1"]));
            }),
            AlertName::FeedNotReported,
            "BTC-USD",
            Some("BTC-USD: last reported by the DON 2 h ago; its heartbeat is 1 h (+5 min grace)"),
        ),
        (
            "a stale feed on one oracle",
            |s| {
                if let Ok(h) = &mut s.nodes[2].health {
                    h.feeds.insert(
                        "BTC-USD".into(),
                        FeedHealthView {
                            status: "stale".into(),
                            reason: Some("no report for 90 s: price unavailable from every source".into()),
                            last_report_ms_ago: None,
                        },
                    );
                }
            },
            AlertName::FeedStalled,
            "BTC-USD",
            Some("BTC-USD stalled on 1 of 2 oracles (node-3): no report for 90 s: price unavailable from every source"),
        ),
        (
            "no price for a feed",
            |s| {
                if let Some(btc) = without_market_price(s, "BTC-USD") {
                    btc.reason = Some("0 usable source(s), at least 1 required".into());
                    btc.sources = vec![SourceQuote {
                        source: "binance".into(),
                        used: false,
                        reason: Some("unreachable".into()),
                        age_ms: None,
                    }];
                }
            },
            AlertName::SourcesUnavailable,
            "BTC-USD",
            Some("BTC-USD has no price: 0 usable source(s), at least 1 required (binance: unreachable)"),
        ),
        (
            "observations spread wider than the bound",
            |s| btc_report_observing(s, &["99", "100", "101.5"]),
            AlertName::ObservationSpread,
            "BTC-USD",
            Some("BTC-USD: the observations of report 4:1 (node-2) spread 2.5 % (99 … 101.5), more than 2 %"),
        ),
        (
            "observations within the bound",
            |s| btc_report_observing(s, &["99", "100", "101"]),
            AlertName::ObservationSpread,
            "BTC-USD",
            None,
        ),
        (
            "a depeg below the peg, from the market price",
            |s| usdc_market_price(s, "0.9712"),
            AlertName::Depeg,
            "USDC-USD",
            Some("USDC-USD is 0.9712 (market price from the aggregator), 2.88 % below its peg 1 (bound 1 %)"),
        ),
        (
            "a depeg above the peg, from the latest report when the market has no price",
            |s| {
                without_market_price(s, "USDC-USD");
                set_feed(s, "USDC-USD", |f| f.report = Some(report("1.05", 4, 1, 5, &["1.05"])));
            },
            AlertName::Depeg,
            "USDC-USD",
            Some("USDC-USD is 1.05 (latest report), 5 % above its peg 1 (bound 1 %)"),
        ),
        (
            "within the peg's bound",
            |s| usdc_market_price(s, "0.991"),
            AlertName::Depeg,
            "USDC-USD",
            None,
        ),
        (
            "a low balance",
            |s| {
                if let Some(Ok(b)) = &mut s.balances {
                    b[1].wei = 1e13;
                }
            },
            AlertName::BalanceLow,
            "node-3",
            Some("node-3's transmitter 0x00000000000000000000000000000000000000a3 holds 10000000000000 wei, below 20000000000000 wei: fund it or check the faucet"),
        ),
        (
            "attestation failed",
            |s| attested(s, "failed", "the provider is sev_guest, not tdx_guest"),
            AlertName::AttestationFailed,
            "enclave",
            Some("attestation failed: the provider is sev_guest, not tdx_guest"),
        ),
        (
            "attestation unavailable is not an alert unless a quote is required",
            |s| attested(s, "unavailable", "no configfs-tsm"),
            AlertName::AttestationFailed,
            "enclave",
            None,
        ),
    ];
    for (name, change, alert, subject, expected) in cases {
        let mut s = sample();
        change(&mut s);
        let expected = match expected {
            Some(text) => Verdict::Active(text.to_owned()),
            None => Verdict::Clear,
        };
        assert_eq!(verdict(&s, alert, subject), expected, "{name}");
    }
}

/// The aggregator's quote of `feed` made unavailable, with no price.
fn without_market_price<'a>(s: &'a mut Snapshot, feed: &str) -> Option<&'a mut FeedQuote> {
    let quote = s.aggregator.as_mut().ok()?.get_mut(feed).expect("quote");
    quote.status = "unavailable".into();
    quote.price = None;
    Some(quote)
}

/// The aggregator's market price of USDC-USD.
fn usdc_market_price(s: &mut Snapshot, price: &str) {
    if let Ok(q) = &mut s.aggregator {
        q.get_mut("USDC-USD").expect("quote").price = Some(dec(price));
    }
}

/// BTC-USD's latest report (answer 100, epoch 4 round 1) with these observations.
fn btc_report_observing(s: &mut Snapshot, observations: &[&str]) {
    set_feed(s, "BTC-USD", |f| {
        f.report = Some(report("100", 4, 1, 5, observations))
    });
}

/// The attestation the snapshot reports: `status` for `reason`, no quote.
fn attested(s: &mut Snapshot, status: &str, reason: &str) {
    s.attestation = Ok(Some(AttestationView {
        status: status.into(),
        reason: Some(reason.into()),
        quote_sha256: None,
    }));
}

#[test]
fn unreadable_data_is_unknown_never_clear() {
    type Unreadable = (&'static str, fn(&mut Snapshot), AlertName, &'static str);
    let cases: Vec<Unreadable> = vec![
        (
            "no oracle answered",
            |s| {
                each_oracle(s, |n| {
                    n.health = Err("x".into());
                    n.feeds = Err("x".into());
                })
            },
            AlertName::FeedNotReported,
            "BTC-USD",
        ),
        (
            "no oracle's health answered",
            |s| each_oracle(s, |n| n.health = Err("x".into())),
            AlertName::FeedStalled,
            "BTC-USD",
        ),
        (
            "the aggregator did not answer",
            |s| s.aggregator = Err("not answering".into()),
            AlertName::SourcesUnavailable,
            "BTC-USD",
        ),
        (
            "no report yet",
            |s| set_feed(s, "BTC-USD", |f| f.report = None),
            AlertName::ObservationSpread,
            "BTC-USD",
        ),
        (
            "neither a market price nor a report",
            |s| {
                s.aggregator = Err("x".into());
                set_feed(s, "USDC-USD", |f| f.report = None);
            },
            AlertName::Depeg,
            "USDC-USD",
        ),
        (
            "no identity document yet",
            |s| s.attestation = Ok(None),
            AlertName::AttestationFailed,
            "enclave",
        ),
    ];
    for (name, change, alert, subject) in cases {
        let mut s = sample();
        change(&mut s);
        assert_eq!(verdict(&s, alert, subject), Verdict::Unknown, "{name}");
    }
}

#[test]
fn a_feed_never_reported_counts_from_the_alerters_start() {
    let settings = settings();
    let mut memory = Memory::default();
    let mut s = sample();
    set_feed(&mut s, "BTC-USD", |f| {
        f.latest = None;
        f.report = None;
    });
    // One memory across both evaluations: it holds when the alerter started.
    let mut not_reported = |s: &Snapshot| {
        verdict_with(
            &settings,
            &mut memory,
            s,
            AlertName::FeedNotReported,
            "BTC-USD",
        )
    };
    assert_eq!(not_reported(&s), Verdict::Clear);
    testing::at(&mut s, NOW_MS + (3600 + 301) * 1000);
    assert_eq!(
        not_reported(&s),
        Verdict::Active("BTC-USD: no report on chain since the alerter started 65 min ago; its heartbeat is 1 h (+5 min grace)".into())
    );
}

fn with_service(s: &mut Snapshot, name: &str, restarts: u64, last_restart_s: Option<u64>) {
    if let Ok(services) = &mut s.services {
        let v = services
            .iter_mut()
            .find(|v| v.state.name == name)
            .expect("service");
        v.state.restart_count = restarts;
        v.state.last_restart = last_restart_s;
        v.state.last_exit = Some(Exit::Code(1));
        v.state.status = Status::Up;
    }
}

#[test]
fn restarts_are_counted_within_the_window_and_the_limit_is_announced() {
    let settings = settings();
    let mut memory = Memory::default();
    let mut s = sample();
    let secs = |offset: u64| NOW_MS / 1000 + offset;
    // (seconds after NOW, restart count, expected service_restarted, expected restart_limit_near)
    let steps: [(u64, u64, Option<&str>, Option<&str>); 6] = [
        (0, 0, None, None),
        (10, 1, Some("node-3 restarted 1 time(s) in the last 5 min (1 since boot, last exit: code 1); now up"), None),
        (20, 2, Some("node-3 restarted 2 time(s) in the last 5 min (2 since boot, last exit: code 1); now up"),
            Some("node-3: 2 restart(s) within 5 min; 1 more tolerated, then the enclave stops (maxRestarts 3)")),
        (200, 2, Some("node-3 restarted 2 time(s) in the last 5 min (2 since boot, last exit: code 1); now up"),
            Some("node-3: 2 restart(s) within 5 min; 1 more tolerated, then the enclave stops (maxRestarts 3)")),
        // The first restart (at +10) leaves the window at +311.
        (315, 2, Some("node-3 restarted 1 time(s) in the last 5 min (2 since boot, last exit: code 1); now up"), None),
        (325, 2, None, None),
    ];
    for (offset, count, restarted, near) in steps {
        testing::at(&mut s, (secs(offset)) * 1000);
        let last = (count > 0).then(|| secs(if count == 1 { 10 } else { 20 }));
        with_service(&mut s, "node-3", count, last);
        let got_restarted = verdict_with(
            &settings,
            &mut memory,
            &s,
            AlertName::ServiceRestarted,
            "node-3",
        );
        let got_near = verdict_with(
            &settings,
            &mut memory,
            &s,
            AlertName::RestartLimitNear,
            "node-3",
        );
        let expect = |t: Option<&str>| t.map_or(Verdict::Clear, |t| Verdict::Active(t.into()));
        assert_eq!(got_restarted, expect(restarted), "at +{offset} s");
        assert_eq!(got_near, expect(near), "at +{offset} s");
    }
}

#[test]
fn disabled_alerts_are_not_evaluated() {
    let mut settings = settings();
    settings.alerts.disabled.insert(AlertName::ServiceRestarted);
    let verdicts = evaluate(&settings, &mut Memory::default(), &sample());
    assert!(verdicts
        .iter()
        .all(|(k, _)| k.alert != AlertName::ServiceRestarted));
    assert!(verdicts.iter().any(|(k, _)| k.alert == AlertName::Depeg));
}

#[test]
fn spans_read_naturally() {
    for (secs, text) in [
        (42, "42 s"),
        (60, "1 min"),
        (119, "119 s"),
        (200, "200 s"),
        (300, "5 min"),
        (3960, "66 min"),
        (3600, "1 h"),
        (86_400, "24 h"),
        (7_201, "2 h"),
        (200_000, "55 h"),
    ] {
        assert_eq!(span(Duration::from_secs(secs)), text, "{secs}");
    }
}

#[test]
fn a_don_member_not_admitted_is_alerted_with_why_and_an_unknown_standing_changes_nothing() {
    let mut settings = settings();
    settings.don_members = vec!["boot".into(), "b".into(), "c".into(), "d".into()];
    let view = |admitted, unreachable| MemberView {
        admitted,
        unreachable,
    };
    // "boot" is this enclave's own member: the supervisor reports no standing for it.
    let seen: BTreeMap<String, MemberView> = [
        ("b".to_owned(), view(true, false)),
        ("c".to_owned(), view(false, false)),
        ("d".to_owned(), view(false, true)),
    ]
    .into_iter()
    .collect();
    let mut s = sample();
    s.members = Some(Ok(seen));
    let all = evaluate(&settings, &mut Memory::default(), &s);
    let of = |subject: &str| {
        all.iter()
            .find(|(k, _)| k.alert == AlertName::DonMemberNotAdmitted && k.subject == subject)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(of("boot"), None);
    assert_eq!(of("b"), Some(Verdict::Clear));
    assert!(matches!(of("c"), Some(Verdict::Active(t)) if t.contains("refused")));
    assert!(matches!(of("d"), Some(Verdict::Active(t)) if t.contains("cannot be fetched")));
    s.members = Some(Err("HTTP 503".into()));
    assert_eq!(
        verdict_with(
            &settings,
            &mut Memory::default(),
            &s,
            AlertName::DonMemberNotAdmitted,
            "c"
        ),
        Verdict::Unknown
    );
    s.members = None;
    assert!(evaluate(&settings, &mut Memory::default(), &s)
        .iter()
        .all(|(k, _)| k.alert != AlertName::DonMemberNotAdmitted));
    assert_eq!(
        AlertName::DonMemberNotAdmitted.severity(),
        Severity::Critical
    );
}
