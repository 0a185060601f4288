//! `enclave don-config [--feed NAME] [--submit]`: the OCR1 configuration every feed's contract
//! needs for this enclave's oracles, printed as JSON, or put on the contracts.

use alloy_primitives::Address;
use serde_json::json;

use super::Cli;
use crate::config::load_verified_with_key_file;
use crate::config::Config;
use crate::exit;
use crate::node::chain::AggregatorContract;
use crate::node::don_config::DonConfig;
use crate::node::keys::{KeyStore, SharedSecret};
use crate::node::onchain::configurator::admin_key;
use crate::node::onchain::submit::{submit, Admin, Submitted};
use crate::node::oracle;
use crate::node::oracle_set::{OracleSet, LOCAL_CONFIG_COUNT};

pub fn run(cli: &Cli, only: Option<&str>, send: bool) -> anyhow::Result<u8> {
    let root = cli.root();
    let verified =
        load_verified_with_key_file(&cli.config_path(None), &cli.service_public_key_file())?;
    let config = verified.config;
    let store = KeyStore::from_config(&root, &config);
    store.ensure_all(&config.nodes.all())?;
    let set = OracleSet::load(&store, &config)?;
    let secret = store.shared_secret()?;
    let feeds: Vec<_> = config
        .feeds
        .iter()
        .filter(|f| only.is_none_or(|name| f.name == name))
        .cloned()
        .collect();
    if let (Some(name), true) = (only, feeds.is_empty()) {
        anyhow::bail!("no feed named {name:?} in the configuration");
    }
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
    feeds: &[crate::config::schema::feeds::FeedConfig],
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
            Ok(Submitted::UpToDate { digest }) => {
                json!({"feed": feed.name, "result": "up-to-date", "configDigest": digest.to_string()})
            }
            Ok(Submitted::Sent {
                transactions,
                digest,
            }) => json!({"feed": feed.name, "result": "submitted",
                "transactions": transactions.iter().map(|t| t.to_string()).collect::<Vec<_>>(), "configDigest": digest.to_string()}),
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
