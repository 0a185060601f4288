//! What each channel is sent: one text for the chat services (within each one's length limit),
//! and the generic webhook's JSON body.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::engine::{Notification, State};
use super::rules::span;

/// Discord refuses `content` longer than this.
pub const DISCORD_MAX_CHARS: usize = 2000;
/// Telegram's `sendMessage` limit.
pub const TELEGRAM_MAX_CHARS: usize = 4096;
/// Slack truncates longer messages; ours stay well below.
pub const SLACK_MAX_CHARS: usize = 3000;
/// The generic webhook's body version.
pub const WEBHOOK_VERSION: u32 = 1;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Three lines:
/// `[FIRING critical] sources_unavailable · BTC-USD · enclave-1` (or `[RESOLVED]`,
/// `[STILL FIRING critical]`), the summary, and since when / for how long.
pub fn text(n: &Notification, instance: &str) -> String {
    let head = match (n.state, n.reminder) {
        (State::Firing, false) => format!("[FIRING {}]", n.severity.as_str()),
        (State::Firing, true) => format!("[STILL FIRING {}]", n.severity.as_str()),
        (State::Resolved, _) => "[RESOLVED]".to_owned(),
    };
    let when = match n.ended_at {
        Some(end) => format!(
            "resolved at {} after {}",
            rfc3339(end),
            span(end.duration_since(n.started_at).unwrap_or(Duration::ZERO))
        ),
        None => format!("since {}", rfc3339(n.started_at)),
    };
    format!(
        "{head} {} · {} · {instance}\n{}\n{when}",
        n.key.alert, n.key.subject, n.summary
    )
}

/// At most `max` characters, the cut marked with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack's incoming webhooks read `&`, `<` and `>` as markup: they must be escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn slack_body(n: &Notification, instance: &str) -> Value {
    json!({ "text": slack_escape(&truncate(&text(n, instance), SLACK_MAX_CHARS)) })
}

/// Mentions are switched off: a message never pings anyone because of its text.
pub fn discord_body(n: &Notification, instance: &str) -> Value {
    json!({
        "content": truncate(&text(n, instance), DISCORD_MAX_CHARS),
        "allowed_mentions": { "parse": [] },
    })
}

pub fn telegram_body(n: &Notification, instance: &str, chat_id: &str) -> Value {
    // A numeric id goes as a number, as the Bot API documents it; `@channel` as a string.
    let chat: Value = chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(chat_id));
    json!({
        "chat_id": chat,
        "text": truncate(&text(n, instance), TELEGRAM_MAX_CHARS),
        "disable_web_page_preview": true,
    })
}

/// The generic webhook's body (docs/operator/metrics-and-alerts.md, "Channels and what they
/// receive", documents each member).
pub fn webhook_body(n: &Notification, instance: &str) -> Value {
    json!({
        "version": WEBHOOK_VERSION,
        "status": n.state.as_str(),
        "reminder": n.reminder,
        "alert": n.key.alert.as_str(),
        "subject": n.key.subject,
        "severity": n.severity.as_str(),
        "summary": n.summary,
        "instance": instance,
        "startsAt": rfc3339(n.started_at),
        "endsAt": n.ended_at.map(rfc3339),
        "text": text(n, instance),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::Key;
    use crate::config::schema::alerts::{AlertName, Severity};
    use std::time::UNIX_EPOCH;

    fn notification(state: State, reminder: bool) -> Notification {
        Notification {
            key: Key::new(AlertName::SourcesUnavailable, "BTC-USD"),
            severity: Severity::Critical,
            state,
            reminder,
            summary: "BTC-USD has no price: 0 usable source(s), at least 1 required (binance: unreachable)".into(),
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ended_at: (state == State::Resolved)
                .then(|| UNIX_EPOCH + Duration::from_secs(1_700_000_200)),
        }
    }

    #[test]
    fn the_text_says_what_where_and_since_when() {
        assert_eq!(
            text(&notification(State::Firing, false), "oracle-prod"),
            "[FIRING critical] sources_unavailable · BTC-USD · oracle-prod\n\
             BTC-USD has no price: 0 usable source(s), at least 1 required (binance: unreachable)\n\
             since 2023-11-14T22:13:20Z"
        );
        assert_eq!(
            text(&notification(State::Resolved, false), "oracle-prod"),
            "[RESOLVED] sources_unavailable · BTC-USD · oracle-prod\n\
             BTC-USD has no price: 0 usable source(s), at least 1 required (binance: unreachable)\n\
             resolved at 2023-11-14T22:16:40Z after 200 s"
        );
        assert!(
            text(&notification(State::Firing, true), "x").starts_with("[STILL FIRING critical]")
        );
    }

    #[test]
    fn every_body_has_its_documented_shape() {
        let n = notification(State::Firing, false);
        let slack = slack_body(&n, "e");
        assert_eq!(slack.as_object().map(|o| o.len()), Some(1));
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING critical]"));
        let discord = discord_body(&n, "e");
        assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
        let telegram = telegram_body(&n, "e", "-1001234567890");
        assert_eq!(telegram["chat_id"], json!(-1001234567890_i64));
        assert_eq!(
            telegram_body(&n, "e", "@ops_alerts")["chat_id"],
            json!("@ops_alerts")
        );
        let hook = webhook_body(&notification(State::Resolved, false), "e");
        assert_eq!(
            hook,
            json!({
                "version": 1, "status": "resolved", "reminder": false,
                "alert": "sources_unavailable", "subject": "BTC-USD", "severity": "critical",
                "summary": n.summary, "instance": "e",
                "startsAt": "2023-11-14T22:13:20Z", "endsAt": "2023-11-14T22:16:40Z",
                "text": text(&notification(State::Resolved, false), "e"),
            })
        );
    }

    #[test]
    fn long_texts_are_cut_to_each_services_limit_and_slack_markup_is_escaped() {
        let mut n = notification(State::Firing, false);
        n.summary = "x".repeat(10_000) + "<&>";
        let content = discord_body(&n, "e")["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(content.chars().count(), DISCORD_MAX_CHARS);
        assert!(content.ends_with('…'));
        let tg = telegram_body(&n, "e", "1")["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(tg.chars().count(), TELEGRAM_MAX_CHARS);
        n.summary = "a < b & c > d".into();
        let slack = slack_body(&n, "e")["text"].as_str().unwrap().to_owned();
        assert!(slack.contains("a &lt; b &amp; c &gt; d"), "{slack}");
    }
}
