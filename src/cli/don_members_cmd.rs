//! `enclave don-config --identity FILE…` for a DON across enclaves: what an outsider checks. Every
//! member's identity document (as its `identityUrl` serves it) is judged exactly as the members
//! judge each other (the configuration, allowed measurements, evidence, key births, the member's
//! signature); from the admitted ones come each oracle's signer and transmitter, in the order
//! the contracts must list them, each with the member and identity behind it. With
//! `--check-chain`, each feed's contract is read: its `signers[]` and `transmitters[]` must be
//! exactly those. Exit 1 when a member is refused or missing, or a contract lists other keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use serde_json::{json, Value};

use super::quote_cmd::read_input;
use super::InputError;
use crate::attestation::admission::AdmittedMember;
use crate::attestation::evidence::signing::read_certificates;
use crate::attestation::membership::{read_collateral, Anchors, Judge};
use crate::config::schema::feeds::FeedConfig;
use crate::config::schema::nodes::BOOTSTRAP_NODE;
use crate::config::signature::PublicKey;
use crate::config::{Config, VerifiedConfig};
use crate::exit;
use crate::logging::Untrusted;
use crate::node::evm::AggregatorContract;
use crate::node::runtime::oracle;

pub struct Args<'a> {
    pub identities: &'a [PathBuf],
    /// The outsider's trust anchors; none of the three: the configuration's own (inside a
    /// member's root).
    pub trusted_cas: &'a [PathBuf],
    pub collateral: Option<&'a Path>,
    pub allow_simulated: bool,
    pub public_key_file: PathBuf,
    pub feeds: Vec<FeedConfig>,
    pub check_chain: bool,
}

