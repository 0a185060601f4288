//! `enclave node`: starts node i. Node 1 runs the bootstrap (P2P discovery and its API); nodes
//! 2..N run the oracle: keys, database, P2P, one protocol instance per feed, observer and API.
//! Every task it starts is owned by one [`NodeTasks`]: a termination signal or a fatal outcome
//! (the RPC endpoint serves another chain) stops the API, cancels and joins every task, stops
//! P2P and pushes the metrics one last time; the caller turns a fatal outcome into an exit code.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::attestation::member_key::Membership;
use crate::config::schema::nodes::BOOTSTRAP_NODE;
use crate::config::Config;
use crate::keys::peer_id::PeerId;
use crate::keys::{KeyStore, OracleKeys};
use crate::node::contract::billing_watch::{BillingMetrics, BillingWatch};
use crate::node::contract::configurator::{self, ContractConfigurator};
use crate::node::contract::contract_state::{ContractState, FinalizedContractState};
use crate::node::contract::faucet::Faucet;
use crate::node::contract::oracle_set::OracleSet;
use crate::node::contract::submit::Admin;
use crate::node::contract::OnchainMetrics;
use crate::node::evm::{AggregatorContract, ChainMetrics, RpcClient, TxSender};
use crate::node::feed::health::{evaluate, Seen, Transition, Watch};
use crate::node::feed::observe::Observer;
use crate::node::feed::shared::Shared;
use crate::node::feed::task::Input;
use crate::node::feed::writes::{Write, Writes};
use crate::node::metrics::NodeMetrics;
use crate::node::ocr1::types::ConfigDigest;
use crate::node::p2p::{self, Inbound, NetworkConfig, NetworkHandle};
use crate::node::protocol::messages::Envelope;
use crate::node::protocol::pacemaker::PacemakerState;
use crate::node::runtime::api::{self, Api, OracleApi};
use crate::node::runtime::don::{self, AdmittedPeers};
pub use crate::node::runtime::error::NodeError;
use crate::node::runtime::members::Members;
use crate::node::runtime::oracle::{self, Routes, Starter};
use crate::node::runtime::settings::{ChainSettings, NodeSettings, CHAIN_ID_RETRY_MAX};
use crate::node::store::Store;
use crate::node::tasks::NodeTasks;
use crate::paths::Root;
use crate::postgres::layout::Layout;
use crate::telemetry::{self, Pusher};

const PUSH_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
const TASKS_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
const PEER_GAUGE_INTERVAL: Duration = Duration::from_secs(1);
const FEED_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
const PACEMAKER_QUEUE: usize = 4096;

