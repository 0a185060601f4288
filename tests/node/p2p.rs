//! The consensus nodes' P2P network on real loopback TCP: discovery through the bootstrap, one
//! mutually authenticated TLS connection per oracle pair, refusal of outsiders, frame limits,
//! garbage on the port, backpressure and restarts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use enclave::node::p2p::{start, Inbound, NetworkConfig, NetworkHandle, P2pError, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id_of(key: &SigningKey) -> PeerId {
    PeerId(key.verifying_key().to_bytes())
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Polls `condition` until it holds, failing the test at the deadline.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next(rx: &mut Receiver<Inbound>, who: &str) -> Inbound {
    timeout(DEADLINE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{who} received nothing in time"))
        .unwrap_or_else(|| panic!("{who}'s inbound channel closed"))
}

struct Oracle {
    key: SigningKey,
    handle: NetworkHandle,
    inbound: Receiver<Inbound>,
}

impl Oracle {
    fn id(&self) -> PeerId {
        id_of(&self.key)
    }
}

struct Net {
    bootstrap: NetworkHandle,
    bootstrap_inbound: Receiver<Inbound>,
    oracles: Vec<Oracle>,
    peers: Vec<PeerId>,
}

fn oracle_config(
    net_peers: &[PeerId],
    bootstrap: (PeerId, String),
    key: SigningKey,
) -> NetworkConfig {
    let mut config = NetworkConfig::new(key, loopback(), Some(bootstrap), net_peers.to_vec());
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(300);
    config
}

impl Net {
    /// A bootstrap and one oracle per key; oracles know only the bootstrap's address.
    async fn start(
        bootstrap_key: SigningKey,
        oracle_keys: Vec<SigningKey>,
        tweak: impl Fn(usize, &mut NetworkConfig),
    ) -> Net {
        init_logs();
        let peers: Vec<PeerId> = oracle_keys.iter().map(id_of).collect();
        let config = NetworkConfig::new(bootstrap_key.clone(), loopback(), None, peers.clone());
        let (bootstrap, bootstrap_inbound) = start(config).await.expect("bootstrap starts");
        let mut oracles = Vec::new();
        for (i, key) in oracle_keys.into_iter().enumerate() {
            let mut config = oracle_config(&peers, locator(&bootstrap), key.clone());
            tweak(i, &mut config);
            let (handle, inbound) = start(config).await.expect("oracle starts");
            oracles.push(Oracle {
                key,
                handle,
                inbound,
            });
        }
        Net {
            bootstrap,
            bootstrap_inbound,
            oracles,
            peers,
        }
    }

    fn bootstrap_locator(&self) -> (PeerId, String) {
        locator(&self.bootstrap)
    }

    /// Every oracle connected to the bootstrap and every other oracle.
    async fn fully_connected(&self) {
        let bootstrap = self.bootstrap.local_peer_id();
        for oracle in &self.oracles {
            let mut expected: BTreeSet<PeerId> = self
                .peers
                .iter()
                .copied()
                .filter(|p| *p != oracle.id())
                .collect();
            expected.insert(bootstrap);
            eventually(&format!("{} fully connected", oracle.id().short()), || {
                oracle
                    .handle
                    .connected()
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    == expected
            })
            .await;
        }
    }
}

fn locator(bootstrap: &NetworkHandle) -> (PeerId, String) {
    (
        bootstrap.local_peer_id(),
        bootstrap.listen_addr().to_string(),
    )
}

fn keys(seeds: std::ops::RangeInclusive<u8>) -> Vec<SigningKey> {
    seeds.map(key).collect()
}

#[tokio::test]
async fn oracles_find_each_other_through_the_bootstrap_and_keep_one_connection_per_pair() {
    let mut net = Net::start(key(100), keys(1..=4), |_, _| {}).await;
    net.fully_connected().await;
    assert_eq!(
        net.bootstrap.connected(),
        net.peers
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );

    for from in 0..net.oracles.len() {
        for to in 0..net.oracles.len() {
            if from != to {
                let payload = Bytes::from(format!("{from}->{to}"));
                net.oracles[from].handle.send(net.oracles[to].id(), payload);
            }
        }
    }
    for to in 0..net.oracles.len() {
        let mut got = BTreeSet::new();
        for _ in 0..net.oracles.len() - 1 {
            let oracle = &mut net.oracles[to];
            let msg = next(&mut oracle.inbound, "oracle").await;
            got.insert((msg.from, String::from_utf8_lossy(&msg.payload).into_owned()));
        }
        let expected: BTreeSet<_> = (0..net.oracles.len())
            .filter(|from| *from != to)
            .map(|from| (net.oracles[from].id(), format!("{from}->{to}")))
            .collect();
        assert_eq!(got, expected);
    }

    // Exactly one connection per pair: each oracle made or took one per peer (3 oracles and the
    // bootstrap), none was a duplicate and none broke.
    for oracle in &net.oracles {
        let stats = oracle.handle.stats();
        assert_eq!(stats.connects, 4, "{stats:?}");
        assert_eq!(stats.duplicates_closed, 0, "{stats:?}");
        assert_eq!(stats.disconnects, 0, "{stats:?}");
        assert_eq!(stats.dropped_out, 0, "{stats:?}");
        assert_eq!(
            stats.handshake_refusals + stats.handshake_failures,
            0,
            "{stats:?}"
        );
    }
    let stats = net.bootstrap.stats();
    assert_eq!(
        (stats.connects, stats.disconnects, stats.dials),
        (4, 0, 0),
        "{stats:?}"
    );
    // The bootstrap takes no application traffic.
    assert!(net.bootstrap_inbound.try_recv().is_err());

    for oracle in net.oracles {
        oracle.handle.shutdown().await;
    }
    net.bootstrap.shutdown().await;
}

#[tokio::test]
async fn a_broadcast_reaches_every_other_oracle_and_not_the_bootstrap() {
    let mut net = Net::start(key(101), keys(11..=14), |_, _| {}).await;
    net.fully_connected().await;
    for (i, oracle) in net.oracles.iter().enumerate() {
        oracle.handle.broadcast(Bytes::from(format!("round {i}")));
    }
    let ids: Vec<PeerId> = net.oracles.iter().map(Oracle::id).collect();
    for (to, oracle) in net.oracles.iter_mut().enumerate() {
        let mut got = BTreeSet::new();
        for _ in 0..3 {
            let msg = next(&mut oracle.inbound, "oracle").await;
            got.insert((msg.from, msg.payload));
        }
        let expected: BTreeSet<_> = (0..4)
            .filter(|from| *from != to)
            .map(|from| (ids[from], Bytes::from(format!("round {from}"))))
            .collect();
        assert_eq!(got, expected);
    }
    assert!(net.bootstrap_inbound.try_recv().is_err());
    assert_eq!(net.bootstrap.stats().dropped_in, 0);
    for oracle in &net.oracles {
        assert_eq!(oracle.handle.stats().dropped_out, 0);
    }
}

#[tokio::test]
async fn a_key_outside_the_set_is_refused_during_the_tls_handshake() {
    // The outsider gets the lowest id, so it tries to dial every oracle as well as the bootstrap.
    let mut all: Vec<SigningKey> = keys(21..=26);
    all.sort_by_key(id_of);
    let outsider_key = all.remove(0);
    let bootstrap_key = all.remove(0);
    let mut net = Net::start(bootstrap_key, all, |_, _| {}).await;
    net.fully_connected().await;

    let mut config = oracle_config(&net.peers, net.bootstrap_locator(), outsider_key.clone());
    for oracle in &net.oracles {
        config
            .static_addresses
            .insert(oracle.id(), oracle.handle.listen_addr().to_string());
    }
    let (outsider, mut outsider_inbound) = start(config).await.expect("outsider starts");
    eventually("every node refused the outsider", || {
        net.bootstrap.stats().handshake_refusals >= 1
            && net
                .oracles
                .iter()
                .all(|o| o.handle.stats().handshake_refusals >= 1)
    })
    .await;
    eventually("the outsider saw its dials fail", || {
        outsider.stats().handshake_failures >= 5
    })
    .await;
    let stats = outsider.stats();
    assert!(outsider.connected().is_empty());
    assert_eq!(stats.connects, 0, "{stats:?}");
    outsider.broadcast(Bytes::from_static(b"let me in"));
    outsider.send(net.oracles[0].id(), Bytes::from_static(b"let me in"));
    assert_eq!(outsider.stats().dropped_out, 5);

    // Nothing from the outsider reached anyone: the first thing each oracle receives is a marker
    // sent after all the refusals.
    let marker_sender = net.oracles[0].id();
    for i in 1..net.oracles.len() {
        let to = net.oracles[i].id();
        net.oracles[0]
            .handle
            .send(to, Bytes::from_static(b"marker"));
    }
    for oracle in net.oracles.iter_mut().skip(1) {
        let msg = next(&mut oracle.inbound, "oracle").await;
        assert_eq!(
            (msg.from, &msg.payload[..]),
            (marker_sender, &b"marker"[..])
        );
    }
    for oracle in &net.oracles {
        let stats = oracle.handle.stats();
        assert_eq!((stats.connects, stats.disconnects), (4, 0), "{stats:?}");
    }
    assert!(outsider_inbound.try_recv().is_err());
    outsider.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_only_that_connection_and_the_peer_reconnects() {
    // Oracle 1 accepts at most 4 KiB frames; the others send up to the default 1 MiB.
    let mut net = Net::start(key(102), keys(31..=33), |i, config| {
        if i == 1 {
            config.max_frame_bytes = 4096;
        }
    })
    .await;
    net.fully_connected().await;
    let (a, b, c) = (
        net.oracles[0].id(),
        net.oracles[1].id(),
        net.oracles[2].id(),
    );

    net.oracles[0].handle.send(b, Bytes::from(vec![7u8; 8192]));
    eventually("the receiver refused the oversize frame", || {
        net.oracles[1].handle.stats().oversize_frames == 1
    })
    .await;
    eventually("the pair reconnected", || {
        net.oracles[1].handle.stats().connects == 4
            && net.oracles[1].handle.connected().contains(&a)
            && net.oracles[0].handle.connected().contains(&b)
    })
    .await;

    net.oracles[0].handle.send(b, Bytes::from_static(b"after"));
    let msg = next(&mut net.oracles[1].inbound, "oracle 1").await;
    assert_eq!((msg.from, &msg.payload[..]), (a, &b"after"[..]));

    // Only that connection: the other two pairs never broke.
    assert_eq!(net.oracles[1].handle.stats().disconnects, 1);
    assert_eq!(net.oracles[0].handle.stats().disconnects, 1);
    let stats = net.oracles[2].handle.stats();
    assert_eq!((stats.connects, stats.disconnects), (3, 0), "{stats:?}");
    net.oracles[2]
        .handle
        .send(b, Bytes::from_static(b"still here"));
    let msg = next(&mut net.oracles[1].inbound, "oracle 1").await;
    assert_eq!((msg.from, &msg.payload[..]), (c, &b"still here"[..]));
}

/// Writes `bytes` and reads until the node closes the socket.
async fn closed_after(addr: SocketAddr, bytes: &[u8]) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The node may close before all is written; that is the point.
    let _ = tcp.write_all(bytes).await;
    let mut sink = vec![0u8; 4096];
    let closed = timeout(DEADLINE, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node kept a garbage connection open");
}

#[tokio::test]
async fn garbage_on_the_port_is_dropped_without_harm() {
    let mut net = Net::start(key(103), keys(41..=42), |_, _| {}).await;
    net.fully_connected().await;
    let target = net.oracles[0].handle.listen_addr();
    let mut noise = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    noise.extend((0..4096).map(|_| fastrand::u8(..)));
    closed_after(target, &noise).await;
    // A TLS record header announcing a handshake, then nonsense.
    closed_after(target, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).await;
    closed_after(net.bootstrap.listen_addr(), &noise).await;
    eventually("the failures were counted", || {
        net.oracles[0].handle.stats().handshake_failures == 2
            && net.bootstrap.stats().handshake_failures == 1
    })
    .await;

    let stats = net.oracles[0].handle.stats();
    assert_eq!(
        (stats.handshake_refusals, stats.disconnects),
        (0, 0),
        "{stats:?}"
    );
    let from = net.oracles[1].id();
    net.oracles[1]
        .handle
        .send(net.oracles[0].id(), Bytes::from_static(b"fine"));
    let msg = next(&mut net.oracles[0].inbound, "oracle 0").await;
    assert_eq!((msg.from, &msg.payload[..]), (from, &b"fine"[..]));
}

#[tokio::test]
async fn a_slow_consumer_pushes_back_on_the_sender_instead_of_buffering() {
    let mut net = Net::start(key(104), keys(51..=52), |_, config| {
        config.send_queue = 16;
    })
    .await;
    net.fully_connected().await;
    let to = net.oracles[1].id();
    // Nobody reads oracle 1's inbound channel: once it and the TCP buffers are full, the
    // sender's queue fills and further sends are dropped.
    let payload = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    let deadline = Instant::now() + DEADLINE;
    while net.oracles[0].handle.stats().dropped_out == 0 {
        assert!(
            Instant::now() < deadline,
            "the sender never felt backpressure"
        );
        let mut msg = sent.to_be_bytes().to_vec();
        msg.extend_from_slice(&payload);
        net.oracles[0].handle.send(to, Bytes::from(msg));
        sent += 1;
        tokio::task::yield_now().await;
    }
    let dropped = net.oracles[0].handle.stats().dropped_out;
    // The receiver took far more than the sender's queue holds before anything was dropped:
    // drops come from its pushback, not from a sender that cannot keep up.
    assert!(sent > 1000, "dropped after only {sent} sends");
    // Everything that was not dropped arrives, in order, once the consumer reads.
    let delivered = sent - dropped;
    let receiver = &mut net.oracles[1];
    for expected in 0..delivered {
        let msg = next(&mut receiver.inbound, "oracle 1").await;
        let seq = u64::from_be_bytes(msg.payload[..8].try_into().expect("sequence"));
        assert_eq!(seq, expected);
    }
    let stats = receiver.handle.stats();
    assert_eq!(stats.disconnects, 0, "{stats:?}");
}

#[tokio::test]
async fn a_restarted_oracle_on_a_new_port_is_reconnected_through_its_new_announcement() {
    let mut net = Net::start(key(105), keys(61..=64), |_, _| {}).await;
    net.fully_connected().await;
    // The second-lowest id: it dials two peers and is dialed by one.
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by_key(|i| net.oracles[*i].id());
    let restarted = order[1];

    let old = net.oracles.remove(restarted);
    let old_port = old.handle.listen_addr().port();
    let id = old.id();
    old.handle.shutdown().await;
    drop(old.inbound);
    for oracle in &net.oracles {
        eventually("the others saw it go", || {
            !oracle.handle.connected().contains(&id)
        })
        .await;
    }

    let config = oracle_config(&net.peers, net.bootstrap_locator(), old.key.clone());
    let (handle, inbound) = start(config).await.expect("restart");
    assert_ne!(handle.listen_addr().port(), old_port);
    net.oracles.insert(
        restarted,
        Oracle {
            key: old.key,
            handle,
            inbound,
        },
    );
    net.fully_connected().await;

    for i in 0..4 {
        if i == restarted {
            continue;
        }
        let other = net.oracles[i].id();
        net.oracles[i]
            .handle
            .send(id, Bytes::from_static(b"welcome back"));
        net.oracles[restarted]
            .handle
            .send(other, Bytes::from_static(b"thanks"));
        let msg = next(&mut net.oracles[i].inbound, "other").await;
        assert_eq!((msg.from, &msg.payload[..]), (id, &b"thanks"[..]));
    }
    let mut from = BTreeSet::new();
    for _ in 0..3 {
        let msg = next(&mut net.oracles[restarted].inbound, "restarted").await;
        assert_eq!(&msg.payload[..], b"welcome back");
        from.insert(msg.from);
    }
    assert_eq!(from.len(), 3);
    let stats = net.oracles[restarted].handle.stats();
    assert_eq!(
        (stats.connects, stats.duplicates_closed),
        (4, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_port_in_use_or_a_bad_configuration_fails_the_start() {
    let taken = std::net::TcpListener::bind(loopback()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let config = NetworkConfig::new(key(1), addr, None, vec![id_of(&key(2))]);
    match start(config).await {
        Err(P2pError::Bind { addr: a, .. }) => assert_eq!(a, addr),
        other => panic!("expected a bind error, got {:?}", other.map(|_| ())),
    }

    let mut config = NetworkConfig::new(key(1), loopback(), None, vec![]);
    config.max_frame_bytes = 100;
    assert!(matches!(start(config).await, Err(P2pError::Config(_))));

    let mut config = NetworkConfig::new(
        key(1),
        loopback(),
        Some((id_of(&key(9)), "127.0.0.1:1".into())),
        vec![id_of(&key(1))],
    );
    config.announce = vec!["no port".into()];
    assert!(matches!(start(config).await, Err(P2pError::Announce(_))));
}

#[tokio::test]
async fn a_restarted_bootstrap_relearns_every_announcement_from_the_reconnecting_oracles() {
    let mut net = Net::start(key(106), keys(71..=73), |_, _| {}).await;
    net.fully_connected().await;
    let bootstrap_id = net.bootstrap.local_peer_id();
    let bootstrap_addr = net.bootstrap.listen_addr();
    net.bootstrap.clone().shutdown().await;
    for oracle in &net.oracles {
        eventually("the oracles saw the bootstrap go", || {
            !oracle.handle.connected().contains(&bootstrap_id)
        })
        .await;
    }

    // Same key, same address: the oracles' dialers find it again.
    let config = NetworkConfig::new(key(106), bootstrap_addr, None, net.peers.clone());
    let (bootstrap, bootstrap_inbound) = start(config).await.expect("bootstrap restarts");
    net.bootstrap = bootstrap;
    net.bootstrap_inbound = bootstrap_inbound;
    net.fully_connected().await;

    // The new bootstrap knows only what the oracles re-announced when they reconnected; that is
    // enough for the lowest oracle, restarted on a new port, to find and dial everyone.
    let lowest = (0..net.oracles.len())
        .min_by_key(|i| net.oracles[*i].id())
        .expect("oracles");
    let old = net.oracles.remove(lowest);
    old.handle.shutdown().await;
    let config = oracle_config(&net.peers, net.bootstrap_locator(), old.key.clone());
    let (handle, inbound) = start(config).await.expect("oracle restarts");
    net.oracles.insert(
        lowest,
        Oracle {
            key: old.key,
            handle,
            inbound,
        },
    );
    net.fully_connected().await;
    let stats = net.oracles[lowest].handle.stats();
    assert_eq!(stats.connects, 3, "{stats:?}");
}

/// A TLS 1.3 ClientHello, as a stranger's first flight (p2p_flood sends it too).
pub fn client_hello() -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("enclave-p2p").expect("name");
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("ClientHello");
    out
}

#[tokio::test]
async fn strangers_holding_every_handshake_slot_make_room_for_a_peer_and_silent_ones_are_cut() {
    use enclave::node::p2p::InboundClose;
    init_logs();
    let oracle_keys = keys(81..=81);
    let peers: Vec<PeerId> = oracle_keys.iter().map(id_of).collect();
    let config = NetworkConfig::new(key(108), loopback(), None, peers.clone());
    let (bootstrap, _inbound) = start(config).await.expect("bootstrap starts");
    let addr = bootstrap.listen_addr();

    // A connection that says nothing is cut at the ClientHello deadline (3 s), long before the
    // handshake deadline (10 s).
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let opened = Instant::now();
    let mut sink = [0u8; 64];
    let _ = timeout(DEADLINE, silent.read(&mut sink))
        .await
        .expect("a silent connection is closed");
    assert!(
        opened.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        opened.elapsed()
    );
    eventually("the ClientHello timeout counted", || {
        bootstrap
            .stats()
            .inbound_closed(InboundClose::ClientHelloTimeout)
            == 1
    })
    .await;

    // 64 strangers from 127.0.0.1 (like the peers) send a ClientHello and stall, holding every
    // handshake slot.
    let hello = client_hello();
    let mut strangers = Vec::new();
    for _ in 0..64 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&hello).await.expect("hello");
        strangers.push(tcp);
    }
    // Once they have had their 2 s, a peer's connection takes the oldest one's slot.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (oracle, _oracle_inbound) = start(oracle_config(
        &peers,
        locator(&bootstrap),
        oracle_keys[0].clone(),
    ))
    .await
    .expect("oracle starts");
    eventually("the oracle connected to the bootstrap", || {
        oracle.connected() == vec![bootstrap.local_peer_id()]
    })
    .await;
    let stats = bootstrap.stats();
    assert!(
        stats.inbound_closed(InboundClose::Evicted) >= 1,
        "{stats:?}"
    );
    eventually("every stranger closed by the handshake deadline", || {
        let s = bootstrap.stats();
        s.inbound_closed(InboundClose::HandshakeTimeout) + s.inbound_closed(InboundClose::Evicted)
            >= 64
    })
    .await;
    drop(strangers);
}
