//! `enclave postgres bootstrap | run | init`: the three services of the embedded PostgreSQL.

use super::{Cli, PostgresCommand};
use crate::exit;
use crate::postgres::account::Account;
use crate::postgres::bootstrap::{bootstrap, superuser_password};
use crate::postgres::layout::Layout;
use crate::postgres::provision::{
    connect_when_ready, provision, superuser_credentials, READY_TIMEOUT,
};
use crate::postgres::{binaries, server};

pub fn run(cli: &Cli, command: &PostgresCommand) -> anyhow::Result<u8> {
    let root = cli.root();
    let verified = cli.service_config()?;
    let config = verified.config;
    let layout = Layout::new(&root, &config);
    match command {
        PostgresCommand::Bootstrap => {
            let bins = binaries::locate()?;
            let outcome = bootstrap(&layout, &bins, &Account::for_server()?)?;
            tracing::info!(
                created = outcome.created,
                settings_changed = outcome.files_changed,
                dir = %layout.data_dir.display(),
                "PostgreSQL cluster ready"
            );
            Ok(exit::OK)
        }
        PostgresCommand::Run { notify_fd } => {
            let bins = binaries::locate()?;
            Err(server::exec_server(&layout, &bins, *notify_fd).into())
        }
        PostgresCommand::Init => {
            let password = superuser_password(&layout)?;
            let credentials = superuser_credentials(&layout, password);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = connect_when_ready(&credentials, READY_TIMEOUT).await?;
                provision(&mut conn, &layout, config.nodes.total).await
            })?;
            Ok(exit::OK)
        }
    }
}