pub fn run(verified: VerifiedConfig, args: Args<'_>) -> anyhow::Result<u8> {
    let config = &verified.config;
    if args.identities.is_empty() {
        return Err(InputError(
            "a DON across enclaves: give every member's identity document with --identity FILE (GET <identityUrl>)".into(),
        )
        .into());
    }
    let key_text = read_input(&args.public_key_file, "configuration public key", 64 * 1024)?;
    let public_key = PublicKey::from_base64_spki(&String::from_utf8_lossy(&key_text))
        .map_err(|e| InputError(format!("{}: {e}", args.public_key_file.display())))?;
    let outsider =
        !args.trusted_cas.is_empty() || args.collateral.is_some() || args.allow_simulated;
    let judge = if outsider {
        let mut trusted_cas = Vec::new();
        for path in args.trusted_cas {
            trusted_cas.extend(
                read_certificates(path)
                    .map_err(|e| InputError(format!("--trusted-ca {}: {e}", path.display())))?,
            );
        }
        let collateral = args
            .collateral
            .map(read_collateral)
            .transpose()
            .map_err(|e| InputError(format!("--collateral: {e}")))?;
        let anchors = Anchors {
            trusted_cas,
            collateral,
            allow_simulated: args.allow_simulated,
        };
        Judge::with_anchors(config, verified.document.clone(), public_key, anchors)
    } else {
        Judge::new(config, verified.document.clone(), public_key)?
    };
    let mut admitted: BTreeMap<String, (AdmittedMember, Value)> = BTreeMap::new();
    let mut refused = Vec::new();
    for path in args.identities {
        let text = String::from_utf8(read_input(
            path,
            "identity document",
            crate::attestation::membership::MAX_DOCUMENT_BYTES,
        )?)
        .map_err(|_| InputError(format!("{}: not UTF-8", path.display())))?;
        match judge.judge(&text) {
            Ok(member) => {
                let digests: Value = serde_json::from_str::<Value>(&text)
                    .map(|d| d["digests"].clone())
                    .unwrap_or(Value::Null);
                admitted.insert(member.member.clone(), (member, digests));
            }
            Err(refusal) => refused.push(json!({
                "file": path.display().to_string(),
                "reason": refusal.reason(),
                "detail": Untrusted::bounded(&refusal.to_string(), 2000).to_string(),
            })),
        }
    }
    let don = config
        .don
        .as_ref()
        .expect("only called with a `don` section");
    let missing: Vec<&str> = don
        .members
        .iter()
        .map(|m| m.name.as_str())
        .filter(|m| !admitted.contains_key(*m))
        .collect();
    // Oracle index i is node i+2, as on the contracts.
    let mut oracles = Vec::new();
    for node in config.nodes.oracles() {
        let Some((member, _)) = don.member_of(node).and_then(|m| admitted.get(&m.name)) else {
            continue;
        };
        if let Some(keys) = member.nodes.iter().find(|n| n.node == node) {
            oracles.push(json!({
                "oracleIndex": node - BOOTSTRAP_NODE - 1, "node": node, "member": member.member,
                "signer": keys.onchain_signing_address, "transmitter": keys.transmitter_address,
                "peerId": keys.peer_id, "offchainPublicKey": keys.offchain_public_key,
                "configPublicKey": keys.config_public_key,
            }));
        }
    }
    let complete = missing.is_empty() && refused.is_empty();
    let signers: Vec<String> = oracles
        .iter()
        .map(|o| o["signer"].as_str().unwrap_or_default().to_owned())
        .collect();
    let transmitters: Vec<String> = oracles
        .iter()
        .map(|o| o["transmitter"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut feeds = Vec::new();
    let mut mismatch = false;
    let on_chain = if args.check_chain && complete {
        Some(read_contracts(config, &args.feeds)?)
    } else {
        None
    };
    for feed in &args.feeds {
        let mut entry = json!({
            "feed": feed.name,
            "contract": Address::from(feed.contract_address.0).to_checksum(None),
            "threshold": config.consensus.f,
            "signers": signers, "transmitters": transmitters,
        });
        if let Some(on_chain) = &on_chain {
            let found = &on_chain[&feed.name];
            let matches = found.as_ref().is_ok_and(|(s, t)| {
                let eq = |chain: &[Address], ours: &[String]| {
                    chain.len() == ours.len()
                        && chain
                            .iter()
                            .zip(ours)
                            .all(|(a, b)| a.to_checksum(None) == *b)
                };
                eq(s, &signers) && eq(t, &transmitters)
            });
            mismatch |= !matches;
            entry["onChain"] = match found {
                Ok((s, t)) => {
                    json!({"signers": s, "transmitters": t, "matchesAttestedMembers": matches})
                }
                Err(e) => json!({"error": e, "matchesAttestedMembers": false}),
            };
        }
        feeds.push(entry);
    }
    let members: Vec<Value> = admitted
        .values()
        .map(|(m, digests)| {
            json!({"member": m.member, "nodes": m.nodes.iter().map(|n| n.node).collect::<Vec<_>>(),
                                  "bootId": m.boot_id, "identityDigests": digests})
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "configurationDigest": verified.verified.digest_hex,
            "admitted": members, "refused": refused, "missing": missing,
            "oracles": oracles, "feeds": feeds,
        }))?
    );
    if !complete {
        eprintln!("not every member is admitted: the oracle set is incomplete");
    }
    if mismatch {
        eprintln!("a contract lists other signers or transmitters than the attested members'");
    }
    Ok(if complete && !mismatch {
        exit::OK
    } else {
        exit::FAILURE
    })
}

type OnChain = BTreeMap<String, Result<(Vec<Address>, Vec<Address>), String>>;

/// Each feed's current `signers[]` and `transmitters[]` from its ConfigSet log.
fn read_contracts(config: &Config, feeds: &[FeedConfig]) -> anyhow::Result<OnChain> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let rpc = oracle::rpc_client(config, None)?;
        let mut out = OnChain::new();
        for feed in feeds {
            let contract =
                AggregatorContract::new(rpc.clone(), Address::from(feed.contract_address.0))
                    .with_max_log_range(config.chain_options.max_log_range);
            let read = async {
                let details = contract
                    .latest_config_details()
                    .await
                    .map_err(|e| e.to_string())?;
                if details.config_count == 0 {
                    return Err("the contract has no configuration yet".to_owned());
                }
                let event = contract
                    .config_set_at(u64::from(details.block_number))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no ConfigSet log at the configuration's block")?;
                Ok((event.signers, event.transmitters))
            };
            out.insert(feed.name.clone(), read.await);
        }
        Ok(out)
    })
}
