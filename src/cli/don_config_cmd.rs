//! `enclave don-config`: the OCR1 configuration every feed's contract needs for this enclave's
//! oracles, as JSON (what `setConfig` takes, the `encoded` consensus parameters and the digest).

use super::Cli;
use crate::config::load_verified_with_key_file;
use crate::exit;
use crate::node::don_config::DonConfig;
use crate::node::keys::KeyStore;
use crate::node::oracle_set::{OracleSet, LOCAL_CONFIG_COUNT};

pub fn run(cli: &Cli, only: Option<&str>) -> anyhow::Result<u8> {
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
        .collect();
    if let (Some(name), true) = (only, feeds.is_empty()) {
        anyhow::bail!("no feed named {name:?} in the configuration");
    }
    let mut out = Vec::new();
    for feed in feeds {
        let don = DonConfig::build(&config, &set, feed, &secret)?;
        out.push(don.to_json(LOCAL_CONFIG_COUNT));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "feeds": out }))?
    );
    Ok(exit::OK)
}
