//! `enclave node`: one consensus node (template service `node@`, one instance per node).

use super::Cli;
use crate::exit;

pub fn run(cli: &Cli, node: u32, notify_fd: Option<i32>) -> anyhow::Result<u8> {
    let verified = cli.service_config()?;
    // Hundreds of feed instances, all I/O-bound or short bursts of signature checks: one thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::node::runtime::service::run(
        &verified.config,
        &cli.root(),
        node,
        notify_fd,
    ))?;
    Ok(exit::OK)
}
