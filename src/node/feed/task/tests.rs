//! The feed task's decisions driven through its seams (`feed::ports`) with in-memory parts: no
//! PostgreSQL, no aggregator, no network. The same paths against the real database are in
//! `node::store` and `tests/chain` (rollback, full disk).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use prometheus::Registry;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use super::*;
use crate::config::values::EvmAddress;
use crate::keys::peer_id::PeerId;
use crate::node::contract::contract_state::FinalizedContractState;
use crate::node::feed::observe::ObserveError;
use crate::node::feed::ports::{Outbox, PriceSource, ReportStore, SignedRound};
use crate::node::feed::status::NodeStatus;
use crate::node::feed::writes::Writes;
use crate::node::metrics::NodeMetrics;
use crate::node::ocr1::signature::{address_of, recover_signer};
use crate::node::ocr1::types::ConfigDigest;
use crate::node::store::StoreError;
use crate::node::transmission::transmitter::ToTransmit;

const DIGEST: ConfigDigest = ConfigDigest([0x42; 16]);

/// The signing guard and the finalized reports, kept as PostgreSQL keeps them; `down` makes
/// every write fail as an unreachable or full database does.
#[derive(Default)]
struct MemoryStore {
    guards: Mutex<HashMap<(ConfigDigest, u32, u8), [u8; 32]>>,
    reports: Mutex<Vec<FinalizedReport>>,
    down: AtomicBool,
}

impl MemoryStore {
    fn check_up(&self, what: &'static str) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Query {
                what,
                source: sqlx::Error::PoolTimedOut,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ReportStore for MemoryStore {
    async fn guard_signature(&self, signed: SignedRound) -> Result<SignGuard, StoreError> {
        self.check_up("recording a signature")?;
        let mut guards = self.guards.lock().expect("lock");
        let at = (signed.digest, signed.epoch, signed.round);
        Ok(match guards.get(&at) {
            None => {
                guards.insert(at, signed.report_hash);
                SignGuard::Fresh
            }
            Some(hash) if *hash == signed.report_hash => SignGuard::SameReport,
            Some(_) => SignGuard::Conflict,
        })
    }

    async fn save_finalized(&self, report: &FinalizedReport) -> Result<bool, StoreError> {
        self.check_up("storing a finalized report")?;
        let mut reports = self.reports.lock().expect("lock");
        let key = |r: &FinalizedReport| (r.feed.clone(), r.digest, r.epoch, r.round);
        if reports.iter().any(|r| key(r) == key(report)) {
            return Ok(false);
        }
        reports.push(report.clone());
        Ok(true)
    }
}

struct NoPrice;

#[async_trait]
impl PriceSource for NoPrice {
    async fn observe(&self, _feed: &str) -> Result<Decimal, ObserveError> {
        Err(ObserveError::Stopped)
    }
}

/// What the task sent: (to, payload), `None` for a broadcast.
#[derive(Default)]
struct Sent(Mutex<Vec<(Option<PeerId>, Bytes)>>);

impl Outbox for Sent {
    fn send(&self, to: PeerId, payload: Bytes) {
        self.0.lock().expect("lock").push((Some(to), payload));
    }

    fn broadcast(&self, payload: Bytes) {
        self.0.lock().expect("lock").push((None, payload));
    }
}

struct Parts {
    shared: Arc<Shared>,
    store: Arc<MemoryStore>,
    transmissions: mpsc::Receiver<ToTransmit>,
}

fn parts() -> Parts {
    let registry = Registry::new();
    let store = Arc::new(MemoryStore::default());
    let (transmit, transmissions) = mpsc::channel(16);
    let (pacemaker_writes, _) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        store: store.clone(),
        observer: Arc::new(NoPrice),
        contract: Arc::new(FinalizedContractState::default()),
        transmissions: Some(transmit),
        network: Arc::new(Sent::default()),
        peers: Vec::new(),
        nodes: vec![2, 3, 4, 5],
        onchain_key: k256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("valid scalar"),
        metrics: Arc::new(NodeMetrics::register(&registry).expect("metrics")),
        status: Arc::new(NodeStatus::default()),
        pacemaker_writes,
        writes: Arc::new(Writes::register(&registry).expect("metrics")),
    });
    Parts {
        shared,
        store,
        transmissions,
    }
}

