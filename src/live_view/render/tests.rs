use super::*;
use crate::snapshot::testing::{answer, sample};
use crate::snapshot::{FeedHealthView, SourceQuote};

const HEALTHY: &str = "\
enclave at 2023-11-14T22:13:20Z

SERVICE             STATUS    PID   RESTARTS  CPU   MEMORY    LAST-EXIT
postgres-bootstrap  finished  -     0         -     -         -
postgres            up        1008  1         2.5%  20.0 MiB  signal 9
price-aggregator    up        1016  0         2.5%  20.0 MiB  -
node-1              up        1006  0         2.5%  20.0 MiB  -
node-2              up        1006  0         2.5%  20.0 MiB  -
node-3              up        1006  0         2.5%  20.0 MiB  -

FEED      ANSWER    E:R  AGE   ON-CHAIN  MATCH  STATUS  SOURCES
BTC-USD   67123.45  3:2  12 s  67123.45  yes    ok      binance up, kraken up
USDC-USD  1.0001    3:2  12 s  1.0001    yes    ok      coinbase up

NODE    ROLE       READY  PEERS  NOTES
node-1  bootstrap  yes    2/2
node-2  oracle     yes    1/1
node-3  oracle     yes    1/1

EVIDENCE  attestation quoted (quote SHA-256 ab12)";

#[test]
fn a_healthy_enclave_renders_as_aligned_plain_text() {
    assert_eq!(render(&sample(), Style::PLAIN), HEALTHY);
}

#[test]
fn problems_show_where_they_are_with_their_reasons() {
    let mut s = sample();
    s.resources_error = Some("process-metrics: not answering (connection refused)".into());
    if let Ok(services) = &mut s.services {
        for v in services.iter_mut() {
            v.cpu_cores = None;
            v.memory_bytes = None;
        }
        services[2].state.status = Status::Failed;
        services[2].state.pid = None;
    }
    s.nodes[2].health = Err("not answering (connection refused)".into());
    s.nodes[2].feeds = Err("not answering (connection refused)".into());
    if let Ok(h) = &mut s.nodes[1].health {
        h.ready = false;
        h.peers_connected = 0;
        h.reasons = vec!["0 of 1 peers connected, 2 needed for a quorum".into()];
        h.feeds.insert(
            "BTC-USD".into(),
            FeedHealthView {
                status: "stale".into(),
                reason: Some(
                    "no report for 90 s: no price for BTC-USD: price unavailable from every source"
                        .into(),
                ),
                last_report_ms_ago: None,
            },
        );
    }
    // Node 3 does not answer: node 2's reading of the contract is all there is.
    if let Ok(feeds) = &mut s.nodes[1].feeds {
        let usdc = feeds.get_mut("USDC-USD").expect("feed");
        usdc.latest = Some(answer("1", 3, 1, 40));
    }
    if let Ok(quotes) = &mut s.aggregator {
        let btc = quotes.get_mut("BTC-USD").expect("quote");
        btc.status = "unavailable".into();
        btc.price = None;
        btc.sources = vec![
            SourceQuote {
                source: "binance".into(),
                used: false,
                reason: Some("stale: older than the source's TTL".into()),
                age_ms: Some(9000),
            },
            SourceQuote {
                source: "kraken".into(),
                used: false,
                reason: Some("rate_limited".into()),
                age_ms: None,
            },
        ];
    }
    s.attestation = Ok(Some(crate::snapshot::AttestationView {
        status: "failed".into(),
        reason: Some("the provider is not tdx_guest".into()),
        quote_sha256: None,
    }));
    let text = render(&s, Style::PLAIN);
    let expected = "\
enclave at 2023-11-14T22:13:20Z

SERVICE             STATUS    PID   RESTARTS  CPU  MEMORY  LAST-EXIT
postgres-bootstrap  finished  -     0         -    -       -
postgres            up        1008  1         -    -       signal 9
price-aggregator    failed    -     0         -    -       -
node-1              up        1006  0         -    -       -
node-2              up        1006  0         -    -       -
node-3              up        1006  0         -    -       -
  CPU and memory unknown: process-metrics: not answering (connection refused)

FEED      ANSWER    E:R  AGE   ON-CHAIN  MATCH    STATUS     SOURCES
BTC-USD   67123.45  3:2  12 s  67123.45  yes      stale 1/1  binance down (stale), kraken down (rate_limited)
USDC-USD  1.0001    3:2  12 s  1         pending  ok         coinbase up
  BTC-USD on node-2: no report for 90 s: no price for BTC-USD: price unavailable from every source

NODE    ROLE       READY  PEERS  NOTES
node-1  bootstrap  yes    2/2
node-2  oracle     no     0/1    0 of 1 peers connected, 2 needed for a quorum
node-3  oracle     -      -      not answering (connection refused)

EVIDENCE  attestation failed: the provider is not tdx_guest";
    assert_eq!(text, expected, "\n{text}");
}

#[test]
fn a_report_not_yet_on_chain_is_pending_and_without_a_chain_says_so() {
    let mut s = sample();
    for node in &mut s.nodes {
        if let Ok(feeds) = &mut node.feeds {
            if let Some(btc) = feeds.get_mut("BTC-USD") {
                btc.latest = Some(answer("67000", 3, 1, 40));
            }
            if let Some(usdc) = feeds.get_mut("USDC-USD") {
                usdc.latest_on_chain = false;
            }
        }
    }
    let text = render(&s, Style::PLAIN);
    assert!(
        text.contains("BTC-USD   67123.45  3:2  12 s  67000     pending"),
        "{text}"
    );
    assert!(
        text.contains("USDC-USD  1.0001    3:2  12 s  no chain  -"),
        "{text}"
    );
}

#[test]
fn a_source_left_out_as_an_outlier_is_shown_left_out_not_down() {
    let mut s = sample();
    if let Ok(quotes) = &mut s.aggregator {
        let btc = quotes.get_mut("BTC-USD").expect("quote");
        btc.sources.push(SourceQuote {
            source: "kucoin".into(),
            used: false,
            reason: Some("outlier: more than 50000000 ppb from the median".into()),
            age_ms: Some(400),
        });
    }
    let text = render(&s, Style::PLAIN);
    assert!(
        text.contains("binance up, kraken up, kucoin left out (outlier)"),
        "{text}"
    );
}

#[test]
fn colour_marks_state_words_only_and_width_cuts_lines() {
    let colored = render(
        &sample(),
        Style {
            color: true,
            width: None,
        },
    );
    assert!(colored.contains("\x1b[32mup\x1b[0m"), "{colored:?}");
    assert!(colored.contains("\x1b[32mquoted\x1b[0m"), "{colored:?}");
    let stripped = strip_ansi(&colored);
    assert_eq!(stripped, HEALTHY);
    let narrow = render(
        &sample(),
        Style {
            color: false,
            width: Some(20),
        },
    );
    assert!(narrow.lines().all(|l| l.chars().count() <= 20), "{narrow}");
    assert!(narrow.contains("postgres-bootstrap  "[..18].trim_end()));
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