pub async fn run(
    config: &Config,
    root: &Root,
    node: u32,
    notify_fd: Option<i32>,
) -> Result<(), NodeError> {
    let settings = NodeSettings::derive(config, node)?;
    let members = members_of(config, root, node)?;
    let keys = KeyStore::from_config(root, config);
    let own = keys.load_or_generate(node)?;
    let mut termination = Box::pin(crate::service::readiness::termination()?);
    let mut notify_fd = notify_fd;
    // A DON across enclaves: the set comes from the members the supervisor admitted.
    let don = match members {
        Some(members) => {
            // Up means running here: the other members may take longer than the supervisor's
            // start timeout to be admitted. Until then the node waits, and says for whom.
            crate::service::readiness::notify_ready(notify_fd.take());
            match don::wait_for_members(&members, &keys, config, &mut termination).await? {
                Some(view) => Some((members, view)),
                None => return Ok(()),
            }
        }
        None => None,
    };
    let set = match &don {
        Some((_, view)) => view.set.clone(),
        None => OracleSet::load(&keys, config)?,
    };
    let admitted = don
        .as_ref()
        .map(|(_, view)| AdmittedPeers::new(view.admitted_peers(&view.admitted)));
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(NodeMetrics::register(&registry)?);
    let mut p2p_config = network_config(&settings, &own, &set);
    if let (Some((_, view)), Some(admitted)) = (&don, &admitted) {
        p2p_config.static_addresses = view.static_addresses.clone();
        p2p_config.admitted = Some(admitted.gate());
    }
    let (network, inbound) = p2p::start(p2p_config).await?;
    registry.register(Box::new(crate::node::p2p::metrics::StatsCollector::new(
        network.clone(),
    )))?;
    let others = set.oracles.len() - usize::from(node != BOOTSTRAP_NODE);
    metrics.peers_expected.set(others as i64);
    let tasks = NodeTasks::new();
    // A task that finds the node cannot go on (another chain) says so here; the node then stops
    // as on a termination signal and returns the error.
    let (fatal, fatal_outcome) = mpsc::channel::<NodeError>(1);
    let oracle = if node == BOOTSTRAP_NODE {
        tracing::info!(peer_id = %own.public().peer_id, "bootstrap node: discovery and transmitter balances");
        drop(inbound);
        if let Some(chain) = settings.chain {
            let rpc = start_balance_watch(config, chain, &set, &registry, &tasks, fatal.clone())?;
            if chain.configure_contracts {
                start_contract_configurator(config, rpc, &keys, &own, &set, &registry, &tasks)?;
            }
        }
        None
    } else {
        Some(
            start_oracle(
                config,
                &settings,
                root,
                &own,
                &keys,
                &set,
                &network,
                inbound,
                metrics.clone(),
                &registry,
                &tasks,
                fatal.clone(),
            )
            .await?,
        )
    };
    if let (Some((members, view)), Some(admitted)) = (don, admitted) {
        tasks.spawn(don::watch_members(
            members,
            view,
            admitted,
            network.clone(),
            fatal.clone(),
            tasks.token(),
        ));
    }
    drop(fatal);
    let oracle_peers: Arc<HashSet<PeerId>> = Arc::new(set.peer_ids().into_iter().collect());
    if let Some(oracle) = &oracle {
        tasks.spawn(watch_feed_health(
            oracle.shared.status.clone(),
            network.clone(),
            oracle_peers.clone(),
            settings.peers_needed,
            settings.stale_after,
            tasks.token(),
        ));
    }
    tasks.spawn(peer_gauge(
        network.clone(),
        oracle_peers.clone(),
        metrics.clone(),
        tasks.token(),
    ));
    let store = oracle.as_ref().map(|o| o.store.clone());
    let api_state = Api {
        node,
        oracle,
        network: network.clone(),
        oracle_peers,
        peers_expected: others,
        peers_needed: settings.peers_needed,
        registry: registry.clone(),
    };
    let addr = settings.api;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, source })?;
    let pusher = Pusher::start(
        &registry,
        &telemetry::targets_for(config, false),
        &telemetry::identity(config, &format!("node-{node}")),
    )?;
    tracing::info!(%addr, node, "node API listening");
    crate::service::readiness::notify_ready(notify_fd);
    let (why_tx, why) = oneshot::channel();
    let shutdown = stop_requested(termination, fatal_outcome, why_tx);
    let app = api::router(api_state).merge(crate::attestation::serve::router(root));
    let limits = crate::net::http_server::Limits::API;
    let served = crate::net::http_server::serve(listener, app, limits, &registry, shutdown)
        .await
        .map_err(std::io::Error::from);
    tracing::info!(node, "stopping");
    // Feed tasks stop at once; the pacemaker writer finishes its queue. Bounded, so a stuck
    // database cannot hold the shutdown past the supervisor's grace period.
    if tasks.stop(TASKS_SHUTDOWN_TIMEOUT).await {
        tracing::info!(node, "every task stopped");
    } else {
        tracing::warn!(
            node,
            running = tasks.running(),
            "some tasks did not finish within the shutdown timeout"
        );
    }
    if let Some(store) = store {
        // Bounded as well: a connection a stuck task still holds must not hold the shutdown.
        if tokio::time::timeout(POOL_CLOSE_TIMEOUT, store.pool().close())
            .await
            .is_err()
        {
            tracing::warn!(
                node,
                "the database pool did not close within the shutdown timeout"
            );
        }
    }
    network.shutdown().await;
    pusher.shutdown(PUSH_SHUTDOWN_TIMEOUT).await;
    served?;
    match why.await {
        Ok(Some(fatal)) => Err(fatal),
        _ => Ok(()),
    }
}

