//! Every HTTP server of the enclave as the supervisor runs it (the price aggregator, the
//! supervisor's and the process-metrics exporter's `/metrics`): made-up methods and paths do not
//! grow the metrics, slow-header clients are cut off while the API keeps answering, and idle
//! connections beyond the cap do not grow the aggregator's file descriptors.

use crate::common;
use crate::support::Supervised;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::harness::{wait_until, Enclave};

const T: Duration = Duration::from_secs(60);

fn raw(port: u16, request: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn made_up_methods_and_paths_leave_the_aggregator_metrics_within_one_and_a_half_times_their_size() {
    let s = Supervised::start("67123.45", &["process-metrics"], T);
    let port = s.port;
    // The series normal use creates, including a 404 and a 405.
    wait_until(T, "a priced quote", || {
        Enclave::http_get(port, "/quotes/batch?pairs=BTC-USDT")
            .is_some_and(|(code, body)| code == 200 && body.contains("\"ok\""))
    });
    assert_eq!(raw(port, "GET /nope HTTP/1.0\r\n\r\n"), Some(404));
    assert_eq!(raw(port, "POST /metrics HTTP/1.0\r\n\r\n"), Some(405));
    // One request of each kind below creates the series all of them share (method "other" on
    // an unmatched path, on a route, and a 404 from a route).
    let made_up = |i: usize| {
        raw(
            port,
            &format!("XMETHOD{i} /made/up/path/{i} HTTP/1.0\r\n\r\n"),
        )
        .unwrap_or_else(|| panic!("request {i} unanswered"));
        raw(port, &format!("FOO{i} /metrics HTTP/1.0\r\n\r\n"));
        raw(
            port,
            &format!("GET /quote/pairs/nope{i}/x HTTP/1.0\r\n\r\n"),
        );
    };
    made_up(0);
    let before_text = Enclave::http_get(port, "/metrics").expect("metrics").1;
    let before = before_text.len();
    for i in 1..=500 {
        made_up(i);
    }
    let after_text = Enclave::http_get(port, "/metrics").expect("metrics").1;
    let after = after_text.len();
    let new_lines: Vec<&str> = after_text
        .lines()
        .filter(|l| {
            let series = l.rsplit_once(' ').map_or(*l, |(s, _)| s);
            !before_text.contains(series)
        })
        .collect();
    eprintln!("/metrics: {before} bytes before, {after} after 1,500 made-up requests");
    assert!(
        after * 2 <= before * 3,
        "/metrics grew from {before} to {after} bytes; new series:\n{}",
        new_lines.join("\n")
    );
    let metrics = Enclave::http_get(port, "/metrics").expect("metrics").1;
    assert!(
        metrics.contains("method=\"other\",route=\"unmatched\",status=\"404\""),
        "made-up methods and paths collapse to one series:\n{metrics}"
    );
    assert!(
        !metrics.contains("XMETHOD"),
        "a made-up method became a label"
    );
}

#[test]
fn slow_header_clients_are_cut_off_within_45_s_on_every_server_while_it_keeps_answering() {
    let s = Supervised::start("67123.45", &["process-metrics"], T);
    let ports = [
        ("price aggregator", s.port),
        ("supervisor", s.enclave.port("supervisor")),
        ("process-metrics", s.enclave.port("processMetrics")),
    ];
    // "Up" is readiness only for the aggregator (it has a notification fd); the supervisor's and
    // the exporter's servers bind a moment after their process starts.
    for (name, port) in ports {
        wait_until(T, &format!("the {name} answering"), || {
            Enclave::http_get(port, "/healthz").is_some()
        });
    }
    let started = Instant::now();
    let mut slow: Vec<(u16, TcpStream)> = Vec::new();
    for (_, port) in ports {
        for _ in 0..50 {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            tcp.set_nonblocking(true).expect("nonblocking");
            slow.push((port, tcp));
        }
    }
    // Trickle a header line every second, answer checks in between, until all are cut off.
    let mut open = slow.len();
    let mut trickle = 0;
    while open > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "{open} slow-header connections still open after 45 s"
        );
        for (name, port) in ports {
            let code = Enclave::http_get(port, "/healthz").map(|(c, _)| c);
            assert!(
                matches!(code, Some(200 | 503)),
                "the {name} did not answer during the attack: {code:?}"
            );
        }
        trickle += 1;
        open = 0;
        for (_, tcp) in &mut slow {
            let header = format!("X-Slow-{trickle}: 1\r\n");
            let mut probe = [0u8; 512];
            let closed = match tcp.read(&mut probe) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    tcp.write_all(header.as_bytes()).is_err()
                }
                Err(_) => true,
            };
            if !closed {
                open += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "150 slow-header connections cut off after {:?}",
        started.elapsed()
    );
    for (name, port) in ports {
        let metrics = Enclave::http_get(port, "/metrics").expect("metrics").1;
        assert!(
            metrics.contains("enclave_http_connections_closed_total{reason=\"header_timeout\"} 50"),
            "{name}: {}",
            metrics
                .lines()
                .filter(|l| l.starts_with("enclave_http"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Resident memory of the service's process in KiB (for the figures printed).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of the service's process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn idle_connections_beyond_the_cap_do_not_grow_the_aggregators_file_descriptors() {
    let s = Supervised::start("67123.45", &["process-metrics"], T);
    let port = s.port;
    let pid = s
        .enclave
        .state("price-aggregator")
        .expect("state")
        .pid
        .expect("pid");
    let before = fds(pid);
    let rss_before = rss_kib(pid);
    let mut idle = Vec::new();
    let mut most = before;
    for i in 0..1500 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        if i % 100 == 99 {
            most = most.max(fds(pid));
            let code = Enclave::http_get(port, "/healthz").map(|(c, _)| c);
            assert_eq!(code, Some(200), "no answer with {} idle connections", i + 1);
        }
    }
    // Give the server time to take in what is still in its accept queue (old code: all 1,500).
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(3) {
        most = most.max(fds(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "aggregator fds: {before} before, at most {most} with 1,500 idle connections; \
         RSS {rss_before} KiB before, {} KiB with them",
        rss_kib(pid)
    );
    assert!(
        most <= before + 1024 + 16,
        "{most} file descriptors with 1,500 idle connections (cap 1024)"
    );
    wait_until(
        T,
        "the longest-idle connections closed for newcomers",
        || {
            Enclave::http_get(port, "/metrics").is_some_and(|(_, m)| {
                m.contains("enclave_http_connections_closed_total{reason=\"evicted\"}")
                    && !m.contains("enclave_http_connections_closed_total{reason=\"evicted\"} 0")
            })
        },
    );
    // The header timeout closes them all.
    wait_until(T, "the idle connections closed", || fds(pid) <= before + 8);
    drop(idle);
}
