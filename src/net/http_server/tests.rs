use std::time::Duration;

use axum::routing::get;
use prometheus::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

use super::*;

const DEADLINE: Duration = Duration::from_secs(20);

struct Running {
    addr: SocketAddr,
    registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    done: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    fn metric(&self, name: &str, reason: Option<&str>) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| reason.is_none_or(|r| m.get_label().iter().any(|l| l.value() == r)))
            .map(|m| {
                if m.get_counter().get_value() != 0.0 {
                    m.get_counter().get_value()
                } else {
                    m.get_gauge().get_value()
                }
            })
            .sum()
    }

    async fn stop(mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().map(|s| s.send(()));
        timeout(DEADLINE, self.done)
            .await
            .expect("the server stops")
            .expect("no panic")
            .expect("serve ends cleanly");
        started.elapsed()
    }
}

async fn start(limits: Limits) -> Running {
    let router = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "slow\n"
            }),
        )
        .route("/big", get(|| async { vec![b'x'; 32 << 20] }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let registry = Registry::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = registry.clone();
    let done = tokio::spawn(async move {
        serve(listener, router, limits, &serving, async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        addr,
        registry,
        stop: Some(stop),
        done,
    }
}

/// One request on a fresh connection; the status code.
async fn get_status(addr: SocketAddr, path: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let (status, _) = request(&mut tcp, path, true).await;
    status
}

/// Sends `GET path` and reads one response (its body by Content-Length).
async fn request(tcp: &mut TcpStream, path: &str, close: bool) -> (u16, Vec<u8>) {
    let connection = if close { "close" } else { "keep-alive" };
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = timeout(DEADLINE, tcp.read(&mut byte))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_eq!(
            n,
            1,
            "closed before the response: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("length"))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tcp.read_exact(&mut body).await.expect("body");
    (status, body)
}

/// Waits until the server closes `tcp` (EOF or reset); how long that took.
async fn closed_by_server(tcp: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        match timeout(DEADLINE, tcp.read(&mut sink)).await {
            Err(_) => panic!("still open after {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

fn limits(header_ms: u64, idle_ms: u64, write_ms: u64, cap: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        write_timeout: Duration::from_millis(write_ms),
        max_connections: cap,
    }
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_at_the_header_timeout_while_the_api_answers() {
    let server = start(limits(500, 10_000, 10_000, 64)).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    let mut trickling = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        trickling.push(tcp);
    }
    // Trickle a header byte every 100 ms: always sending, never done.
    let trickler = tokio::spawn(async move {
        let mut closed = 0;
        while closed < trickling.len() {
            closed = 0;
            for tcp in &mut trickling {
                if tcp.write_all(b"X").await.is_err() {
                    closed += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // The API answers meanwhile.
    assert_eq!(get_status(server.addr, "/").await, 200);
    for tcp in &mut silent {
        closed_by_server(tcp).await;
    }
    timeout(DEADLINE, trickler)
        .await
        .expect("every trickling client cut off")
        .expect("no panic");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "cut before the header timeout"
    );
    assert_eq!(
        server.metric(
            "enclave_http_connections_closed_total",
            Some("header_timeout")
        ),
        20.0
    );
    assert_eq!(get_status(server.addr, "/").await, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_the_header_timeout_and_closes_at_the_idle_timeout() {
    let server = start(limits(200, 3_000, 10_000, 64)).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(request(&mut tcp, "/", false).await.0, 200);
    // Idle for several header timeouts: still open, and serves the next request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(request(&mut tcp, "/", false).await.0, 200);
    let after_second = Instant::now();
    closed_by_server(&mut tcp).await;
    assert!(
        after_second.elapsed() >= Duration::from_millis(2_500),
        "closed after {:?}, before the idle timeout",
        after_second.elapsed()
    );
    assert_eq!(
        server.metric(
            "enclave_http_connections_closed_total",
            Some("idle_timeout")
        ),
        1.0
    );
    assert_eq!(
        server.metric(
            "enclave_http_connections_closed_total",
            Some("header_timeout")
        ),
        0.0
    );
    server.stop().await;
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room_for_a_new_client() {
    let server = start(limits(10_000, 10_000, 10_000, 4)).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    wait_for("4 open connections", || {
        server.metric("enclave_http_connections_open", None) == 4.0
    })
    .await;
    // Idle for more than a second: the next clients evict them, oldest first, and are served.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..3 {
        assert_eq!(get_status(server.addr, "/").await, 200);
    }
    closed_by_server(&mut idle[0]).await;
    assert!(server.metric("enclave_http_connections_closed_total", Some("evicted")) >= 1.0);
    assert!(server.metric("enclave_http_connections_open", None) <= 4.0);
    server.stop().await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_client_waits_for_a_free_slot() {
    let server = start(limits(10_000, 10_000, 10_000, 2)).await;
    let slow = |addr| tokio::spawn(async move { get_status(addr, "/slow").await });
    let (a, b) = (slow(server.addr), slow(server.addr));
    wait_for("2 busy connections", || {
        server.metric("enclave_http_connections_open", None) == 2.0
    })
    .await;
    // Neither is cut for the newcomer: it is served once one of them is done.
    assert_eq!(get_status(server.addr, "/").await, 200);
    assert_eq!(a.await.expect("a"), 200);
    assert_eq!(b.await.expect("b"), 200);
    assert_eq!(
        server.metric("enclave_http_connections_closed_total", Some("evicted")),
        0.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_response_is_cut_at_the_write_timeout() {
    let server = start(limits(10_000, 10_000, 500, 64)).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    wait_for("the write timeout", || {
        server.metric(
            "enclave_http_connections_closed_total",
            Some("write_timeout"),
        ) == 1.0
    })
    .await;
    wait_for("the connection closed", || {
        server.metric("enclave_http_connections_open", None) == 0.0
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_stopping_server_finishes_requests_in_flight_and_does_not_wait_for_idle_clients() {
    let server = start(limits(10_000, 10_000, 10_000, 64)).await;
    let _silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(request(&mut kept, "/", false).await.0, 200);
    let addr = server.addr;
    let in_flight = tokio::spawn(async move { get_status(addr, "/slow").await });
    wait_for("3 open connections", || {
        server.metric("enclave_http_connections_open", None) == 3.0
    })
    .await;
    let took = server.stop().await;
    assert_eq!(in_flight.await.expect("in flight"), 200);
    closed_by_server(&mut kept).await;
    // The silent one had 10 s to send its headers; the drain does not wait for it.
    assert!(took <= DRAIN_TIMEOUT + Duration::from_secs(2), "{took:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn large_responses_are_written_whole_and_oversized_request_heads_are_refused() {
    let server = start(limits(10_000, 10_000, 10_000, 64)).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (status, body) = request(&mut tcp, "/big", false).await;
    assert_eq!((status, body.len()), (200, 32 << 20));
    assert!(body.iter().all(|b| *b == b'x'));
    // A normal-sized head on the same connection still works...
    assert_eq!(request(&mut tcp, "/", false).await.0, 200);
    // ...one over the buffer is refused with 431, not buffered without end.
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Long: {}\r\n\r\n",
        "a".repeat(MAX_BUFFER_BYTES + 1024)
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = timeout(DEADLINE, tcp.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(100)])
    );
    server.stop().await;
}

#[test]
fn the_cap_never_takes_more_than_half_the_open_file_limit() {
    let cases = [
        (1024, None, 1024),
        (1024, Some(1_048_576), 1024),
        (1024, Some(1024), 512),
        (256, Some(1024), 256),
        (1024, Some(10), MIN_CONNECTIONS),
    ];
    for (configured, fd_limit, want) in cases {
        assert_eq!(
            capped_by_fd_limit(configured, fd_limit),
            want,
            "{configured} with {fd_limit:?}"
        );
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
