//! `enclave don-config [--feed NAME] [--submit]`: the OCR1 configuration every feed's contract
//! needs for this enclave's oracles, printed as JSON, or put on the contracts.

use alloy_primitives::Address;
use serde_json::{json, Value};

use super::Cli;
use crate::config::schema::feeds::FeedConfig;
use crate::config::Config;
use crate::exit;
use crate::keys::{KeyStore, SharedSecret};
use crate::node::contract::configurator::admin_key;
use crate::node::contract::don_config::DonConfig;
use crate::node::contract::oracle_set::{OracleSet, LOCAL_CONFIG_COUNT};
use crate::node::contract::submit::{
    submit, Admin, BillingOutcome, PayeesOutcome, Submission, Submitted,
};
use crate::node::evm::AggregatorContract;
use crate::node::runtime::oracle;

/// The options of a DON across enclaves (`--identity` and what goes with it).
pub struct Attested<'a> {
    pub identities: &'a [std::path::PathBuf],
    pub check_chain: bool,
    pub trusted_cas: &'a [std::path::PathBuf],
    pub collateral: Option<&'a std::path::Path>,
    pub allow_simulated: bool,
}

pub fn run(
    cli: &Cli,
    only: Option<&str>,
    send: bool,
    attested: &Attested<'_>,
) -> anyhow::Result<u8> {
    let identities = attested.identities;
    let root = cli.root();
    let verified = cli.service_config()?;
    let feeds: Vec<_> = verified
        .config
        .feeds
        .iter()
        .filter(|f| only.is_none_or(|name| f.name == name))
        .cloned()
        .collect();
    if let (Some(name), true) = (only, feeds.is_empty()) {
        anyhow::bail!("no feed named {name:?} in the configuration");
    }
    if verified.config.don.is_some() {
        if send {
            // The other members' keys are not here: node 1 configures the contracts from the
            // identities its enclave admitted.
            return Err(crate::node::runtime::error::NodeError::DonAcrossEnclaves.into());
        }
        return super::don_members_cmd::run(
            verified,
            super::don_members_cmd::Args {
                identities,
                trusted_cas: attested.trusted_cas,
                collateral: attested.collateral,
                allow_simulated: attested.allow_simulated,
                public_key_file: cli.service_public_key_file(),
                feeds,
                check_chain: attested.check_chain,
            },
        );
    }
    if !identities.is_empty() {
        return Err(super::InputError(
            "--identity is for a DON across enclaves (a configuration with `don`)".into(),
        )
        .into());
    }
    let config = verified.config;
    let store = KeyStore::from_config(&root, &config);
    store.ensure_all(&config.nodes.all())?;
    let set = OracleSet::load(&store, &config)?;
    let secret = store.shared_secret()?;
    if !send {
        let mut out = Vec::new();
        for feed in &feeds {
            out.push(DonConfig::build(&config, &set, feed, &secret)?.to_json(LOCAL_CONFIG_COUNT));
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "feeds": out }))?
        );
        return Ok(exit::OK);
    }
    let node_1 = store.load_or_generate(crate::config::schema::nodes::BOOTSTRAP_NODE)?;
    let admin = admin_key(&config, node_1.transmitter()).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(submit_all(&config, &set, &secret, &feeds, admin))
}

async fn submit_all(
    config: &Config,
    set: &OracleSet,
    secret: &SharedSecret,
    feeds: &[FeedConfig],
    admin: k256::ecdsa::SigningKey,
) -> anyhow::Result<u8> {
    let rpc = oracle::rpc_client(config, None)?;
    rpc.check_chain_id(config.chain.chain_id).await?;
    let admin = Admin {
        rpc: rpc.clone(),
        key: admin,
        policy: oracle::gas_policy(&config.chain_options),
    };
    let from = crate::node::ocr1::signature::address_of(admin.key.verifying_key());
    eprintln!("submitting from {from}");
    let mut out = Vec::new();
    let mut failed = false;
    for feed in feeds {
        let contract = AggregatorContract::new(rpc.clone(), Address::from(feed.contract_address.0));
        let entry = match submit(&contract, &admin, config, set, feed, secret).await {
            Ok(submission) => {
                if let Some(problem) = submission.billing_problem() {
                    failed = true;
                    eprintln!("{}: {problem}", feed.name);
                }
                if let PayeesOutcome::Checked { conflicts, .. } = &submission.payees {
                    for (transmitter, wanted) in conflicts {
                        eprintln!(
                            "{}: warning: the contract holds another payee for transmitter {transmitter} (configured {wanted}) and refuses to change it: the current payee must call transferPayeeship, then {wanted} acceptPayeeship",
                            feed.name
                        );
                    }
                }
                submission_json(feed, &submission)
            }
            Err(e) => {
                failed = true;
                json!({"feed": feed.name, "result": "failed", "error": e.to_string()})
            }
        };
        out.push(entry);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({ "feeds": out }))?
    );
    Ok(if failed { exit::FAILURE } else { exit::OK })
}

fn submission_json(feed: &FeedConfig, submission: &Submission) -> Value {
    let mut entry = match &submission.configuration {
        Submitted::UpToDate { digest } => {
            json!({"feed": feed.name, "result": "up-to-date", "configDigest": digest.to_string()})
        }
        Submitted::Sent {
            transactions,
            digest,
        } => json!({"feed": feed.name, "result": "submitted",
            "transactions": transactions.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "configDigest": digest.to_string()}),
    };
    entry["payees"] = match &submission.payees {
        PayeesOutcome::NotManaged => json!("not-managed"),
        PayeesOutcome::Checked {
            set,
            transaction,
            conflicts,
        } => {
            let pairs = |list: &[(Address, Address)]| -> Vec<Value> {
                list.iter()
                    .map(|(t, p)| json!({"transmitter": t.to_string(), "payee": p.to_string()}))
                    .collect()
            };
            json!({"set": pairs(set), "transaction": transaction.map(|t| t.to_string()),
                   "conflicts": pairs(conflicts)})
        }
    };
    entry["billing"] = match &submission.billing {
        BillingOutcome::NotConfigured => json!("not-configured"),
        BillingOutcome::UpToDate => json!("up-to-date"),
        BillingOutcome::Set { transaction } => json!({"set": transaction.to_string()}),
        BillingOutcome::Unsupported => json!("unsupported"),
        BillingOutcome::Failed(reason) => json!({"failed": reason}),
    };
    entry
}