/// With a `don` section: this enclave's member (from its operator key) and where the supervisor
/// writes the other members' admitted identities.
/// Node `node` must be one of that member's.
fn members_of(config: &Config, root: &Root, node: u32) -> Result<Option<Members>, NodeError> {
    let Some(don) = &config.don else {
        return Ok(None);
    };
    let membership =
        Membership::of(Some(don))?.ok_or(crate::attestation::member_key::MembershipError::NoKey)?;
    if !membership.nodes.contains(&node) {
        return Err(NodeError::AnotherMembersNode {
            node,
            member: membership.name,
        });
    }
    Ok(Some(Members {
        don: don.clone(),
        me: membership.name,
        dir: root
            .map(crate::attestation::IDENTITY_DIR)
            .join(crate::attestation::membership::MEMBERS_DIR),
    }))
}

/// Resolves on a termination signal or on the first fatal outcome a task reports, and hands
/// that outcome (if any) to `why`.
async fn stop_requested(
    termination: impl std::future::Future<Output = ()>,
    mut fatal: mpsc::Receiver<NodeError>,
    why: oneshot::Sender<Option<NodeError>>,
) {
    let outcome = tokio::select! {
        _ = termination => None,
        // `None` when no task can report one any more: keep waiting for the signal.
        Some(e) = fatal.recv() => Some(e),
    };
    if let Some(e) = &outcome {
        tracing::error!(error = %e, "stopping the node");
    }
    let _ = why.send(outcome);
}

/// Watches the RPC endpoint's chain id in `tasks`; another chain than configured is reported to
/// `fatal`, which stops the node.
fn spawn_chain_id_watch(
    tasks: &NodeTasks,
    rpc: Arc<RpcClient>,
    expected: u64,
    retry: Duration,
    fatal: mpsc::Sender<NodeError>,
) {
    let stop = tasks.token();
    tasks.spawn(async move {
        if let Err(e) = oracle::watch_chain_id(rpc, expected, retry, stop).await {
            let _ = fatal.try_send(e);
        }
    });
}

