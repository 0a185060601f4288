//! Why the node cannot start or had to stop: one error type for `enclave node`, in a module of
//! its own so that the modules that start the node's parts (`service`, `oracle`) both use it
//! without importing each other.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node} is not in this configuration (nodes are 1..{total})")]
    UnknownNode { node: u32, total: u32 },
    /// The configuration has a `don` section: the admission of other members' nodes on the P2P
    /// network is not built yet (docs/design/don-across-tees.md#status), so a node refuses to
    /// start rather than run with peers it cannot know.
    #[error("solution.don: this build cannot yet run a node of a DON across enclaves (its peers' admission by attestation is not built; docs/design/don-across-tees.md#status)")]
    DonAcrossEnclaves,
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    OracleSet(#[from] crate::node::contract::oracle_set::OracleSetError),
    #[error("cannot read node {node}'s database credentials: {source}")]
    Credentials {
        node: u32,
        #[source]
        source: crate::postgres::pgpass::PgpassError,
    },
    #[error(transparent)]
    Database(#[from] crate::postgres::db::DbError),
    #[error(transparent)]
    Store(#[from] crate::node::store::StoreError),
    #[error("P2P: {0}")]
    P2p(#[from] crate::node::p2p::P2pError),
    #[error("cannot listen on {addr} for the node API: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Observer(#[from] crate::node::feed::observe::ObserveError),
    #[error("chain: {0}")]
    Chain(#[from] crate::node::evm::ChainError),
    #[error("faucet: {0}")]
    Faucet(String),
    #[error("chain.configureContracts: {0}")]
    Configurator(String),
    #[error(transparent)]
    Push(#[from] crate::telemetry::push::PushError),
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Fatal for the node: it stops (normally) and exits with the configuration-error code.
    #[error("the RPC endpoint (chainlinkRpcHttpUrl) serves chain {got}, but chainlinkChainId is {expected}: the node stopped")]
    WrongChain { expected: u64, got: u64 },
}
