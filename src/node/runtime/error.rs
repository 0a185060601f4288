//! Why the node cannot start or had to stop: one error type for `enclave node`, in a module of
//! its own so that the modules that start the node's parts (`service`, `oracle`) both use it
//! without importing each other.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node} is not in this configuration (nodes are 1..{total})")]
    UnknownNode { node: u32, total: u32 },
    /// `enclave don-config --submit` with a `don` section: node 1 configures the contracts from
    /// the identities its enclave admitted (docs/design/don-across-tees.md).
    #[error("solution.don: `enclave don-config --submit` cannot configure a DON across enclaves from here: node 1 does, from the members its enclave admitted (chain.configureContracts); `enclave don-config --identity FILE…` prints and checks it")]
    DonAcrossEnclaves,
    /// With `don`: this enclave's operator key could not be read or names no member.
    #[error("solution.don: {0}")]
    Membership(#[from] crate::attestation::member_key::MembershipError),
    #[error("node {node} is not run by member {member}, the member this enclave's operator key makes it (don.members)")]
    AnotherMembersNode { node: u32, member: String },
    /// A DON member was admitted again with other keys than the set this node runs with (its
    /// enclave was re-created): the node stops and is restarted with the new set.
    #[error("DON member {member} was admitted with new keys; restarting with the new oracle set")]
    MembersChanged { member: String },
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
