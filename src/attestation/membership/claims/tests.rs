use super::*;

const HOLD: u64 = 60;

/// Answers (time, boot id) in order, and whether each one counts as claimed twice.
fn run(answers: &[(u64, &str)]) -> Vec<bool> {
    let mut claims = Claims::default();
    answers
        .iter()
        .map(|(at, boot)| matches!(claims.record(boot, *at, HOLD), Claim::Twice { .. }))
        .collect()
}

#[test]
fn a_boot_that_returns_after_another_means_two_claimants_until_the_hold_runs_out() {
    /// (case, answers, claimed twice after each)
    type Case<'a> = (&'a str, Vec<(u64, &'a str)>, Vec<bool>);
    let cases: Vec<Case> = vec![
        (
            "one boot, checked again and again",
            vec![(0, "a"), (3, "a"), (6, "a")],
            vec![false; 3],
        ),
        (
            "restarts: each boot new",
            vec![(0, "a"), (3, "b"), (6, "c"), (9, "c")],
            vec![false; 4],
        ),
        (
            "two enclaves answering in turn",
            vec![(0, "a"), (3, "b"), (6, "a"), (9, "b"), (12, "b")],
            vec![false, false, true, true, true],
        ),
        (
            "the second one gone: claimed twice until the hold after the last return",
            vec![
                (0, "a"),
                (3, "b"),
                (6, "a"),
                (30, "a"),
                (65, "a"),
                (66, "a"),
                (70, "a"),
            ],
            vec![false, false, true, true, true, false, false],
        ),
        (
            "a boot back after it was forgotten is a new one",
            vec![(0, "a"), (3, "b"), (100, "a")],
            vec![false, false, false],
        ),
    ];
    for (case, answers, expected) in cases {
        assert_eq!(run(&answers), expected, "{case}");
    }
}

#[test]
fn the_claimants_are_named_and_memory_is_bounded() {
    let mut claims = Claims::default();
    claims.record("a", 0, HOLD);
    claims.record("b", 1, HOLD);
    assert_eq!(
        claims.record("a", 2, HOLD),
        Claim::Twice {
            boots: ("a".into(), "b".into())
        }
    );
    assert_eq!(
        claims.record("a", 3, HOLD),
        Claim::Twice {
            boots: ("a".into(), "b".into())
        }
    );
    let mut many = Claims::default();
    for i in 0..100u64 {
        many.record(&format!("boot-{i}"), i, 1000);
    }
    assert_eq!(many.seen.len(), REMEMBERED);
}