fn network_config(settings: &NodeSettings, own: &OracleKeys, set: &OracleSet) -> NetworkConfig {
    let p2p = &settings.p2p;
    NetworkConfig {
        identity: own.offchain().clone(),
        listen: p2p.listen,
        announce: p2p.announce.clone(),
        bootstrap: p2p
            .bootstrap_address
            .clone()
            .map(|address| (set.bootstrap.peer_id, address)),
        peers: set.peer_ids(),
        static_addresses: HashMap::new(),
        admitted: None,
        max_frame_bytes: p2p.max_frame_bytes,
        reconnect_min: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(10),
        send_queue: 4096,
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_oracle(
    config: &Config,
    settings: &NodeSettings,
    root: &Root,
    own: &OracleKeys,
    keys: &KeyStore,
    set: &OracleSet,
    network: &NetworkHandle,
    inbound: mpsc::Receiver<Inbound>,
    metrics: Arc<NodeMetrics>,
    registry: &prometheus::Registry,
    tasks: &NodeTasks,
    fatal: mpsc::Sender<NodeError>,
) -> Result<Arc<OracleApi>, NodeError> {
    let node = settings.node;
    let layout = Layout::new(root, config);
    let credentials = crate::postgres::pgpass::read(&layout.pgpass(node))
        .map_err(|source| NodeError::Credentials { node, source })?;
    let pool = crate::postgres::db::connect(&credentials, node).await?;
    let store = Store::new(pool);
    let me = set.index_of(node).ok_or(NodeError::UnknownNode {
        node,
        total: settings.total,
    })?;
    let secret = keys.shared_secret()?;
    let observer = Arc::new(Observer::start(
        settings.observer.aggregator.clone(),
        settings.observer.max_pairs_per_request,
        settings.observer.timeout,
        metrics.observation_latency.clone(),
    )?);
    let writes = Arc::new(Writes::register(registry)?);
    let (pacemaker_writes, pacemaker_queue) = mpsc::channel(PACEMAKER_QUEUE);
    tasks.spawn(write_pacemaker_states(
        store.clone(),
        pacemaker_queue,
        metrics.clone(),
        writes.clone(),
        tasks.token(),
    ));
    let chain = if let Some(chain) = settings.chain {
        let chain_metrics = Arc::new(ChainMetrics::register(registry)?);
        let rpc = oracle::rpc_client(config, Some(chain_metrics.clone()))?;
        spawn_chain_id_watch(
            tasks,
            rpc.clone(),
            chain.chain_id,
            chain.chain_id_retry,
            fatal,
        );
        Some(
            oracle::chain_parts(
                config,
                rpc,
                own,
                me,
                set,
                store.clone(),
                registry,
                chain_metrics,
            )
            .await?,
        )
    } else {
        None
    };
    let local_contract = chain
        .is_none()
        .then(|| Arc::new(FinalizedContractState::default()));
    let contract: Arc<dyn ContractState> = match (&chain, &local_contract) {
        (Some(parts), _) => parts.contract_state.clone(),
        (None, Some(local)) => local.clone(),
        (None, None) => unreachable!("one of the two is set"),
    };
    let shared = Arc::new(Shared {
        store: Arc::new(store.clone()),
        observer: observer.clone(),
        contract,
        transmissions: chain.as_ref().map(|c| c.transmissions.clone()),
        network: Arc::new(network.clone()),
        peers: set.peer_ids(),
        nodes: set.nodes(),
        onchain_key: own.onchain().clone(),
        metrics: metrics.clone(),
        status: Arc::new(crate::node::feed::status::NodeStatus::default()),
        pacemaker_writes,
        writes,
    });
    tasks.spawn(crate::node::feed::finalize::retry_unstored(
        shared.clone(),
        tasks.token(),
    ));
    let api = Arc::new(OracleApi {
        shared: shared.clone(),
        store: store.clone(),
        observer,
        feeds: RwLock::new(Vec::new()),
        configured: config.feeds.clone(),
    });
    let routes: Routes = Arc::new(RwLock::new(HashMap::new()));
    let starter = Arc::new(Starter {
        config: Arc::new(config.clone()),
        set: set.clone(),
        me,
        own_offchain: own.offchain().clone(),
        store: store.clone(),
        shared,
        routes: routes.clone(),
        api: api.clone(),
        local_contract,
        schedule: chain.as_ref().map(|c| c.transmitter.schedule.clone()),
    });
    match chain {
        None => {
            let secret_hash = alloy_primitives::keccak256(secret.expose()).0;
            for feed in &config.feeds {
                let digest = set.digest(config, feed, secret_hash)?;
                // Without a chain an instance runs until the node stops: nothing restarts it.
                starter
                    .start(feed, digest, secret.expose(), None, tasks.child())
                    .await?;
            }
        }
        Some(parts) => {
            for feed in &config.feeds {
                if let Some(contract) = parts.contracts.get(&feed.name) {
                    tasks.spawn(oracle::follow_contract(
                        starter.clone(),
                        feed.clone(),
                        contract.clone(),
                        parts.contract_state.clone(),
                        own.config().clone(),
                        tasks.child(),
                    ));
                }
            }
            tasks.spawn(parts.transmitter.clone().run(parts.queue, tasks.clone()));
        }
    }
    let index: HashMap<PeerId, u8> = set
        .peer_ids()
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p, u8::try_from(i).ok()?)))
        .collect();
    tasks.spawn(route(
        inbound,
        index,
        routes,
        set.nodes(),
        metrics.clone(),
        tasks.token(),
    ));
    tasks.spawn(prune(store, settings.retention, metrics, tasks.token()));
    Ok(api)
}