fn instance(signing_floor: Option<EpochRound>) -> InstanceConfig {
    let offchain: Vec<ed25519_dalek::SigningKey> = (1..=4u8)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]))
        .collect();
    InstanceConfig {
        feed: "BTC-USD".into(),
        digest: DIGEST,
        n: 4,
        f: 1,
        me: 0,
        r_max: 3,
        delta_progress: Duration::from_secs(3),
        delta_resend: Duration::from_secs(1),
        delta_round: Duration::from_secs(1),
        delta_grace: Duration::from_millis(200),
        leader_key: [7; 16],
        offchain_keys: offchain.iter().map(|k| k.verifying_key()).collect(),
        signers: Vec::new(),
        offchain_key: offchain[0].clone(),
        signing_floor,
    }
}

fn feed() -> FeedConfig {
    FeedConfig {
        name: "BTC-USD".into(),
        decimals: 8,
        contract_address: EvmAddress([1; 20]),
        alpha_ppb: 5_000_000,
        heartbeat: Duration::from_secs(60),
        legs: Vec::new(),
    }
}

fn observations(values: [i64; 3]) -> Vec<ReportObservation> {
    values
        .iter()
        .zip(0u8..)
        .map(|(v, observer)| ReportObservation {
            value: I192::try_from(*v).expect("fits"),
            observer,
        })
        .collect()
}

fn refused(shared: &Shared, reason: &str) -> u64 {
    shared
        .metrics
        .signing_refused
        .with_label_values(&[reason])
        .get()
}

/// What the signing guard holds before the round: nothing, this very report, or another one.
#[derive(Clone, Copy, Debug)]
enum Before {
    Nothing,
    SameReport,
    OtherReport,
}

/// One round of [`a_report_is_signed_only_when_the_guard_is_written_and_no_other_report_was_signed`].
struct Case {
    before: Before,
    database_down: bool,
    fence: Option<EpochRound>,
    round: (u32, u8),
    /// Signed, or the `signing_refused` reason counted.
    expected: Result<(), &'static str>,
}

