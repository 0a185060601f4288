use std::time::UNIX_EPOCH;

use super::*;

const T0: u64 = 1_700_000_000;

fn config() -> EngineConfig {
    EngineConfig {
        for_duration: Duration::from_secs(30),
        repeat_interval: Some(Duration::from_secs(4 * 3600)),
        max_per_hour: 6,
    }
}

fn key() -> Key {
    Key::new(AlertName::SourcesUnavailable, "BTC-USD")
}

/// An engine that tells at once and never reminds, so that only the limit of `max_per_hour`
/// decides what is told.
fn at_once_without_reminders(max_per_hour: u32) -> Engine {
    Engine::new(EngineConfig {
        for_duration: Duration::ZERO,
        repeat_interval: None,
        max_per_hour,
    })
}

fn active(text: &str) -> Verdict {
    Verdict::Active(text.to_owned())
}

/// What was told at one step: `(state, reminder, summary)` per notification.
type Told = (u64, Vec<(State, bool, String)>);

/// Runs `steps` of (seconds since T0, verdict for `key`) and returns, per step, the
/// notifications as `(state, reminder, summary)`.
fn run(engine: &mut Engine, key: &Key, steps: &[(u64, Verdict)]) -> Vec<Told> {
    steps
        .iter()
        .map(|(secs, verdict)| {
            let out = engine.step(
                Duration::from_secs(*secs),
                UNIX_EPOCH + Duration::from_secs(T0 + secs),
                vec![(key.clone(), verdict.clone())],
            );
            (
                *secs,
                out.into_iter()
                    .map(|n| (n.state, n.reminder, n.summary))
                    .collect(),
            )
        })
        .collect()
}

fn told(steps: &[Told]) -> Vec<(u64, State, bool, String)> {
    steps
        .iter()
        .flat_map(|(s, ns)| ns.iter().map(move |(st, r, t)| (*s, *st, *r, t.clone())))
        .collect()
}

#[test]
fn a_condition_fires_after_for_once_and_resolves_once() {
    let mut e = Engine::new(config());
    let steps = run(
        &mut e,
        &key(),
        &[
            (0, active("down")),
            (10, active("down")),
            (29, active("down")),
            (30, active("down, still")),
            (40, active("down, still")),
            (50, Verdict::Unknown),
            (60, active("down")),
            (70, Verdict::Clear),
            (80, Verdict::Clear),
        ],
    );
    assert_eq!(
        told(&steps),
        [
            (30, State::Firing, false, "down, still".to_owned()),
            (70, State::Resolved, false, "down".to_owned()),
        ]
    );
    assert_eq!(e.firing().count(), 0);
}

#[test]
fn the_firing_notification_carries_when_the_condition_began() {
    let mut e = Engine::new(config());
    let mut out = Vec::new();
    for secs in [0, 10, 30, 45] {
        let verdict = if secs < 45 {
            active("x")
        } else {
            Verdict::Clear
        };
        out.extend(e.step(
            Duration::from_secs(secs),
            UNIX_EPOCH + Duration::from_secs(T0 + secs),
            vec![(key(), verdict)],
        ));
    }
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].started_at, UNIX_EPOCH + Duration::from_secs(T0));
    assert_eq!(out[1].started_at, UNIX_EPOCH + Duration::from_secs(T0));
    assert_eq!(
        out[1].ended_at,
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 45))
    );
    assert_eq!(out[0].severity, Severity::Critical);
}

#[test]
fn a_blip_shorter_than_for_is_never_told() {
    let mut e = Engine::new(config());
    let steps = run(
        &mut e,
        &key(),
        &[
            (0, active("x")),
            (20, active("x")),
            (25, Verdict::Clear),
            (40, active("x")),
        ],
    );
    assert!(told(&steps).is_empty(), "{steps:?}");
}

#[test]
fn events_fire_at_once() {
    let mut e = Engine::new(config());
    let restart = Key::new(AlertName::ServiceRestarted, "node-3");
    let steps = run(
        &mut e,
        &restart,
        &[(0, active("restarted")), (5, Verdict::Clear)],
    );
    assert_eq!(
        told(&steps),
        [
            (0, State::Firing, false, "restarted".to_owned()),
            (5, State::Resolved, false, "restarted".to_owned()),
        ]
    );
}