/// Node 1 watches every transmitter's balance and, with `faucetPrivateKey`, tops them up, and
/// watches what the feeds' contracts owe the oracles and can pay: one task each for the whole
/// enclave. Returns node 1's RPC client (its requests counted in the chain metrics) for the
/// other chain tasks of node 1.
fn start_balance_watch(
    config: &Config,
    chain: ChainSettings,
    set: &OracleSet,
    registry: &prometheus::Registry,
    tasks: &NodeTasks,
    fatal: mpsc::Sender<NodeError>,
) -> Result<Arc<RpcClient>, NodeError> {
    let chain_metrics = Arc::new(ChainMetrics::register(registry)?);
    let metrics = Arc::new(OnchainMetrics::register(registry)?);
    let rpc = oracle::rpc_client(config, Some(chain_metrics.clone()))?;
    let options = &config.chain_options;
    let (sender, interval, min_wei, topup_wei) = match &config.faucet {
        Some(f) => {
            let key = faucet_key(f.private_key.expose())?;
            let sender = TxSender::new(
                rpc.clone(),
                chain.chain_id,
                key,
                oracle::gas_policy(options),
            )?
            .with_metrics(chain_metrics);
            (Some(sender), f.check_interval, f.min_wei, f.topup_wei)
        }
        None => (None, chain.poll, 0, 0),
    };
    let faucet = Faucet {
        rpc: rpc.clone(),
        sender,
        targets: set
            .oracles
            .iter()
            .map(|o| (o.node, o.transmitter_address))
            .collect(),
        min_wei,
        topup_wei,
        interval,
        receipt_timeout: options.receipt_timeout,
        rebroadcast_after: options.rebroadcast_after,
        metrics,
    };
    spawn_chain_id_watch(
        tasks,
        rpc.clone(),
        chain.chain_id,
        CHAIN_ID_RETRY_MAX,
        fatal,
    );
    tasks.spawn(faucet.run(tasks.token()));
    let billing = BillingWatch {
        contracts: config
            .feeds
            .iter()
            .map(|f| {
                let address = alloy_primitives::Address::from(f.contract_address.0);
                (
                    f.name.clone(),
                    AggregatorContract::new(rpc.clone(), address),
                )
            })
            .collect(),
        oracles: set
            .oracles
            .iter()
            .map(|o| (o.node, o.transmitter_address))
            .collect(),
        interval: chain.poll,
        metrics: Arc::new(BillingMetrics::register(registry)?),
    };
    tasks.spawn(billing.run(tasks.token()));
    Ok(rpc)
}

/// `chain.configureContracts`: node 1 puts every feed's configuration on its contract.
fn start_contract_configurator(
    config: &Config,
    rpc: Arc<RpcClient>,
    keys: &KeyStore,
    own: &OracleKeys,
    set: &OracleSet,
    registry: &prometheus::Registry,
    tasks: &NodeTasks,
) -> Result<(), NodeError> {
    let key =
        configurator::admin_key(config, own.transmitter()).map_err(NodeError::Configurator)?;
    let admin = Admin {
        rpc,
        key,
        policy: oracle::gas_policy(&config.chain_options),
    };
    let configurator = ContractConfigurator {
        config: config.clone(),
        set: set.clone(),
        secret: keys.shared_secret()?,
        admin,
        retry_after: config.chain_options.contract_poll_interval,
        metrics: configurator::metrics(registry)?,
    };
    tasks.spawn(configurator.run(tasks.token()));
    Ok(())
}

fn faucet_key(hex_key: &str) -> Result<k256::ecdsa::SigningKey, NodeError> {
    crate::config::values::secp256k1_private_key(hex_key)
        .map_err(|message| NodeError::Faucet(format!("faucetPrivateKey {message}")))
}

/// Hands every inbound frame to its feed's instance; frames that do not decode or name no feed
/// of ours are counted and dropped.
async fn route(
    mut inbound: mpsc::Receiver<Inbound>,
    index: HashMap<PeerId, u8>,
    feeds: Routes,
    nodes: Vec<u32>,
    metrics: Arc<NodeMetrics>,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            frame = inbound.recv() => frame,
            _ = stop.cancelled() => None,
        };
        let Some(frame) = frame else { return };
        let Some(&from) = index.get(&frame.from) else {
            continue;
        };
        let node = nodes
            .get(usize::from(from))
            .copied()
            .unwrap_or(0)
            .to_string();
        let envelope = match Envelope::decode(&frame.payload) {
            Ok(e) => e,
            Err(_) => {
                metrics
                    .rejected
                    .with_label_values(&[&node, "undecodable"])
                    .inc();
                continue;
            }
        };
        let feed = feeds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&envelope.digest)
            .cloned();
        let Some(feed) = feed else {
            metrics
                .rejected
                .with_label_values(&[&node, "unknown_digest"])
                .inc();
            continue;
        };
        if feed
            .try_send(Input::Message {
                from,
                message: envelope.message,
            })
            .is_err()
        {
            metrics
                .rejected
                .with_label_values(&[&node, "inbox_full"])
                .inc();
        }
    }
}

