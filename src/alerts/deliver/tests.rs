//! Each channel against a local HTTP server that records exactly what arrives and answers as the
//! real service does (Slack `200 ok`, Discord `204`, Telegram `{"ok": true}`), then retries,
//! `Retry-After`, final errors and secrets kept out of logs and errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use super::*;
use crate::alerts::engine::State;
use crate::alerts::rules::Key;
use crate::config::reader::{Fields, Report};
use crate::config::schema::alerts::{read_alerts, AlertName, Severity};

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
    at: Instant,
}

type Reply = (u16, Vec<(&'static str, String)>, String);

/// A server answering with `replies` in order (the last one repeats).
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    async fn start(replies: Vec<Reply>) -> Server {
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let recorder = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let seen = recorder.clone();
                let replies = replies.clone();
                async move {
                    let path = uri.path().to_owned();
                    seen.lock().unwrap().push(Recorded {
                        method,
                        path: path.clone(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        at: Instant::now(),
                    });
                    let (status, headers, body) = {
                        let mut r = replies.lock().unwrap();
                        if r.len() > 1 {
                            r.pop_front().unwrap()
                        } else {
                            r.front().cloned().unwrap()
                        }
                    };
                    // `{path}` in a reply echoes the request's path, as some servers do.
                    let body = body.replace("{path}", &path);
                    let mut response =
                        (StatusCode::from_u16(status).unwrap(), body).into_response();
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { base, seen }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

fn channel_config(v: Value) -> ChannelConfig {
    let mut r = Report::default();
    let doc = json!({ "channels": [v] });
    let f = Fields::of(&mut r, "alerts", &doc).unwrap();
    let config = read_alerts(&mut r, f);
    assert!(r.is_ok(), "{:?}", r.problems);
    config.channels.into_iter().next().unwrap()
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retries: 3,
        max_retry_after: Duration::from_secs(5),
    }
}

fn channel(v: Value, retry: RetryPolicy) -> Channel {
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(AlertMetrics::register(&registry).unwrap());
    Channel::new(0, channel_config(v), "oracle-test", retry, metrics).unwrap()
}

/// A Slack channel whose webhook is `path` on `server`, retrying fast.
fn slack(server: &Server, path: &str) -> Channel {
    channel(
        json!({"type": "slack", "webhookUrl": format!("{}{path}", server.base)}),
        fast(),
    )
}

fn notification() -> Notification {
    Notification {
        key: Key::new(AlertName::SourcesUnavailable, "BTC-USD"),
        severity: Severity::Critical,
        state: State::Firing,
        reminder: false,
        summary:
            "BTC-USD has no price: 0 usable source(s), at least 1 required (binance: unreachable)"
                .into(),
        started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ended_at: None,
    }
}

fn ok_text() -> Reply {
    (200, vec![], "ok".into())
}

fn assert_json_post(r: &Recorded, path: &str) {
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, path);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/json",
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn slack_gets_a_json_text_post_on_its_webhook_url() {
    let server = Server::start(vec![ok_text()]).await;
    let c = slack(&server, "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX");
    c.deliver(&notification()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_json_post(&requests[0], "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX");
    assert_eq!(
        requests[0].body,
        json!({"text": message::text(&notification(), "oracle-test")})
    );
}

#[tokio::test]
async fn discord_gets_content_of_at_most_2000_characters_and_answers_204() {
    let server = Server::start(vec![(204, vec![], String::new())]).await;
    let c = channel(
        json!({"type": "discord", "webhookUrl": format!("{}/api/webhooks/123/tokentokentoken", server.base)}),
        fast(),
    );
    let mut n = notification();
    n.summary = "z".repeat(5000);
    c.deliver(&n).await.unwrap();
    let requests = server.requests();
    assert_json_post(&requests[0], "/api/webhooks/123/tokentokentoken");
    let body = requests[0].body.as_object().unwrap();
    assert_eq!(
        body.keys().collect::<Vec<_>>(),
        ["content", "allowed_mentions"]
    );
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let content = body["content"].as_str().unwrap();
    assert_eq!(content.chars().count(), 2000);
    assert!(
        content.starts_with("[FIRING critical] sources_unavailable · BTC-USD · oracle-test\nzzz")
    );
}

#[tokio::test]
async fn telegram_gets_send_message_with_chat_id_and_text_on_the_bot_path() {
    let server = Server::start(vec![(
        200,
        vec![("content-type", "application/json".into())],
        json!({"ok": true, "result": {"message_id": 7}}).to_string(),
    )])
    .await;
    let c = channel(
        json!({"type": "telegram", "botToken": "123456:ABC-def_SECRET", "chatId": -1001234567890_i64,
               "apiUrl": server.base}),
        fast(),
    );
    c.deliver(&notification()).await.unwrap();
    let requests = server.requests();
    assert_json_post(&requests[0], "/bot123456:ABC-def_SECRET/sendMessage");
    assert_eq!(
        requests[0].body,
        json!({"chat_id": -1001234567890_i64, "text": message::text(&notification(), "oracle-test"),
               "disable_web_page_preview": true})
    );
}

#[tokio::test]
async fn telegram_refusing_a_message_is_a_final_error_without_the_token() {
    let server = Server::start(vec![(
        400,
        vec![],
        json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})
            .to_string(),
    )])
    .await;
    let c = channel(
        json!({"type": "telegram", "botToken": "123456:ABC-def_SECRET", "chatId": "@nochat_here", "apiUrl": server.base}),
        fast(),
    );
    let e = c.deliver(&notification()).await.unwrap_err();
    assert!(matches!(e, SendError::Final(_)), "{e:?}");
    assert!(e.to_string().contains("chat not found"), "{e}");
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn the_generic_webhook_gets_the_documented_json_with_its_headers() {
    let server = Server::start(vec![(202, vec![], String::new())]).await;
    let c = channel(
        json!({"type": "webhook", "url": format!("{}/hooks/enclave", server.base),
               "headers": {"Authorization": "Bearer hook-token-1", "X-Team": "oracles"}}),
        fast(),
    );
    let mut n = notification();
    n.state = State::Resolved;
    n.ended_at = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_300));
    c.deliver(&n).await.unwrap();
    let r = &server.requests()[0];
    assert_json_post(r, "/hooks/enclave");
    assert_eq!(
        r.headers.get("authorization").unwrap(),
        "Bearer hook-token-1"
    );
    assert_eq!(r.headers.get("x-team").unwrap(), "oracles");
    assert_eq!(
        r.body,
        json!({
            "version": 1, "status": "resolved", "reminder": false,
            "alert": "sources_unavailable", "subject": "BTC-USD", "severity": "critical",
            "summary": n.summary, "instance": "oracle-test",
            "startsAt": "2023-11-14T22:13:20Z", "endsAt": "2023-11-14T22:18:20Z",
            "text": message::text(&n, "oracle-test"),
        })
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_delivered() {
    let server = Server::start(vec![
        (500, vec![], "oops".into()),
        (503, vec![], "busy".into()),
        ok_text(),
    ])
    .await;
    let c = slack(&server, "/services/a/b/cccccccccccc");
    c.deliver(&notification()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.windows(2).all(|w| w[0].body == w[1].body));
    let retries = c.metrics.retries.with_label_values(&["slack"]).get();
    assert_eq!(retries, 2);
}

#[tokio::test]
async fn retry_after_is_honoured_from_the_header_and_from_discords_and_telegrams_bodies() {
    let cases: Vec<(Value, Reply, Duration)> = vec![
        (
            json!({"type": "slack", "webhookUrl": "BASE/services/a/b/cccccccccccc"}),
            (429, vec![("retry-after", "1".into())], "rate_limited".into()),
            Duration::from_millis(1000),
        ),
        (
            json!({"type": "discord", "webhookUrl": "BASE/api/webhooks/1/tokentokentoken"}),
            (
                429,
                vec![("content-type", "application/json".into())],
                json!({"message": "You are being rate limited.", "retry_after": 0.6, "global": false}).to_string(),
            ),
            Duration::from_millis(600),
        ),
        (
            json!({"type": "telegram", "botToken": "1:abcdef", "chatId": 1, "apiUrl": "BASE"}),
            (
                429,
                vec![],
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                       "parameters": {"retry_after": 1}}).to_string(),
            ),
            Duration::from_millis(1000),
        ),
    ];
    for (config, first, wait) in cases {
        let success: Reply = (204, vec![], String::new());
        let telegram_ok: Reply = (200, vec![], json!({"ok": true}).to_string());
        let second = if config["type"] == "telegram" {
            telegram_ok
        } else {
            success
        };
        let server = Server::start(vec![first, second]).await;
        let text = config.to_string().replace("BASE", &server.base);
        let c = channel(serde_json::from_str(&text).unwrap(), fast());
        c.deliver(&notification()).await.unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{config}");
        let gap = requests[1].at - requests[0].at;
        assert!(
            gap >= wait - Duration::from_millis(50),
            "{config}: retried after {gap:?}, asked {wait:?}"
        );
    }
}

#[tokio::test]
async fn client_errors_are_final_and_persistent_failures_give_up() {
    let server = Server::start(vec![(404, vec![], "no_service".into())]).await;
    let c = slack(&server, "/services/a/b/cccccccccccc");
    let e = c.deliver(&notification()).await.unwrap_err();
    assert_eq!(e, SendError::Final("HTTP 404: no_service".into()));
    assert_eq!(server.requests().len(), 1);

    let server = Server::start(vec![(500, vec![], "down".into())]).await;
    let c = channel(
        json!({"type": "webhook", "url": format!("{}/x", server.base)}),
        fast(),
    );
    let e = c.deliver(&notification()).await.unwrap_err();
    assert!(matches!(e, SendError::Retryable { .. }), "{e:?}");
    assert_eq!(server.requests().len(), 1 + fast().max_retries);
}

/// Collects everything logged while it is the default subscriber (this thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn webhook_urls_and_tokens_never_reach_logs_errors_or_metrics() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Servers that echo what they were sent, the secret path included, then fail.
    let echo = Server::start(vec![
        (503, vec![], "busy: POST {path}".into()),
        (403, vec![], "forbidden: {path}".into()),
    ])
    .await;
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(AlertMetrics::register(&registry).unwrap());
    let configs = [
        json!({"type": "slack", "webhookUrl": format!("{}/services/T0/B0/slack-secret-token-1", echo.base)}),
        json!({"type": "telegram", "botToken": "42:telegram-secret-2", "chatId": 5, "apiUrl": echo.base}),
        // Nothing listens on port 9: a connection error.
        json!({"type": "discord", "webhookUrl": "http://127.0.0.1:9/api/webhooks/1/discord-secret-3"}),
        json!({"type": "webhook", "url": "http://127.0.0.1:9/hook?key=webhook-secret-4",
               "headers": {"Authorization": "Bearer header-secret-5"}}),
    ];
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut errors = String::new();
    for (i, config) in configs.into_iter().enumerate() {
        let c = Channel::new(
            i,
            channel_config(config.clone()),
            "e",
            fast(),
            metrics.clone(),
        )
        .unwrap();
        if let Err(e) = c.deliver(&notification()).await {
            errors.push_str(&format!("{e}\n{e:?}\n"));
        }
        let queue = spawn(
            Channel::new(i, channel_config(config), "e", fast(), metrics.clone()).unwrap(),
            &tracker,
            stop.clone(),
        );
        queue.send(notification()).await.unwrap();
    }
    tracker.close();
    // Each channel task finishes its one notification (failed) and waits; then stop them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = || {
        ["slack", "telegram", "discord", "webhook"]
            .into_iter()
            .map(|kind| {
                metrics
                    .notifications
                    .with_label_values(&[kind, "sources_unavailable", "failed"])
                    .get()
            })
            .sum::<u64>()
    };
    while failed() < 4 {
        assert!(
            Instant::now() < deadline,
            "the channel tasks did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    tracker.wait().await;
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let exported = crate::telemetry::encode::text(&registry);
    assert!(logged.contains("alert notification failed"), "{logged}");
    assert!(
        errors.contains("***"),
        "the echoed secret is scrubbed: {errors}"
    );
    for secret in [
        "slack-secret-token-1",
        "telegram-secret-2",
        "discord-secret-3",
        "webhook-secret-4",
        "header-secret-5",
        "/services/T0/B0",
    ] {
        assert!(!logged.contains(secret), "{secret} logged:\n{logged}");
        assert!(!errors.contains(secret), "{secret} in an error:\n{errors}");
        assert!(!exported.contains(secret), "{secret} in the metrics");
    }
}