#[test]
fn a_long_firing_alert_is_repeated_as_a_reminder() {
    let mut e = Engine::new(EngineConfig {
        repeat_interval: Some(Duration::from_secs(100)),
        for_duration: Duration::ZERO,
        ..config()
    });
    let steps = run(
        &mut e,
        &key(),
        &[
            (0, active("a")),
            (50, active("a")),
            (100, active("b")),
            (150, active("b")),
            (200, active("c")),
        ],
    );
    assert_eq!(
        told(&steps),
        [
            (0, State::Firing, false, "a".to_owned()),
            (100, State::Firing, true, "b".to_owned()),
            (200, State::Firing, true, "c".to_owned()),
        ]
    );
}

#[test]
fn a_flapping_alert_is_rate_limited_and_ends_with_its_true_state() {
    // 2 per hour: a burst of 2, then one every 30 min.
    let mut e = at_once_without_reminders(2);
    let mut steps = Vec::new();
    for i in 0..10u64 {
        let verdict = if i % 2 == 0 {
            active("flap")
        } else {
            Verdict::Clear
        };
        steps.push((i * 10, verdict));
    }
    // Then it stays firing; the limiter lets one more through 30 min after the first.
    steps.push((1000, active("flap")));
    let result = run(&mut e, &key(), &steps);
    assert_eq!(
        told(&result),
        [
            (0, State::Firing, false, "flap".to_owned()),
            (10, State::Resolved, false, "flap".to_owned()),
        ],
        "the burst is used by the first firing and resolution; the rest of the flapping \
         coalesces into 'firing', which equals nothing told yet after the resolution"
    );
    // The coalesced firing was waiting; it goes out once the limiter allows (30 min after 0 s).
    let later = run(
        &mut e,
        &key(),
        &[
            (1799, active("flap")),
            (1800, active("flap")),
            (1900, active("flap")),
        ],
    );
    assert_eq!(
        told(&later),
        [(1800, State::Firing, false, "flap".to_owned())]
    );
}

#[test]
fn a_resolution_waiting_for_the_limit_is_dropped_if_the_alert_fires_again() {
    let mut e = at_once_without_reminders(1);
    let steps = run(
        &mut e,
        &key(),
        &[
            (0, active("x")),
            (10, Verdict::Clear),
            (20, active("x")),
            (4000, active("x")),
        ],
    );
    // Firing told at 0; the resolution at 10 waits (limit); firing again at 20 replaces it
    // with a state equal to what was told: nothing more is ever sent.
    assert_eq!(told(&steps), [(0, State::Firing, false, "x".to_owned())]);
}

#[test]
fn a_firing_never_told_is_not_resolved() {
    let mut e = at_once_without_reminders(1);
    let steps = run(
        &mut e,
        &key(),
        &[
            (0, active("x")),
            (3600, Verdict::Clear),
            (3610, active("y")),
            (3620, Verdict::Clear),
            (7300, Verdict::Clear),
        ],
    );
    assert_eq!(
        told(&steps),
        [
            (0, State::Firing, false, "x".to_owned()),
            (3600, State::Resolved, false, "x".to_owned()),
        ]
    );
}

#[test]
fn alerts_are_limited_per_subject_and_a_waiting_resolution_goes_out_when_allowed() {
    let mut e = at_once_without_reminders(1);
    let other = Key::new(AlertName::SourcesUnavailable, "ETH-USD");
    // Use up the key's only token with a first firing and resolution of another incident.
    let mut out = e.step(
        Duration::ZERO,
        UNIX_EPOCH,
        vec![(key(), active("first")), (other.clone(), active("y"))],
    );
    for (secs, verdict) in [
        (1, Verdict::Clear),
        (2, active("second")),
        (3, Verdict::Clear),
    ] {
        out.extend(e.step(
            Duration::from_secs(secs),
            UNIX_EPOCH,
            vec![(key(), verdict)],
        ));
    }
    let shown: Vec<(String, State)> = out
        .iter()
        .map(|n| (n.key.subject.clone(), n.state))
        .collect();
    // Keys are limited independently: ETH-USD's firing is not held back by BTC-USD's.
    assert_eq!(
        shown,
        [
            ("BTC-USD".to_owned(), State::Firing),
            ("ETH-USD".to_owned(), State::Firing),
        ]
    );
    // BTC-USD's resolution (told firing "first") is still waiting; it goes out when allowed.
    let later = e.step(
        Duration::from_secs(3601),
        UNIX_EPOCH,
        vec![(key(), Verdict::Clear)],
    );
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].state, State::Resolved);
}
