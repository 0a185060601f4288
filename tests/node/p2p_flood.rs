//! A DON of real processes under a flood of unauthenticated connections on every P2P port (64
//! held per port and replaced as soon as they are closed, about 7 new per second against a 10 s
//! handshake timeout, from 127.0.0.1 like the real peers; 7 in 8 send a TLS ClientHello and
//! stall, the rest say nothing), with slow-header clients on every node API: an oracle killed with -9 and restarted gets all its peers back within 30 s,
//! the APIs keep answering, and the logs get a bounded number of lines about it.

use crate::common;
use crate::p2p::client_hello;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::don::{Don, BTC_USD, T};
use common::harness::wait_until;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HELD_PER_PORT: usize = 64;
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Connections held open on `ports` by a background runtime: `held` clients per port, each
/// reconnecting as soon as its connection is closed (a connection refused at once waits 20 ms,
/// one that cannot connect 100 ms). Client `i` sends `prefix(i)` and then stalls, reading only to
/// notice being closed.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    opened: Arc<AtomicUsize>,
}

impl Flood {
    fn start(
        ports: Vec<u16>,
        held: usize,
        prefix: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
    ) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (stop_flag, counter) = (stop.clone(), opened.clone());
        let prefix = Arc::new(prefix);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                for port in ports {
                    for i in 0..held {
                        let (stop, counter) = (stop_flag.clone(), counter.clone());
                        let bytes = prefix(i);
                        tokio::spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)).await
                                else {
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    continue;
                                };
                                counter.fetch_add(1, Ordering::Relaxed);
                                let opened = Instant::now();
                                if tcp.write_all(&bytes).await.is_ok() {
                                    let _ = tokio::io::copy(&mut tcp, &mut tokio::io::sink()).await;
                                }
                                if opened.elapsed() < Duration::from_millis(20) {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            }
                        });
                    }
                }
                while !stop_flag.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            // Closes every connection still held.
            runtime.shutdown_background();
        });
        Flood {
            stop,
            thread: Some(thread),
            opened,
        }
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every oracle sees the other three, and the bootstrap sees all four.
fn all_connected(don: &Don) -> Result<(), String> {
    for node in 1..=don.total {
        let want = if node == 1 { 4 } else { 3 };
        match don.json(node, "/health") {
            Some((_, h)) if h["peersConnected"] == want => {}
            Some((_, h)) => {
                return Err(format!(
                    "node {node}: {} of {want} peers",
                    h["peersConnected"]
                ))
            }
            None => return Err(format!("node {node}: no answer")),
        }
    }
    Ok(())
}

/// Lines at WARN or above that `node` logged after byte `from` of its log.
fn warnings_since(don: &Don, node: u32, from: usize) -> Vec<String> {
    let log = don.logs(node);
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn under_a_flood_of_unauthenticated_connections_a_killed_oracle_gets_all_its_peers_back_within_30_s(
) {
    let mut don = Don::start(5, BTC_USD, &[], |_| {});
    wait_until(T, "every node connected to every peer", || {
        all_connected(&don).is_ok()
    });
    let log_marks: Vec<usize> = (1..=don.total).map(|n| don.logs(n).len()).collect();
    let p2p_ports: Vec<u16> = (1..=don.total).map(|n| don.p2p_base + n as u16).collect();
    let api_ports: Vec<u16> = (1..=don.total).map(|n| don.api_base + n as u16).collect();
    // The first flight of a TLS 1.3 client: sent on 7 of 8 of the flood's connections, so that
    // they pass the ClientHello deadline and hold a handshake slot until the handshake deadline
    // (or until evicted).
    let hello = client_hello();
    let flood_started = Instant::now();
    let flood = Flood::start(p2p_ports, HELD_PER_PORT, move |i| {
        if i % 8 == 0 {
            Vec::new()
        } else {
            hello.clone()
        }
    });
    // Slow-header clients on every node API: 50 each, never finishing their headers.
    let slow_started = Instant::now();
    let slow_headers = Flood::start(api_ports, 50, |_| {
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec()
    });

    // Long enough for idle connections to fill every handshake slot of the old listener.
    std::thread::sleep(Duration::from_secs(12));
    assert!(flood.opened() >= 5 * HELD_PER_PORT, "the flood is running");

    let victim = 3;
    don.crash(victim);
    don.spawn(victim);
    let restarted = Instant::now();
    let mut last = String::new();
    while let Err(why) = all_connected(&don) {
        if restarted.elapsed() >= BACK_WITHIN {
            let warnings: Vec<usize> = (1..=don.total)
                .map(|n| warnings_since(&don, n, log_marks[n as usize - 1]).len())
                .collect();
            panic!(
                "not every peer back {BACK_WITHIN:?} after node {victim} restarted under the \
                 flood: {why}; warnings per node since the flood began: {warnings:?}\n{}",
                don.logs(victim)
            );
        }
        last = why;
        std::thread::sleep(Duration::from_millis(100));
    }
    let back_after = restarted.elapsed();
    eprintln!("all peers back {back_after:?} after the restart (last missing: {last})");

    // The flood got in its way: handshakes were evicted and idle connections cut.
    let closed = |reason: &str| -> f64 {
        (1..=don.total)
            .map(|n| {
                don.metric(
                    n,
                    &format!("enclave_node_p2p_inbound_closed_total{{reason=\"{reason}\"}}"),
                )
            })
            .sum()
    };
    eprintln!(
        "closed before authentication, all nodes: evicted {}, client_hello_timeout {}, \
         handshake_timeout {}, slots_full {}",
        closed("evicted"),
        closed("client_hello_timeout"),
        closed("handshake_timeout"),
        closed("slots_full")
    );
    assert!(closed("evicted") > 0.0, "no handshake was ever evicted");
    assert!(
        closed("client_hello_timeout") > 0.0,
        "no idle connection was cut"
    );
    // The slow-header clients on the APIs are cut off (header timeout 10 s) within 45 s, while
    // the APIs answered all along (all_connected above asked every /health).
    wait_until(
        (slow_started + Duration::from_secs(45)).saturating_duration_since(Instant::now()),
        "50 slow-header connections closed on every node API within 45 s",
        || {
            (1..=don.total).all(|n| {
                don.metric(
                    n,
                    "enclave_http_connections_closed_total{reason=\"header_timeout\"}",
                ) >= 50.0
            })
        },
    );
    drop(slow_headers);
    let flooded_for = flood_started.elapsed();
    eprintln!(
        "the flood opened {} connections in {flooded_for:?} ({:.1} per port per second)",
        flood.opened(),
        flood.opened() as f64 / flooded_for.as_secs_f64() / f64::from(don.total)
    );
    drop(flood);

    // At most one line per reason every 10 s, whatever the flood's size.
    let windows = flooded_for.as_secs() as usize / 10 + 2;
    for (i, node) in (1..=don.total).enumerate() {
        let warnings = warnings_since(&don, node, log_marks[i]);
        eprintln!(
            "node {node}: {} warnings in {flooded_for:?} of flood",
            warnings.len()
        );
        assert!(
            warnings.len() <= 4 * windows,
            "node {node} logged {} warnings in {flooded_for:?}:\n{}",
            warnings.len(),
            warnings.join("\n")
        );
    }
    for node in 1..=don.total {
        assert!(
            don.is_running(node),
            "node {node} died:\n{}",
            don.logs(node)
        );
    }
}