/// Writes pacemaker states, newest per instance, so a burst of epoch changes costs one write each.
/// Once `stop` is cancelled it writes what is queued and returns.
async fn write_pacemaker_states(
    store: Store,
    mut queue: mpsc::Receiver<(String, ConfigDigest, PacemakerState)>,
    metrics: Arc<NodeMetrics>,
    writes: Arc<Writes>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            // What is queued is written before stopping.
            biased;
            first = queue.recv() => first,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        let mut latest = HashMap::new();
        latest.insert(first.1, (first.0, first.2));
        while let Ok((feed, digest, state)) = queue.try_recv() {
            latest.insert(digest, (feed, state));
        }
        for (digest, (feed, state)) in latest {
            match store.save_pacemaker(digest, &feed, &state).await {
                Ok(()) => writes.succeeded(Write::PacemakerState),
                Err(e) => {
                    tracing::error!(%feed, error = %e, "cannot save the pacemaker state");
                    metrics
                        .store_errors
                        .with_label_values(&["save_pacemaker"])
                        .inc();
                    writes.failed(Write::PacemakerState, &e);
                }
            }
        }
    }
}

async fn prune(
    store: Store,
    retention: Duration,
    metrics: Arc<NodeMetrics>,
    stop: CancellationToken,
) {
    loop {
        match store.prune(retention).await {
            Ok(p) if p.reports + p.signed_rounds > 0 => tracing::info!(
                reports = p.reports,
                signed_rounds = p.signed_rounds,
                "old history deleted"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete old history");
                metrics.store_errors.with_label_values(&["prune"]).inc();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Evaluates every feed's health each second for `/health`, and logs once when a feed stops
/// reporting (with the reason) and once when it reports again.
async fn watch_feed_health(
    status: Arc<crate::node::feed::status::NodeStatus>,
    network: NetworkHandle,
    oracles: Arc<HashSet<PeerId>>,
    peers_needed: usize,
    stale_after: Duration,
    stop: CancellationToken,
) {
    let mut watches: HashMap<String, Watch> = HashMap::new();
    loop {
        let peers_connected = network
            .connected()
            .iter()
            .filter(|p| oracles.contains(p))
            .count();
        let now = std::time::Instant::now();
        status.visit_mut(|name, feed| {
            let seen = Seen {
                now,
                started_at: feed.started_at,
                last_completed: feed.last_completed,
                last_round_started: feed.last_round_started,
                last_observation: feed
                    .last_observation
                    .as_ref()
                    .map(|(at, error)| (*at, error.as_deref())),
                peers_connected,
                peers_needed,
            };
            let health = evaluate(&seen, stale_after);
            match watches
                .entry(name.to_owned())
                .or_default()
                .step(&health, now)
            {
                Some(Transition::Stopped { reason }) => {
                    tracing::warn!(feed = name, %reason, "feed stopped reporting")
                }
                Some(Transition::Recovered { silent_for }) => tracing::info!(
                    feed = name,
                    silent_s = silent_for.as_secs(),
                    "feed reporting again"
                ),
                None => {}
            }
            feed.health = health;
        });
        tokio::select! {
            _ = tokio::time::sleep(FEED_HEALTH_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn peer_gauge(
    network: NetworkHandle,
    oracles: Arc<HashSet<PeerId>>,
    metrics: Arc<NodeMetrics>,
    stop: CancellationToken,
) {
    loop {
        let connected = network
            .connected()
            .iter()
            .filter(|p| oracles.contains(p))
            .count();
        metrics.peers_connected.set(connected as i64);
        tokio::select! {
            _ = tokio::time::sleep(PEER_GAUGE_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}
