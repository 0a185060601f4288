//! Rollback fencing with real processes: one oracle's database is copied with pg_dump while the
//! DON reports on the EVM dev chain; the DON goes on reporting; the oracle is stopped, its old
//! copy restored with pg_restore, and it is started again. It must read the contract before
//! signing anything, say (metric and log line) that its database is behind the chain, take part
//! again within two rounds, and no oracle may ever have signed two different reports for one
//! (config digest, epoch, round) — compared across the restore and across oracles.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::devchain::{self, DevChain};
use common::don::{Don, T};
use common::harness::wait_until;
use serde_json::{json, Value};

const FEED: &str = "BTC-USD";
const ROLLED_BACK: u32 = 3;

/// (config digest hex, epoch, round).
type Round = (String, u64, u64);

/// Every report hash `node` recorded signing, per (digest, epoch, round).
fn signed(don: &Don, node: u32) -> BTreeMap<Round, String> {
    don.query(
        node,
        "SELECT encode(config_digest, 'hex'), epoch, round, encode(report_hash, 'hex') FROM ocr_signed_rounds",
    )
    .into_iter()
    .map(|r| {
        (
            (r[0].clone(), r[1].parse().expect("epoch"), r[2].parse().expect("round")),
            r[3].clone(),
        )
    })
    .collect()
}

/// The hash of every report `node` finalized, per (digest, epoch, round).
fn finalized(don: &Don, node: u32) -> BTreeMap<Round, String> {
    don.query(
        node,
        "SELECT encode(config_digest, 'hex'), epoch, round, encode(report, 'hex') FROM ocr_finalized_reports",
    )
    .into_iter()
    .map(|r| {
        let report = hex::decode(&r[3]).expect("hex");
        (
            (r[0].clone(), r[1].parse().expect("epoch"), r[2].parse().expect("round")),
            hex::encode(alloy_primitives::keccak256(&report)),
        )
    })
    .collect()
}

/// The furthest (epoch, round) the database remembers, as the fence computes it: the highest
/// signed or finalized round, or the pacemaker's epoch with round 0.
fn remembered(don: &Don, node: u32) -> (u64, u64) {
    let rows = don.query(
        node,
        "SELECT epoch, round FROM ocr_signed_rounds UNION ALL SELECT epoch, round FROM ocr_finalized_reports
         UNION ALL SELECT epoch, 0 FROM ocr_pacemaker_state ORDER BY 1 DESC, 2 DESC LIMIT 1",
    );
    let row = rows.first().expect("a remembered position");
    (
        row[0].parse().expect("epoch"),
        row[1].parse().expect("round"),
    )
}