#[tokio::test]
async fn a_report_is_signed_only_when_the_guard_is_written_and_no_other_report_was_signed() {
    let ours = observations([100, 101, 102]);
    let case = |before, database_down, fence, round, expected| Case {
        before,
        database_down,
        fence,
        round,
        expected,
    };
    let fence = Some(EpochRound::new(1, 1));
    let table = [
        case(Before::Nothing, false, None, (1, 1), Ok(())),
        // A resend after a restart: the same bytes again are harmless.
        case(Before::SameReport, false, None, (1, 1), Ok(())),
        case(Before::OtherReport, false, None, (1, 1), Err("conflict")),
        // Without the guard written a crash could lead to equivocation.
        case(Before::Nothing, true, None, (1, 1), Err("store_error")),
        case(Before::Nothing, false, fence, (1, 1), Err("below_fence")),
        case(Before::Nothing, false, fence, (1, 2), Ok(())),
    ];
    for Case {
        before,
        database_down: down,
        fence: floor,
        round: (epoch, round),
        expected,
    } in table
    {
        let case = format!("{before:?}, database down {down}, fence {floor:?}, ({epoch},{round})");
        let p = parts();
        let cfg = instance(floor);
        let bytes = verify::report_bytes(&cfg, epoch, round, &ours).expect("encodes");
        let earlier = match before {
            Before::Nothing => None,
            Before::SameReport => Some(keccak256(&bytes).0),
            Before::OtherReport => Some([0xab; 32]),
        };
        if let Some(hash) = earlier {
            p.store
                .guards
                .lock()
                .expect("lock")
                .insert((DIGEST, epoch, round), hash);
        }
        p.store.down.store(down, Ordering::SeqCst);

        let decision = decide(&p.shared, &cfg, &feed(), epoch, round, ours.clone()).await;

        match expected {
            Ok(()) => {
                let Some(Decision::Report { signature, .. }) = decision else {
                    panic!("{case}: expected a signed report, got {decision:?}");
                };
                let signer = recover_signer(&bytes, &signature).expect("recoverable");
                assert_eq!(
                    signer,
                    address_of(p.shared.onchain_key.verifying_key()),
                    "{case}: signed with the node's on-chain key"
                );
                let guards = p.store.guards.lock().expect("lock");
                assert_eq!(
                    guards.get(&(DIGEST, epoch, round)),
                    Some(&keccak256(&bytes).0),
                    "{case}: the guard holds what was signed"
                );
            }
            Err(reason) => {
                assert!(decision.is_none(), "{case}: signed {decision:?}");
                assert_eq!(refused(&p.shared, reason), 1, "{case}: counted as {reason}");
            }
        }
        let guard_failing = p
            .shared
            .writes
            .problems()
            .iter()
            .any(|p| p.contains("cannot record signatures"));
        assert_eq!(
            guard_failing, down,
            "{case}: the oracle says it cannot sign"
        );
    }
}

#[tokio::test]
async fn a_price_the_contract_already_has_is_not_reported_and_nothing_is_signed() {
    let p = parts();
    let cfg = instance(None);
    p.shared.contract.finalized(
        "BTC-USD",
        LatestAnswer {
            digest: DIGEST,
            epoch: 1,
            round: 1,
            answer: I192::try_from(101).expect("fits"),
            timestamp: SystemTime::now(),
            requested: None,
        },
    );
    let decision = decide(
        &p.shared,
        &cfg,
        &feed(),
        1,
        2,
        observations([100, 101, 102]),
    )
    .await;
    assert!(matches!(decision, Some(Decision::Skip)), "{decision:?}");
    assert!(
        p.store.guards.lock().expect("lock").is_empty(),
        "no signature recorded for a round that reports nothing"
    );
}

fn pending(epoch: u32) -> Pending {
    Pending {
        report: FinalizedReport {
            feed: "BTC-USD".into(),
            digest: DIGEST,
            epoch,
            round: 1,
            report: vec![1, 2, 3],
            signatures: vec![[1; 65], [2; 65]],
            observations: observations([100, 101, 102]),
            answer: I192::try_from(101).expect("fits"),
            finalized_at: SystemTime::now(),
        },
        alpha_ppb: 5_000_000,
        delta_c: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_finalized_report_is_stored_then_transmitted_once_and_a_refused_one_is_transmitted_from_memory_and_kept(
) {
    let mut p = parts();
    store_finalized(&p.shared, pending(1)).await;
    let sent = p.transmissions.try_recv().expect("transmitted once stored");
    assert_eq!((sent.er.epoch, sent.er.round), (1, 1));
    assert_eq!(p.store.reports.lock().expect("lock").len(), 1);

    // Finalized again (a peer's copy after a restart): already stored, not transmitted twice.
    store_finalized(&p.shared, pending(1)).await;
    assert!(p.transmissions.try_recv().is_err(), "transmitted twice");

    // The database refuses: the report still goes out, and is kept for the retry.
    p.store.down.store(true, Ordering::SeqCst);
    store_finalized(&p.shared, pending(2)).await;
    let sent = p.transmissions.try_recv().expect("transmitted from memory");
    assert_eq!(sent.er.epoch, 2);
    assert_eq!(p.shared.writes.unstored(), 1, "kept for the retry");
    assert_eq!(p.store.reports.lock().expect("lock").len(), 1);
}
