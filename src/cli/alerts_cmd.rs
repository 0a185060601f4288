//! `enclave alerts`: the enclave's own alerts (longrun `alerts`).

use super::Cli;
use crate::exit;

pub fn run(cli: &Cli) -> anyhow::Result<u8> {
    let verified = cli.service_config()?;
    // Light, I/O-bound work: one thread serves the evaluation and every channel.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::alerts::run(verified.config, cli.root()))?;
    Ok(exit::OK)
}