/// The contract's `latestTransmissionDetails()` as (digest hex, epoch, round), called from an
/// externally owned account as the contract requires.
fn chain_position(chain: &DevChain, contract: &str) -> (String, u64, u64) {
    let data = chain
        .call(
            Some(&chain.accounts[0].0),
            contract,
            &[0xe5, 0xfe, 0x45, 0x77],
        )
        .expect("latestTransmissionDetails");
    assert!(data.len() >= 96, "short answer: {}", hex::encode(&data));
    let word = |i: usize| &data[32 * i..32 * (i + 1)];
    let epoch = u32::from_be_bytes(word(1)[28..32].try_into().expect("4 bytes"));
    (
        hex::encode(&word(0)[..16]),
        u64::from(epoch),
        u64::from(word(2)[31]),
    )
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Moves the price a little more than alpha every call, so that every round reports.
fn nudge(don: &Don, step: &mut u32) {
    *step += 1;
    let price = 1000.0 * (1.0 + 0.01 * f64::from(*step % 50));
    don.prices.set("BTCUSDT", &format!("{price:.2}"));
}

/// Keeps the price moving until `condition` holds.
fn report_until(don: &Don, step: &mut u32, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        nudge(don, step);
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The node's "behind the chain" log line and its `database=` and `chain=` positions.
struct BehindLine {
    database: (u64, u64),
    chain: (u64, u64),
    line: String,
}

fn behind_line(log: &str) -> Option<BehindLine> {
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("the database is behind the chain"))?;
    let field = |name: &str| -> Option<(u64, u64)> {
        let value = line.split(&format!(" {name}=")).nth(1)?.split(' ').next()?;
        let (e, r) = value.split_once('/')?;
        Some((e.parse().ok()?, r.parse().ok()?))
    };
    Some(BehindLine {
        database: field("database")?,
        chain: field("chain")?,
        line: line.to_owned(),
    })
}

#[test]
fn an_oracle_restored_from_an_old_backup_is_fenced_by_the_chain_rejoins_and_never_signs_twice() {
    let Some(chain) = devchain::start_or_skip("an_oracle_restored_from_an_old_backup…") else {
        return;
    };
    let contract = chain.deploy_aggregator(8, "BTC / USD", 1, 1_000_000_000_000_000_000);
    let mut don = Don::start(
        5,
        &[(FEED, "BTCUSDT", "BTC", "USDT", "1000.00")],
        &[],
        chain.configure_for(&contract, json!({"configureContracts": true})),
    );
    chain.fund_transmitters(&don.keys());
    let mut step = 0;
    wait_until(T, "the first answer on chain", || {
        chain.latest_answer(&contract) != 0
    });
    // The oracle read the contract before its feed started, and says where it stood.
    wait_until(T, "the oracle's fence verdict", || {
        don.api(ROLLED_BACK, "/metrics").is_some_and(|(_, m)| {
            m.contains(&format!(
                "enclave_node_database_behind_chain{{feed=\"{FEED}\"}}"
            ))
        })
    });
    report_until(&don, &mut step, "the oracle to sign a report", || {
        !signed(&don, ROLLED_BACK).is_empty()
    });

    // The backup: the oracle's own database, while it runs.
    let backup_dir = tempfile::tempdir().expect("temp dir");
    let backup = backup_dir.path().join("node.dump");
    let backup_arg = backup.to_str().expect("utf-8 path");
    don.pg(ROLLED_BACK, "pg_dump", &["-Fc", "-f", backup_arg]);
    let at_backup = signed(&don, ROLLED_BACK);
    let backed_up = at_backup
        .keys()
        .map(|(_, e, r)| (*e, *r))
        .max()
        .expect("signed");

    // The DON goes on: reports land, and the oracle signs rounds its backup does not hold.
    let landed_before = chain.latest_round_id(&contract);
    report_until(&don, &mut step, "three more reports on chain", || {
        chain.latest_round_id(&contract) >= landed_before + 3
    });
    report_until(&don, &mut step, "signatures after the backup", || {
        signed(&don, ROLLED_BACK)
            .keys()
            .filter(|(_, e, r)| (*e, *r) > backed_up)
            .count()
            >= 2
    });

    // Stop it, put the old copy back, start it again.
    assert_eq!(don.stop(ROLLED_BACK), Some(0), "{}", don.logs(ROLLED_BACK));
    let before_restore = signed(&don, ROLLED_BACK);
    let on_chain_at_stop = chain_position(&chain, &contract);
    don.pg(
        ROLLED_BACK,
        "pg_restore",
        &["--clean", "--if-exists", "--single-transaction", backup_arg],
    );
    let restored = signed(&don, ROLLED_BACK);
    assert_eq!(
        restored, at_backup,
        "the restore brought back the old state"
    );
    let restored_position = remembered(&don, ROLLED_BACK);
    assert!(
        restored_position < (on_chain_at_stop.1, on_chain_at_stop.2),
        "the restored database {restored_position:?} is older than the chain {on_chain_at_stop:?}"
    );
    let log_offset = don.logs(ROLLED_BACK).len();
    don.spawn(ROLLED_BACK);

    // It says so: one warn line naming the feed and both positions, and the gauge.
    wait_until(T, "the behind-the-chain gauge", || {
        don.metric(
            ROLLED_BACK,
            &format!("enclave_node_database_behind_chain{{feed=\"{FEED}\"}}"),
        ) == 1.0
    });
    let log = don.logs(ROLLED_BACK)[log_offset..].to_owned();
    let BehindLine {
        database,
        chain: fenced_at,
        line,
    } = behind_line(&log).unwrap_or_else(|| panic!("no behind-the-chain line:\n{log}"));
    eprintln!("restored to {restored_position:?}; the chain had {on_chain_at_stop:?}; {line}");
    assert!(line.contains(&format!("feed={FEED}")), "{line}");
    assert_eq!(database, restored_position, "{line}");
    assert!(
        fenced_at >= (on_chain_at_stop.1, on_chain_at_stop.2),
        "fenced at {fenced_at:?}, below the chain at the stop {on_chain_at_stop:?}: {line}"
    );
    assert_eq!(
        log.matches("the database is behind the chain").count(),
        1,
        "one line per start:\n{log}"
    );

    // It takes part again within two rounds: once it is up, its observation is in one of the
    // first two report requests another oracle sees.
    wait_until(T, "the restored oracle ready", || {
        don.json(ROLLED_BACK, "/health")
            .is_some_and(|(code, _)| code == 200)
    });
    let ready_at = unix_ms();
    let witness = 2;
    let mut requests: Vec<Value> = Vec::new();
    report_until(
        &don,
        &mut step,
        "two report requests after its restart",
        || {
            let Some((_, rounds)) = don.json(witness, &format!("/v1/rounds?feed={FEED}&limit=50"))
            else {
                return false;
            };
            requests = rounds["rounds"]
                .as_array()
                .expect("rounds")
                .iter()
                .filter(|r| r["startedAt"].as_u64() > Some(ready_at))
                .filter(|r| r["observers"].as_array().is_some_and(|o| !o.is_empty()))
                .cloned()
                .collect();
            requests.len() >= 2
        },
    );
    requests.sort_by_key(|r| r["startedAt"].as_u64());
    let took_part = |r: &Value| {
        r["observers"]
            .as_array()
            .is_some_and(|o| o.contains(&json!(ROLLED_BACK)))
    };
    eprintln!(
        "node {ROLLED_BACK} observes again in report request {:?} after it was ready",
        requests.iter().position(took_part).map(|i| i + 1)
    );
    assert!(
        requests[..2].iter().any(took_part),
        "node {ROLLED_BACK} is in neither of the first two report requests after it was ready: {requests:#?}"
    );
    // And its signatures reach the chain's reports again.
    report_until(&don, &mut step, "a new signature above the fence", || {
        signed(&don, ROLLED_BACK)
            .keys()
            .any(|(_, e, r)| (*e, *r) > fenced_at)
    });
    report_until(&don, &mut step, "two more reports on chain", || {
        let now = chain_position(&chain, &contract);
        (now.1, now.2) > fenced_at && chain.latest_round_id(&contract) >= landed_before + 5
    });

    // No conflicting signature anywhere. The oracle: what it signs now agrees with what it had
    // signed before the restore, and nothing new is at or below the fence.
    let after = signed(&don, ROLLED_BACK);
    for (round, hash) in &after {
        if let Some(before) = before_restore.get(round) {
            assert_eq!(
                hash, before,
                "node {ROLLED_BACK} signed two reports for {round:?}"
            );
        } else {
            assert!(
                (round.1, round.2) > fenced_at,
                "node {ROLLED_BACK} signed {round:?} at or below the fence {fenced_at:?}"
            );
        }
    }
    // Across oracles (its pre-restore signatures included): one report per round, and it is the
    // finalized one.
    let mut by_round: BTreeMap<Round, (u32, String)> = BTreeMap::new();
    let mut all: Vec<(u32, BTreeMap<Round, String>)> = don
        .oracles()
        .into_iter()
        .map(|node| (node, signed(&don, node)))
        .collect();
    all.push((ROLLED_BACK, before_restore));
    for (node, rounds) in &all {
        for (round, hash) in rounds {
            let (first, seen) = by_round
                .entry(round.clone())
                .or_insert((*node, hash.clone()));
            assert_eq!(
                seen, hash,
                "nodes {first} and {node} signed different reports for {round:?}"
            );
        }
    }
    for node in don.oracles() {
        for (round, hash) in finalized(&don, node) {
            if let Some((signer, signed_hash)) = by_round.get(&round) {
                assert_eq!(
                    signed_hash, &hash,
                    "node {signer} signed another report than the one finalized for {round:?}"
                );
            }
        }
        assert_eq!(
            don.metric(
                node,
                "enclave_node_signing_refused_total{reason=\"conflict\"}"
            ),
            0.0
        );
        assert!(
            don.is_running(node),
            "node {node} died:\n{}",
            don.logs(node)
        );
    }
}
