//! The enclave's own alerts with real processes: `enclave init` runs every service of the
//! repository's definitions, `alerts` included, with a JSON webhook and a Slack-format channel
//! pointing at a local receiver. Taking the feed's only price source down fires
//! `sources_unavailable`; bringing it back sends the resolution. The live view shows the feed.

use crate::common;

use std::time::{Duration, Instant};

use common::don::{btc_usd_feed, configure_nodes, free_ranges, heartbeat_every, T};
use common::harness::{free_port, wait_until, Enclave};
use common::has_line;
use common::live_view::LiveView;
use common::price_server::PriceServer;
use common::receivers::wait_for;
use common::webhook_receiver::{Received, WebhookReceiver};
use enclave::service::state::Status;
use serde_json::{json, Value};

const SLACK_TOKEN: &str = "integration-slack-secret-0123456789";

fn notification<'a>(received: &'a [Received], status: &str) -> Option<&'a Value> {
    received
        .iter()
        .filter(|r| r.path == "/hooks/enclave")
        .map(|r| &r.body)
        .find(|b| {
            b["alert"] == "sources_unavailable"
                && b["subject"] == "BTC-USD"
                && b["status"] == status
        })
}

/// Two plain frames of `enclave status --watch` (its stdout is a pipe).
fn live_view(e: &Enclave) -> String {
    let view = LiveView::start(&e.root);
    wait_until(
        Duration::from_secs(30),
        "two frames of the live view",
        || view.frames() >= 2,
    );
    view.text()
}

#[test]
fn a_price_source_going_down_fires_an_alert_to_the_webhook_and_its_return_resolves_it() {
    let prices = PriceServer::start();
    prices.set("BTCUSDT", "67123.45");
    let receiver = WebhookReceiver::start();
    let mut e = Enclave::new();
    e.use_repo_services();
    let [api_base, p2p_base] = free_ranges(5);
    let aggregator = free_port();
    let alerts_port = free_port();
    let base_url = prices.base.clone();
    let hook = format!("{}/hooks/enclave", receiver.base);
    let slack = format!("{}/services/T000/B000/{SLACK_TOKEN}", receiver.base);
    e.configure(|s| {
        configure_nodes(s, free_port(), api_base, p2p_base);
        s["ports"]["alerts"] = json!(alerts_port);
        s["priceAggregatorConfig"] = json!({
            "port": aggregator,
            "sources": {"binance": {"baseUrl": base_url, "rps": null, "ttl": 1000}},
            "refetch": {"failedPairsRetry": {"retryDelay": 1000}},
        });
        s["feeds"] = btc_usd_feed();
        // Node 2's first report is awaited: a heartbeat soon after, should it miss the first.
        heartbeat_every(s, 10_000);
        s["alerts"] = json!({
            "channels": [
                {"type": "webhook", "url": hook},
                {"type": "slack", "webhookUrl": slack},
            ],
            "intervalMs": 1000,
            "forMs": 2000,
        });
    });
    e.start(&[]);
    e.wait_status("alerts", Status::Up, T);
    // With the enclave's logs on a timeout: this wait has failed on a busy machine, once.
    let deadline = Instant::now() + T;
    while Enclave::http_get(api_base + 2, "/v1/feeds/BTC-USD/latest")
        .is_none_or(|(code, _)| code != 200)
    {
        assert!(
            Instant::now() < deadline,
            "no finalized report on node 2 within {T:?}\n{}",
            e.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The live view shows the feed's answer and its source.
    let view = live_view(&e);
    let frame = view.split("\n\n\n").nth(1).unwrap_or(&view);
    let btc = frame
        .lines()
        .find(|l| l.starts_with("BTC-USD"))
        .unwrap_or_else(|| panic!("no BTC-USD row:\n{frame}"));
    assert!(btc.contains("67123.45"), "{btc}");
    assert!(btc.contains("no chain"), "{btc}");
    assert!(btc.contains("binance up"), "{btc}");
    assert!(has_line(frame, "alerts", &[" up "]), "{frame}");
    assert!(
        notification(&receiver.received(), "firing").is_none(),
        "nothing fires while the source is up: {:?}",
        receiver.received()
    );

    prices.set_down(true);
    let firing = wait_for(T, "sources_unavailable firing at the webhook", || {
        notification(&receiver.received(), "firing").cloned()
    });
    assert_eq!(firing["version"], 1);
    assert_eq!(firing["severity"], "critical");
    assert_eq!(firing["instance"], "enclave-local");
    assert_eq!(firing["endsAt"], Value::Null);
    let summary = firing["summary"].as_str().expect("summary");
    assert!(summary.starts_with("BTC-USD has no price: "), "{summary}");
    assert!(summary.contains("binance: "), "{summary}");

    prices.set_down(false);
    let resolved = wait_for(T, "sources_unavailable resolved at the webhook", || {
        notification(&receiver.received(), "resolved").cloned()
    });
    assert_eq!(resolved["startsAt"], firing["startsAt"]);
    assert!(resolved["endsAt"].is_string(), "{resolved}");

    // The Slack-format channel got the same two, as {"text": …}. Each channel has its own
    // queue and task: the Slack one may come a moment after the webhook's.
    let slack_texts = |received: &[Received]| -> Vec<String> {
        received
            .iter()
            .filter(|r| r.path.starts_with("/services/"))
            .filter_map(|r| r.body["text"].as_str())
            .filter(|t| t.contains("sources_unavailable · BTC-USD"))
            .map(str::to_owned)
            .collect()
    };
    wait_until(T, "the resolution at the Slack-format channel", || {
        slack_texts(&receiver.received())
            .iter()
            .any(|t| t.starts_with("[RESOLVED]"))
    });
    let received = receiver.received();
    let slack = slack_texts(&received);
    assert!(
        slack.iter().any(|t| t.starts_with("[FIRING critical]")),
        "{slack:?}"
    );
    assert!(received
        .iter()
        .all(|r| r.content_type.as_deref() == Some("application/json")));
    // Each state was told once.
    let told = |status: &str| {
        received
            .iter()
            .filter(|r| r.path == "/hooks/enclave")
            .filter(|r| r.body["alert"] == "sources_unavailable" && r.body["status"] == status)
            .count()
    };
    assert_eq!((told("firing"), told("resolved")), (1, 1), "{received:?}");

    // Counted once the receiver has answered, so a moment after it saw the request.
    let sent = "enclave_alerts_notifications_total{alert=\"sources_unavailable\",channel=\"webhook\",result=\"sent\"} 2";
    let mut metrics = String::new();
    wait_until(T, "both notifications counted as sent", || {
        metrics = Enclave::http_get(alerts_port, "/metrics")
            .filter(|(code, _)| *code == 200)
            .map(|(_, body)| body)
            .unwrap_or_default();
        metrics.contains(sent)
    });

    e.stop_cleanly(T);
    let logs = e.logs();
    assert!(
        logs.contains("[alerts]"),
        "the alerter logs through the supervisor"
    );
    assert!(logs.contains("alert firing"), "{logs}");
    assert!(
        !logs.contains(SLACK_TOKEN),
        "the Slack webhook's token reached the logs"
    );
    assert!(
        !logs.contains("/services/T000/B000"),
        "the Slack webhook's path reached the logs"
    );
}
