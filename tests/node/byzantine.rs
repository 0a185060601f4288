//! A byzantine oracle in a live DON: the test itself joins as node 5 with node 5's real keys and
//! lies ×10, signs with a wrong key and floods garbage; an outsider with an unknown key tries to
//! connect. The honest oracles must keep reporting honest values and never crash.

use crate::common;

use std::time::{Duration, Instant};

use alloy_primitives::aliases::I192;
use bytes::Bytes;
use common::don::{heartbeat_every, Don, BTC_USD, T};
use common::harness::wait_until;
use enclave::keys::peer_id::PeerId;
use enclave::keys::KeyStore;
use enclave::node::ocr1::observation::sign_observation;
use enclave::node::ocr1::types::{ConfigDigest, EpochRound};
use enclave::node::p2p::{self, NetworkConfig};
use enclave::node::protocol::messages::{
    AttestedReportMany, Envelope, Message, ReportObservation, SignedObservation,
};

const BYZANTINE: u32 = 5;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_lying_badly_signing_flooding_oracle_and_an_unknown_peer_change_nothing() {
    let don = Don::start(5, BTC_USD, &[BYZANTINE], |s| heartbeat_every(s, 10_000));
    let keys = KeyStore::new(don.enclave.root.join("sp/secrets"));
    let byzantine = keys.load_or_generate(BYZANTINE).expect("node 5 keys");
    let publics: Vec<_> = (1..=5)
        .map(|n| keys.load_public(n).expect("public keys"))
        .collect();
    let peers: Vec<PeerId> = publics[1..].iter().map(|p| p.peer_id).collect();
    let wrong_key = ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]);
    let rt = runtime();

    let p2p_base = don.p2p_base;
    let lies = rt.block_on(async {
        let mut config = NetworkConfig::new(
            byzantine.offchain().clone(),
            format!("127.0.0.1:{}", p2p_base + BYZANTINE as u16)
                .parse()
                .expect("addr"),
            Some((publics[0].peer_id, format!("127.0.0.1:{}", p2p_base + 1))),
            peers.clone(),
        );
        config.max_frame_bytes = 1 << 20;
        let (network, mut inbound) = p2p::start(config).await.expect("byzantine joins");
        let mut lies = 0u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let Ok(Some(frame)) =
                tokio::time::timeout(Duration::from_millis(200), inbound.recv()).await
            else {
                continue;
            };
            let Ok(envelope) = Envelope::decode(&frame.payload) else {
                continue;
            };
            let Message::ObserveReq { epoch, round } = envelope.message else {
                continue;
            };
            let er = EpochRound { epoch, round };
            let lie = I192::try_from(10_000_000_000_000i64).expect("fits"); // 100000.00000000: ×100
            let honest_key = sign_observation(byzantine.offchain(), envelope.digest, er, lie);
            let forged = sign_observation(
                &wrong_key,
                envelope.digest,
                er,
                I192::try_from(1i64).expect("fits"),
            );
            let reply = |observation| Envelope {
                digest: envelope.digest,
                message: Message::Observe {
                    epoch,
                    round,
                    observation,
                },
            };
            // Alternate: a well-signed lie, then a badly signed one.
            let observation = if lies.is_multiple_of(2) {
                SignedObservation {
                    value: lie,
                    signature: honest_key,
                }
            } else {
                SignedObservation {
                    value: I192::try_from(1i64).expect("fits"),
                    signature: forged,
                }
            };
            network.send(frame.from, Bytes::from(reply(observation).encode()));
            lies += 1;
            // And garbage to everyone: undecodable bytes, an unknown digest, a forged FINAL.
            network.broadcast(Bytes::from_static(b"\x00\xffnot a protocol message"));
            let unknown = Envelope {
                digest: ConfigDigest([0xde; 16]),
                message: Message::NewEpoch { epoch: u32::MAX },
            };
            network.broadcast(Bytes::from(unknown.encode()));
            let forged_final = Envelope {
                digest: envelope.digest,
                message: Message::Final {
                    epoch,
                    round,
                    report: AttestedReportMany {
                        observations: vec![
                            ReportObservation {
                                value: lie,
                                observer: 3
                            };
                            3
                        ],
                        signatures: vec![[7u8; 65]; 2],
                    },
                },
            };
            network.broadcast(Bytes::from(forged_final.encode()));
            for _ in 0..50 {
                network.broadcast(Bytes::from(vec![0x5a; 4096]));
            }
        }
        network.shutdown().await;
        lies
    });
    assert!(
        lies >= 4,
        "the byzantine oracle was asked to observe only {lies} times"
    );

    // The honest answer is 1000.00 exactly: the lie never moved it.
    for node in [2, 3, 4] {
        let report = don.wait_latest(node, "BTC-USD", "a report", |_| true);
        assert_eq!(report["answer"], "1000", "node {node}: {report}");
        // The lie may be among the observations (it is correctly signed); only node 5's can be.
        for o in report["observations"].as_array().expect("observations") {
            assert!(
                o["valueInt192"] == "100000000000" || o["node"] == BYZANTINE,
                "{report}"
            );
        }
    }
    // Bad signatures and garbage were seen and rejected.
    let rejected = |node: u32| don.metric(node, "enclave_node_messages_rejected_total{");
    wait_until(T, "rejections counted", || {
        [2, 3, 4].iter().all(|&n| rejected(n) > 0.0)
    });

    // An outsider's key is refused at the TLS handshake.
    let outsider = rt.block_on(async {
        let target = peers[0];
        // Treating node 2 as its bootstrap makes the outsider dial it whatever the key order.
        let config = NetworkConfig::new(
            ed25519_dalek::SigningKey::from_bytes(&[0x77; 32]),
            "127.0.0.1:0".parse().expect("addr"),
            Some((target, format!("127.0.0.1:{}", p2p_base + 2))),
            Vec::new(),
        );
        let (network, _inbound) = p2p::start(config).await.expect("outsider starts");
        let started = Instant::now();
        while network.stats().dials < 2 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let connected = network.connected();
        let stats = network.stats();
        network.shutdown().await;
        assert!(stats.dials >= 2, "the outsider did not dial: {stats:?}");
        connected
    });
    assert!(
        outsider.is_empty(),
        "an unknown peer connected: {outsider:?}"
    );
    wait_until(T, "the refusal counted", || {
        don.metric(2, "enclave_node_p2p_handshake_refusals_total") > 0.0
    });

    let mut don = don;
    for node in 1..=4 {
        assert!(
            don.is_running(node),
            "node {node} died:\n{}",
            don.logs(node)
        );
    }
}
