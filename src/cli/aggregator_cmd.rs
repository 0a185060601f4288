//! `enclave aggregator`: the price aggregator service.

use super::Cli;
use crate::exit;

pub fn run(cli: &Cli, notify_fd: Option<i32>) -> anyhow::Result<u8> {
    let verified = cli.service_config()?;
    // Several sources fetch at once and their limiters sleep: a small multi-threaded runtime is
    // not needed, the work is I/O-bound, so one thread serves it all.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::aggregator::service::run(&verified.config, notify_fd))?;
    Ok(exit::OK)
}
